"""People, roles and grants: who may act, and every grant and revoke (kept, never deleted).

Roles are ``viewer``, ``editor``, ``approver`` and ``admin`` (a CHECK constraint). Grants and
revokes are recorded in the audit trail by ``governance/access.py``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES = ("viewer", "editor", "approver", "admin")  # frozen here


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("person_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("person_id"),
    )
    op.create_table(
        "role_grants",
        sa.Column("grant_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("granted_by", sa.String(length=200), nullable=False),
        sa.Column("granted_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(f"role IN {ROLES!r}", name="ck_role_grants_role"),
        sa.ForeignKeyConstraint(["person_id"], ["people.person_id"]),
        sa.PrimaryKeyConstraint("grant_id"),
    )
    op.create_index("ix_role_grants_person_id", "role_grants", ["person_id"])


def downgrade() -> None:
    op.drop_table("role_grants")
    op.drop_table("people")
