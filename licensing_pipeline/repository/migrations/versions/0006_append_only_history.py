"""What each finding was at each run, and histories the database refuses to rewrite.

``finding_history``: one row per finding per run that wrote it new or changed (see
``repository/resources.py``), with the finding as it then was. Per-tenant rows: row-level
security as 0002/0004 left the other tenant tables (the owner reads and writes all, a bound
tenant login and the reader role under the tenant setting read their tenant's).

``finding_history`` and ``ticket_history`` become append-only (``repository/append_only.py``):
a trigger refuses UPDATE, DELETE and TRUNCATE (SQLite: UPDATE and DELETE) and, on PostgreSQL,
those privileges are revoked from everyone, the owner included. Nothing in the pipeline ever
rewrote ``ticket_history``; deleting a ticket that has history is now refused (its CASCADE
reaches the history). Run ``db grant-reader`` and ``db grant-tenant`` again so the reader and
tenant logins may SELECT the new table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from licensing_pipeline.repository import append_only

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HISTORY = "finding_history"
APPEND_ONLY = (HISTORY, "ticket_history")
# Frozen here, as 0004 wrote them for the tables with a tenant column.
BINDINGS = "licensing_tenant_roles"
UNBOUND = f"NOT EXISTS (SELECT 1 FROM {BINDINGS} b WHERE b.role_name = session_user::text)"
SESSION_TENANT = (
    f"COALESCE((SELECT b.tenant_id FROM {BINDINGS} b WHERE b.role_name = session_user::text), "
    "CASE WHEN pg_has_role(session_user, "
    f"(SELECT c.relowner FROM pg_class c WHERE c.oid = '{HISTORY}'::regclass), 'MEMBER') "
    "THEN NULLIF(current_setting('licensing.tenant_id', true), '') END)"
)


def upgrade() -> None:
    bind = op.get_bind()
    # The finding's columns as compliance_findings has them at this revision (0001 made them).
    finding = [
        sa.Column(c["name"], c["type"], nullable=c["nullable"])
        for c in sa.inspect(bind).get_columns("compliance_findings")
    ]
    op.create_table(
        HISTORY,
        sa.Column("history_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("change", sa.String(length=200), nullable=False),
        *finding,
        sa.PrimaryKeyConstraint("history_id"),
    )
    for column in ("run_id", "finding_id", "tenant_id"):
        op.create_index(f"ix_{HISTORY}_{column}", HISTORY, [column])
    if bind.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {HISTORY} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {HISTORY} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY licensing_owner_all ON {HISTORY} FOR ALL TO CURRENT_USER "
            f"USING ({UNBOUND}) WITH CHECK ({UNBOUND})"
        )
        op.execute(
            f"CREATE POLICY licensing_tenant_read ON {HISTORY} FOR SELECT TO PUBLIC "
            f"USING (tenant_id = {SESSION_TENANT})"
        )
    for table in APPEND_ONLY:
        append_only.install(bind, table)


def downgrade() -> None:
    bind = op.get_bind()
    append_only.remove(bind, "ticket_history")
    op.drop_table(HISTORY)
    if bind.dialect.name == "postgresql":
        append_only.drop_function_if_unused(bind)
