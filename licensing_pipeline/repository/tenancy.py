"""Per-tenant reads under PostgreSQL row-level security (policies: migration 0002).

The pipeline connects as the tables' owner and sees every row. A per-tenant read runs in a
read-only transaction as the reader role (neither owner nor BYPASSRLS, SELECT only) with
``licensing.tenant_id`` set for that transaction alone, so the database, not a WHERE clause,
keeps tenant B's rows out of tenant A's statement.

``SET LOCAL ROLE`` separates the statements this code issues; it is no barrier to SQL a
tenant writes (``RESET ROLE`` returns to the owner). A service that runs such SQL should log
in as its own LOGIN role that is a member of the reader role.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.contract.schemas import COMPLIANCE_FINDINGS, conform, empty_frame
from licensing_pipeline.repository.errors import TenantIsolationError
from licensing_pipeline.repository.tables import compliance_findings

READER_ROLE = "licensing_reader"
TENANT_SETTING = "licensing.tenant_id"
# Tables with row-level security; the reader may SELECT these and nothing else.
TENANT_TABLES = (
    "compliance_findings",
    "managed_exceptions",
    "enforcement_state",
    "enforcement_changes",
    "remediation_tickets",
    "ticket_history",
    "alert_outbox",
)


def _require_postgres(engine: sa.Engine) -> None:
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
    _require_postgres(engine)
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
        schema = quote(con.execute(sa.text("SELECT current_schema()")).scalar_one())
        tables = ", ".join(quote(t) for t in TENANT_TABLES)
        con.execute(sa.text(f"GRANT USAGE ON SCHEMA {schema} TO {name}"))
        con.execute(sa.text(f"GRANT SELECT ON {tables} TO {name}"))
        member: bool = con.execute(
            sa.text("SELECT pg_has_role(current_user, :role, 'MEMBER')"), {"role": role}
        ).scalar_one()
        if not member:
            con.execute(sa.text(f"GRANT {name} TO CURRENT_USER"))


@contextmanager
def tenant_session(
    engine: sa.Engine, tenant_id: str, *, role: str = READER_ROLE
) -> Iterator[sa.Connection]:
    """A read-only transaction as ``role`` that sees only ``tenant_id``'s rows."""
    _require_postgres(engine)
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
