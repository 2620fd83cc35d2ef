"""Tables of the licensing repository (SQLAlchemy Core, portable across SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

compliance_findings = sa.Table(
    "compliance_findings",
    metadata,
    sa.Column("finding_id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(200), nullable=False, index=True),
    sa.Column("check", sa.String(64), nullable=False, index=True),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("period", sa.String(10), nullable=False),
    sa.Column("observed", sa.Float),
    sa.Column("allowed", sa.Float),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("catalog_version", sa.String(64), nullable=False),
    sa.Column("first_detected_at", sa.DateTime, nullable=False),
    sa.Column("last_detected_at", sa.DateTime, nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    # Internal (not in the data contract's outputs): the policy bundle's content hash, the
    # rule that fired and the exception that waived the finding. Nullable, so start-up can
    # add them to a table created before they existed.
    sa.Column("policy_hash", sa.String(64)),
    sa.Column("rule_id", sa.String(64)),
    sa.Column("exception_id", sa.String(64)),
)

# One row per run that wrote findings, so "the latest run" has a meaning outside Dagster.
finding_runs = sa.Table(
    "finding_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("finished_at", sa.DateTime, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("catalog_version", sa.String(64), nullable=False),
    sa.Column("open_findings", sa.Integer, nullable=False),
    sa.Column("waived_findings", sa.Integer, nullable=False),
    sa.Column("resolved_findings", sa.Integer, nullable=False),
)

# What each finding was at each run that wrote it new or changed (append-only: migration
# 0006 makes the database refuse UPDATE, DELETE and TRUNCATE): the finding's columns as they
# then were, after the run, the time and ``change``: "new", or the tracked columns that
# changed (``HISTORY_TRACKED``), comma-separated in that order.
finding_history = sa.Table(
    "finding_history",
    metadata,
    sa.Column("history_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    sa.Column("change", sa.String(200), nullable=False),
    *(sa.Column(c.name, c.type, nullable=c.nullable) for c in compliance_findings.columns),
    sa.Index("ix_finding_history_finding_id", "finding_id"),
    sa.Index("ix_finding_history_tenant_id", "tenant_id"),
)

# A finding gets a history row when one of these differs from its latest history row.
HISTORY_TRACKED = (
    "status",
    "severity",
    "action",
    "observed",
    "allowed",
    "policy_version",
    "policy_hash",
    "rule_id",
    "exception_id",
)
