"""Change requests: proposed, four-eyes approved changes to entitlements and policy.

A request moves from ``pending`` to ``approved``, ``rejected`` or ``withdrawn`` once; the
four-eyes rule (decider is not proposer) is also a CHECK constraint, so no path around the
application can record a self-approval.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# frozen here: a later kind is a later migration
KINDS = (
    "quota_override",
    "feature_grant",
    "feature_revoke",
    "region_allow",
    "plan_change",
    "addon_add",
    "addon_remove",
    "contract_status",
    "exception",
    "policy_version",
)
STATUSES = ("pending", "approved", "rejected", "withdrawn")


def upgrade() -> None:
    op.create_table(
        "change_requests",
        sa.Column("request_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_until", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("proposed_by", sa.String(length=200), nullable=False),
        sa.Column("proposed_at", sa.DateTime(), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.CheckConstraint(f"kind IN {KINDS!r}", name="ck_change_requests_kind"),
        sa.CheckConstraint(f"status IN {STATUSES!r}", name="ck_change_requests_status"),
        sa.CheckConstraint(
            "decided_by IS NULL OR decided_by <> proposed_by", name="ck_change_requests_four_eyes"
        ),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_change_requests_tenant_id", "change_requests", ["tenant_id"])
    op.create_index("ix_change_requests_status", "change_requests", ["status"])


def downgrade() -> None:
    op.drop_table("change_requests")
