"""Row-level security on the tables that hold per-tenant data (PostgreSQL; no-op on SQLite).

Every such table gets RLS enabled and FORCEd, and two permissive policies:

- ``licensing_owner_all``: the table's owner (the role that ran the migrations, which the
  pipeline connects as) reads and writes every row. FORCE makes this an explicit policy
  rather than the owner's silent exemption, and a custom setting could not serve instead:
  any role may set one.
- ``licensing_tenant_read``: SELECT for any role, of the rows whose tenant is the
  transaction's ``licensing.tenant_id`` setting; with no setting nothing is visible.
  ``ticket_history`` and ``alert_outbox`` have no tenant column and follow their ticket
  (alerts without one, such as digests, stay hidden).

Which role may read at all is a separate, explicit grant: ``licensing-pipeline db
grant-reader``. A table with tenant data added later needs the same treatment in its own
migration (see ``repository/tenancy.py``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT = "tenant_id = NULLIF(current_setting('licensing.tenant_id', true), '')"
VISIBLE_TICKET = (
    "EXISTS (SELECT 1 FROM remediation_tickets t WHERE t.ticket_id = {table}.ticket_id)"
)
# Frozen here: this revision keeps meaning these tables whatever tenancy.py lists later.
POLICIES = {
    "compliance_findings": TENANT,
    "managed_exceptions": TENANT,
    "enforcement_state": TENANT,
    "enforcement_changes": TENANT,
    "remediation_tickets": TENANT,
    "ticket_history": VISIBLE_TICKET.format(table="ticket_history"),
    "alert_outbox": "ticket_id IS NOT NULL AND " + VISIBLE_TICKET.format(table="alert_outbox"),
}


def _owner(table: str) -> str:
    return str(
        op.get_bind()
        .execute(
            sa.text(
                "SELECT tableowner FROM pg_tables "
                "WHERE schemaname = current_schema() AND tablename = :table"
            ),
            {"table": table},
        )
        .scalar_one()
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    quote = op.get_bind().dialect.identifier_preparer.quote
    for table, condition in POLICIES.items():
        name = quote(table)
        op.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY licensing_owner_all ON {name} FOR ALL TO {quote(_owner(table))} "
            "USING (true) WITH CHECK (true)"
        )
        op.execute(
            f"CREATE POLICY licensing_tenant_read ON {name} FOR SELECT TO PUBLIC "
            f"USING ({condition})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    quote = op.get_bind().dialect.identifier_preparer.quote
    for table in POLICIES:
        name = quote(table)
        op.execute(f"DROP POLICY IF EXISTS licensing_tenant_read ON {name}")
        op.execute(f"DROP POLICY IF EXISTS licensing_owner_all ON {name}")
        op.execute(f"ALTER TABLE {name} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {name} DISABLE ROW LEVEL SECURITY")
