"""The audit trail: ``audit_log``, hash-chained and append-only.

Each entry carries the SHA-256 of the previous one (``governance/audit_trail.py`` documents the
canonical encoding); ``prev_hash`` and ``entry_hash`` are unique, so the chain cannot fork. The
table is append-only (``repository/append_only.py``): a trigger refuses UPDATE, DELETE and
TRUNCATE (SQLite: UPDATE and DELETE) and, on PostgreSQL, those privileges are revoked from
everyone, the owner included.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from licensing_pipeline.repository import append_only

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUDIT = "audit_log"


def upgrade() -> None:
    op.create_table(
        AUDIT,
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=200), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("prev_hash"),
        sa.UniqueConstraint("entry_hash"),
    )
    op.create_index(f"ix_{AUDIT}_tenant_id", AUDIT, ["tenant_id"])
    append_only.install(op.get_bind(), AUDIT)


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_table(AUDIT)  # its triggers go with it
    if bind.dialect.name == "postgresql":
        append_only.drop_function_if_unused(bind)
