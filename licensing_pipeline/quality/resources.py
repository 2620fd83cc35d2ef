"""The ``data_quality`` resource: where Data Docs go and the thresholds of the checks."""

from __future__ import annotations

import dagster as dg

from licensing_pipeline.settings import DataQualitySettings, Settings


class DataQualityResource(dg.ConfigurableResource):
    """Thresholds (``LICENSING_DQ_*``, see ``settings.DataQualitySettings``) and the Data Docs
    folder (``$LICENSING_HOME/data_docs``)."""

    data_docs_dir: str
    freshness_hours: float = 36.0
    min_volume_share: float = 0.5
    volume_weeks: int = 4  # same-weekday history the as-of day is compared with
    min_volume_baseline: float = 20.0  # a tenant's usual day below this is too small to judge
    future_tolerance_hours: float = 48.0
    max_quarantine_share: float = 0.01
    early_usage_days: float = 365.0

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # At the start of a run, so Great Expectations is imported (in its own process, on
        # another core) while the sources load.
        from licensing_pipeline.quality.validation import start_worker

        start_worker()


def data_quality_resource(settings: Settings) -> DataQualityResource:
    values: DataQualitySettings = settings.data_quality
    return DataQualityResource(
        data_docs_dir=str(settings.data_docs_dir),
        freshness_hours=values.freshness_hours,
        min_volume_share=values.min_volume_share,
        future_tolerance_hours=values.future_tolerance_hours,
        max_quarantine_share=values.max_quarantine_share,
        early_usage_days=values.early_usage_days,
    )
