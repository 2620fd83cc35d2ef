"""Governance tables of the licensing repository (SQLAlchemy Core; migration 0007)."""

from __future__ import annotations

import sqlalchemy as sa

from licensing_pipeline.repository.tables import metadata

# Who did what, hash-chained and append-only (``governance/audit_trail.py``). ``prev_hash`` is
# unique: two entries can never claim the same predecessor, so concurrent appends cannot fork
# the chain on either database.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("tenant_id", sa.String(200), index=True),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("entry_hash", sa.String(64), nullable=False, unique=True),
)
