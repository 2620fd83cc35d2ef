"""Tenant isolation that holds against SQL a tenant writes (PostgreSQL; no-op on SQLite).

Under 0002 any role could set ``licensing.tenant_id``, so a login that ran a tenant's SQL
read every tenant. Now the session's login (``session_user``, which ``SET ROLE``, ``RESET
ROLE`` and SECURITY DEFINER functions leave alone) decides:

- a login bound in ``licensing_tenant_roles`` (``db grant-tenant``) sees its tenant's rows
  and no others, whatever it sets, becomes or calls;
- the setting still picks the tenant for a login that may act as the tables' owner (the
  pipeline switching to the reader role for a statement): it can read every row anyway;
- any other login sees nothing.

``licensing_owner_all`` no longer applies to a bound login either, so a function or view
owned by the owner that a tenant reaches still shows it only its tenant. Only the owner
writes the binding table; every role may read its own binding row, which the policies read
as the querying role.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BINDINGS = "licensing_tenant_roles"
UNBOUND = f"NOT EXISTS (SELECT 1 FROM {BINDINGS} b WHERE b.role_name = session_user::text)"
# Frozen here, as 0002 wrote them: the tables whose policies this revision changes.
OWNER_TABLES = (
    "compliance_findings",
    "managed_exceptions",
    "enforcement_state",
    "enforcement_changes",
    "remediation_tickets",
    "ticket_history",
    "alert_outbox",
)
TENANT_COLUMN_TABLES = OWNER_TABLES[:5]  # the other two follow their ticket's visibility
SETTING = "NULLIF(current_setting('licensing.tenant_id', true), '')"


def _session_tenant(table: str) -> str:
    """The tenant this session may read: its binding, else the setting for an owner login."""
    return (
        f"COALESCE((SELECT b.tenant_id FROM {BINDINGS} b WHERE b.role_name = session_user::text), "
        "CASE WHEN pg_has_role(session_user, "
        f"(SELECT c.relowner FROM pg_class c WHERE c.oid = '{table}'::regclass), 'MEMBER') "
        f"THEN {SETTING} END)"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_table(
        BINDINGS,
        sa.Column("role_name", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("role_name"),
    )
    # Not FORCEd: the owner (grant-tenant, and the policies below when a bound login reaches
    # an owner's function) reads every binding; anyone else reads only their own.
    op.execute(f"ALTER TABLE {BINDINGS} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY licensing_own_binding ON {BINDINGS} FOR SELECT TO PUBLIC "
        "USING (role_name = session_user::text)"
    )
    op.execute(f"GRANT SELECT ON {BINDINGS} TO PUBLIC")
    for table in OWNER_TABLES:
        op.execute(
            f"ALTER POLICY licensing_owner_all ON {table} USING ({UNBOUND}) WITH CHECK ({UNBOUND})"
        )
    for table in TENANT_COLUMN_TABLES:
        op.execute(
            f"ALTER POLICY licensing_tenant_read ON {table} "
            f"USING (tenant_id = {_session_tenant(table)})"
        )


def downgrade() -> None:
    """Back to the setting for everyone: bound logins lose their SELECT rather than pick any
    tenant with it."""
    if op.get_bind().dialect.name != "postgresql":
        return
    bind = op.get_bind()
    quote = bind.dialect.identifier_preparer.quote
    bound: list[str] = list(
        bind.execute(
            sa.text(
                f"SELECT b.role_name FROM {BINDINGS} b JOIN pg_roles r ON r.rolname = b.role_name"
            )
        ).scalars()
    )
    tables = ", ".join(OWNER_TABLES)
    for role in bound:  # exec_driver_sql: a quoted name is no place for bind parameters
        bind.exec_driver_sql(f"REVOKE SELECT ON {tables} FROM {quote(role)}")
    for table in TENANT_COLUMN_TABLES:
        op.execute(f"ALTER POLICY licensing_tenant_read ON {table} USING (tenant_id = {SETTING})")
    for table in OWNER_TABLES:
        op.execute(f"ALTER POLICY licensing_owner_all ON {table} USING (true) WITH CHECK (true)")
    op.drop_table(BINDINGS)
