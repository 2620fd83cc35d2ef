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

ROLES = ("viewer", "editor", "approver", "admin")

# The people who may act (on PostgreSQL ``person_id`` is their database login).
people = sa.Table(
    "people",
    metadata,
    sa.Column("person_id", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200)),
    sa.Column("email", sa.String(320)),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

# Every role ever granted; a revoke stamps ``revoked_by``/``revoked_at`` and keeps the row.
role_grants = sa.Table(
    "role_grants",
    metadata,
    sa.Column("grant_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("person_id", sa.String(200), sa.ForeignKey("people.person_id"), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("granted_by", sa.String(200), nullable=False),
    sa.Column("granted_at", sa.DateTime, nullable=False),
    sa.Column("revoked_by", sa.String(200)),
    sa.Column("revoked_at", sa.DateTime),
    sa.CheckConstraint(f"role IN {ROLES!r}", name="ck_role_grants_role"),
    sa.Index("ix_role_grants_person_id", "person_id"),
)

CHANGE_KINDS = (
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
CHANGE_STATUSES = ("pending", "approved", "rejected", "withdrawn")

# Proposed changes to what a tenant may do (or to the policy bundle), four-eyes approved
# (``governance/changes.py``). A request moves pending -> approved | rejected | withdrawn once;
# every move is also an audit entry. ``payload`` is the kind's JSON object (``change_kinds.py``).
change_requests = sa.Table(
    "change_requests",
    metadata,
    sa.Column("request_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("tenant_id", sa.String(200)),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("effective_from", sa.Date, nullable=False),
    sa.Column("effective_until", sa.Date),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("proposed_by", sa.String(200), nullable=False),
    sa.Column("proposed_at", sa.DateTime, nullable=False),
    sa.Column("decided_by", sa.String(200)),
    sa.Column("decided_at", sa.DateTime),
    sa.Column("decision_note", sa.Text),
    sa.CheckConstraint(f"kind IN {CHANGE_KINDS!r}", name="ck_change_requests_kind"),
    sa.CheckConstraint(f"status IN {CHANGE_STATUSES!r}", name="ck_change_requests_status"),
    sa.CheckConstraint(
        "decided_by IS NULL OR decided_by <> proposed_by", name="ck_change_requests_four_eyes"
    ),
    sa.Index("ix_change_requests_tenant_id", "tenant_id"),
    sa.Index("ix_change_requests_status", "status"),
)
