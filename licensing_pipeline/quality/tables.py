"""data_quality_report: one row per data-quality check per run, in the licensing repository.

In the repository's own ``metadata``, so it is created with the other tables; readable long
after Dagster's event log is pruned ("how often did the usage feed arrive short this
quarter?").
"""

from __future__ import annotations

import sqlalchemy as sa

from licensing_pipeline.repository.tables import metadata

OUTCOMES = ("pass", "warn", "fail")  # fail: a blocking check failed and stopped the run

data_quality_report = sa.Table(
    "data_quality_report",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("asset", sa.String(128), primary_key=True),
    sa.Column("check_name", sa.String(128), primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False, index=True),
    sa.Column("evaluated_at", sa.DateTime, nullable=False, index=True),
    sa.Column("outcome", sa.String(8), nullable=False),
    sa.Column("blocking", sa.Boolean, nullable=False),
    sa.Column("expectations", sa.Integer, nullable=False),
    sa.Column("failed_expectations", sa.Integer, nullable=False),
    sa.Column("unexpected_count", sa.Integer, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("data_docs", sa.Text),  # the page of the check's first batch (latest run only)
    sa.Column("seconds", sa.Float, nullable=False),
)
