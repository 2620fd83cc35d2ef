"""The status the external ticket system was last told, so later changes reach it.

``remediation_tickets.sink_reported_status``: the ticket's status as of the last call that
reached the ticket system (the create, then each status update). A ticket whose status
differs from it has a change to mirror. Tickets exported before this revision were told
nothing since their creation; they start from their current status, so upgrading does not
replay old changes into the ticket system.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("remediation_tickets") as batch:
        batch.add_column(sa.Column("sink_reported_status", sa.String(16)))
    op.execute(
        "UPDATE remediation_tickets SET sink_reported_status = status WHERE external_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("remediation_tickets") as batch:
        batch.drop_column("sink_reported_status")
