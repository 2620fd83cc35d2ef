"""Policy tables, in the licensing repository's own ``metadata`` (created with it).

Timestamps are naive UTC, like the findings tables.
"""

from __future__ import annotations

import sqlalchemy as sa

from licensing_pipeline.repository.tables import metadata

# Every bundle a run has applied, whole, so "the last good bundle" survives a bad edit and
# `policy explain` can show the rules a past decision was made under.
policy_bundles = sa.Table(
    "policy_bundles",
    metadata,
    sa.Column("content_hash", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("files", sa.Text, nullable=False),  # JSON object {file name: text}
    sa.Column("first_applied_at", sa.DateTime, nullable=False),
    sa.Column("last_applied_at", sa.DateTime, nullable=False, index=True),
)

# One row per run that published enforcement: what the sensor compares the bundle with.
policy_runs = sa.Table(
    "policy_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("finished_at", sa.DateTime, nullable=False, index=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("data_dir", sa.Text, nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("policy_hash", sa.String(64), nullable=False),
    # What LICENSING_POLICY_PATH held (differs from policy_hash when it failed validation).
    sa.Column("configured_hash", sa.String(64)),
    sa.Column("fallback_error", sa.Text),
)

# Exceptions granted in the repository (beside exceptions.csv), by a named approver.
managed_exceptions = sa.Table(
    "managed_exceptions",
    metadata,
    sa.Column("exception_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(200), nullable=False, index=True),
    sa.Column("check", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False, default=""),
    sa.Column("approved_by", sa.String(200), nullable=False),
    sa.Column("expires_on", sa.Date, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("created_by", sa.String(200)),
    sa.Column("revoked_at", sa.DateTime),
    sa.Column("revoked_by", sa.String(200)),
)

# The action in force per tenant and capability (no row: none), as last published.
enforcement_state = sa.Table(
    "enforcement_state",
    metadata,
    sa.Column("tenant_id", sa.String(200), primary_key=True),
    sa.Column("capability", sa.String(250), primary_key=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("check", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("period", sa.String(10), nullable=False),
    sa.Column("finding_id", sa.String(32), nullable=False),
    sa.Column("rule_id", sa.String(64), nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("policy_hash", sa.String(64), nullable=False),
    sa.Column("details", sa.Text, nullable=False, default=""),
    sa.Column("since", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

# Every change of action, in order: the change feed is written from here.
enforcement_changes = sa.Table(
    "enforcement_changes",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("changed_at", sa.DateTime, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("tenant_id", sa.String(200), nullable=False),
    sa.Column("capability", sa.String(250), nullable=False),
    sa.Column("previous_action", sa.String(16), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16)),
    sa.Column("check", sa.String(64)),
    sa.Column("finding_id", sa.String(32)),
    sa.Column("rule_id", sa.String(64)),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("policy_hash", sa.String(64), nullable=False),
    sa.Column("details", sa.Text, nullable=False, default=""),
)
