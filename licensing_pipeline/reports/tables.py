"""The success metrics table, in the licensing repository's own ``metadata``."""

from __future__ import annotations

import sqlalchemy as sa

from licensing_pipeline.repository.tables import metadata

# One figure per month, family, dimension (severity or currency, '' when none) and metric,
# as last computed: a month no longer in the inputs keeps its last figures.
success_metrics = sa.Table(
    "success_metrics",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("family", sa.String(32), primary_key=True),
    sa.Column("dimension", sa.String(64), primary_key=True),
    sa.Column("metric", sa.String(64), primary_key=True),
    sa.Column("value", sa.Float),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("computed_at", sa.DateTime, nullable=False),
)
