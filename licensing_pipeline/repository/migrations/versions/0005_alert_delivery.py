"""Exactly-once Slack alerts when an answer is lost, and holds after a rate limit.

``alert_outbox.delivery_key``: carried in each post's metadata, so a pass can find a post
whose answer was lost in the channel's history instead of posting it again.
``alert_outbox.unconfirmed_since``: when such an attempt was made (set before sending);
``alert_outbox.searched_before``: how far a search cut short got (the next goes on from there).
``delivery_holds``: a destination's "not before" time after a 429, shared by every pass.
Alerts already in the outbox start without a key, as if never attempted with one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_outbox") as batch:
        batch.add_column(sa.Column("delivery_key", sa.String(64)))
        batch.add_column(sa.Column("unconfirmed_since", sa.DateTime()))
        batch.add_column(sa.Column("searched_before", sa.DateTime()))
    op.create_table(
        "delivery_holds",
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("not_before", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("destination"),
    )


def downgrade() -> None:
    op.drop_table("delivery_holds")
    with op.batch_alter_table("alert_outbox") as batch:
        batch.drop_column("searched_before")
        batch.drop_column("unconfirmed_since")
        batch.drop_column("delivery_key")
