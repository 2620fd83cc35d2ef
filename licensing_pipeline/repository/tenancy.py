"""Per-tenant reads under PostgreSQL row-level security (policies: migrations 0002, 0004).

The pipeline connects as the tables' owner and sees every row. Its own per-tenant reads run
in a read-only transaction as the reader role (neither owner nor BYPASSRLS, SELECT only) with
``licensing.tenant_id`` set for that transaction alone, so the database, not a WHERE clause,
keeps tenant B's rows out of tenant A's statement. The setting counts only for a login that
may act as the owner: anyone could set it.

SQL a tenant writes runs on a login of its own, bound to its tenant in
``licensing_tenant_roles`` (``grant_tenant``): the policies key on that login, so setting
the tenant, ``SET ROLE``/``RESET ROLE`` or calling a function changes nothing it sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.contract.schemas import COMPLIANCE_FINDINGS, conform, empty_frame
from licensing_pipeline.repository.errors import TenantIsolationError
from licensing_pipeline.repository.tables import compliance_findings

READER_ROLE = "licensing_reader"
TENANT_SETTING = "licensing.tenant_id"
BINDINGS = "licensing_tenant_roles"  # role_name -> tenant_id; only the owner writes it
# Tables with row-level security; the reader and bound tenant roles may SELECT these and
# nothing else (after a migration adds one: `db grant-reader`, `db grant-tenant` again).
TENANT_TABLES = (
    "compliance_findings",
    "managed_exceptions",
    "enforcement_state",
    "enforcement_changes",
    "remediation_tickets",
    "ticket_history",
    "alert_outbox",
    "finding_history",
)


def require_postgres(engine: sa.Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise TenantIsolationError(
            f"tenant isolation relies on PostgreSQL row-level security; {engine.dialect.name} "
            "has none, so per-tenant reads are refused there"
        )


def grant_reader(engine: sa.Engine, role: str = READER_ROLE) -> None:
    """Create the reader role if missing (NOLOGIN, no BYPASSRLS) and grant it SELECT.

    Idempotent, and safe when the role already exists cluster-wide: it is checked, not
    trusted. The connecting role becomes a member, so ``tenant_session`` can switch to it.
    Run again after a migration that adds a tenant table.
    """
    require_postgres(engine)
    quote = engine.dialect.identifier_preparer.quote
    name = quote(role)
    with engine.begin() as con:
        exists = sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role")
        if con.execute(exists, {"role": role}).first() is None:
            try:
                with con.begin_nested():
                    con.execute(
                        sa.text(
                            f"CREATE ROLE {name} "
                            "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"
                        )
                    )
            except sa.exc.DBAPIError as exc:
                # duplicate_object / unique_violation: another session created it meanwhile.
                if getattr(exc.orig, "pgcode", None) not in ("42710", "23505"):
                    raise
        super_, bypass = con.execute(
            sa.text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :role"),
            {"role": role},
        ).one()
        if super_ or bypass:
            raise TenantIsolationError(
                f"role {role} is a superuser or has BYPASSRLS: it would see every tenant; "
                "choose another --role"
            )
        owned: list[str] = sorted(
            con.execute(
                sa.text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                    "AND tableowner = :role AND tablename = ANY(:tables)"
                ),
                {"role": role, "tables": list(TENANT_TABLES)},
            ).scalars()
        )
        if owned:
            raise TenantIsolationError(
                f"role {role} owns {', '.join(owned)}: an owner passes row-level security; "
                "choose another --role"
            )
        _grant_select(con, name)
        member: bool = con.execute(
            sa.text("SELECT pg_has_role(current_user, :role, 'MEMBER')"), {"role": role}
        ).scalar_one()
        if not member:
            con.execute(sa.text(f"GRANT {name} TO CURRENT_USER"))


def _grant_select(con: sa.Connection, name: str) -> None:
    quote = con.dialect.identifier_preparer.quote
    schema = quote(con.execute(sa.text("SELECT current_schema()")).scalar_one())
    tables = ", ".join(quote(t) for t in TENANT_TABLES)
    # exec_driver_sql: a quoted name may hold what text() would take for a bind parameter
    con.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {name}")
    con.exec_driver_sql(f"GRANT SELECT ON {tables} TO {name}")


def _refusal(attributes: tuple[Any, ...] | None, role: str) -> str | None:
    """Why ``role`` cannot be a tenant's login, if it cannot."""
    if attributes is None:
        return (
            f"no role {role!r} in this PostgreSQL cluster: create the tenant's login first "
            "(CREATE ROLE ... LOGIN PASSWORD ...)"
        )
    superuser, bypassrls, createrole, can_login, acts_as_owner = attributes
    if superuser or bypassrls:
        return f"role {role} is a superuser or has BYPASSRLS: it would see every tenant"
    if acts_as_owner:
        return f"role {role} is the tables' owner or a member of it: it would see every tenant"
    if createrole:
        return f"role {role} has CREATEROLE: it could grant itself a role that sees every tenant"
    if not can_login:
        return (
            f"role {role} cannot log in (NOLOGIN): the binding is on the login, so bind the "
            "role the tenant's SQL connects as"
        )
    return None


