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