def grant_tenant(engine: sa.Engine, tenant_id: str, role: str) -> bool:
    """Bind the login ``role`` to ``tenant_id`` and let it SELECT; True if newly bound.

    Idempotent (run again after a migration adds a tenant table). Refuses a role that would
    pass or could escape row-level security, a NOLOGIN role, and one bound to another tenant.
    """
    require_postgres(engine)
    if not tenant_id or len(tenant_id) > 200 or not tenant_id.isprintable():
        raise TenantIsolationError(f"not a tenant id: {tenant_id!r}")
    with engine.begin() as con:
        row = con.execute(
            sa.text(
                "SELECT r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcanlogin, "
                "pg_has_role(r.oid, c.relowner, 'MEMBER') FROM pg_roles r, pg_class c "
                "WHERE r.rolname = :role AND c.oid = CAST(:table AS regclass)"
            ),
            {"role": role, "table": TENANT_TABLES[0]},
        ).first()
        refusal = _refusal(None if row is None else tuple(row), role)
        if refusal:
            raise TenantIsolationError(refusal)
        binding = {"role": role, "tenant": tenant_id}
        added = con.execute(
            sa.text(
                f"INSERT INTO {BINDINGS} (role_name, tenant_id) VALUES (:role, :tenant) "
                "ON CONFLICT (role_name) DO NOTHING RETURNING role_name"
            ),
            binding,
        ).first()
        bound: str = con.execute(
            sa.text(f"SELECT tenant_id FROM {BINDINGS} WHERE role_name = :role"), binding
        ).scalar_one()
        if bound != tenant_id:
            raise TenantIsolationError(
                f"role {role} is bound to tenant {bound!r}: one login per tenant; "
                f"`licensing-pipeline db revoke-tenant {role}` first to move it"
            )
        _grant_select(con, engine.dialect.identifier_preparer.quote(role))
    return added is not None


def revoke_tenant(engine: sa.Engine, role: str) -> str | None:
    """Unbind ``role`` and revoke its SELECT; the tenant it was bound to (None: it was not)."""
    require_postgres(engine)
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as con:
        tenant: str | None = con.execute(
            sa.text(f"DELETE FROM {BINDINGS} WHERE role_name = :role RETURNING tenant_id"),
            {"role": role},
        ).scalar()
        exists = sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role")
        if tenant is not None and con.execute(exists, {"role": role}).first() is not None:
            tables = ", ".join(quote(t) for t in TENANT_TABLES)
            con.exec_driver_sql(f"REVOKE SELECT ON {tables} FROM {quote(role)}")
    return tenant


@contextmanager
def tenant_session(
    engine: sa.Engine, tenant_id: str, *, role: str = READER_ROLE
) -> Iterator[sa.Connection]:
    """A read-only transaction as ``role`` that sees only ``tenant_id``'s rows."""
    require_postgres(engine)
    if not tenant_id:
        raise ValueError("tenant_id must not be empty")
    quote = engine.dialect.identifier_preparer.quote
    with engine.connect() as con, con.begin():
        con.execute(sa.text("SET TRANSACTION READ ONLY"))
        try:
            with con.begin_nested():
                con.execute(sa.text(f"SET LOCAL ROLE {quote(role)}"))
        except sa.exc.DBAPIError as exc:
            raise TenantIsolationError(
                f"cannot act as role {role} ({exc.orig}): run "
                f"`licensing-pipeline db grant-reader --role {role}`"
            ) from None
        con.execute(sa.select(sa.func.set_config(TENANT_SETTING, tenant_id, True)))
        yield con


def tenant_findings(engine: sa.Engine, tenant_id: str, *, role: str = READER_ROLE) -> pd.DataFrame:
    """One tenant's findings, read under row-level security (for self-service statements)."""
    with tenant_session(engine, tenant_id, role=role) as con:
        rows = con.execute(sa.select(compliance_findings)).mappings().all()
    if not rows:
        return empty_frame(COMPLIANCE_FINDINGS)
    return conform(pd.DataFrame([dict(r) for r in rows]), COMPLIANCE_FINDINGS)
