"""The ``data_quality`` resource: where Data Docs go, the thresholds of the checks, and the
Great Expectations runtime of the run (or step) that uses it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from licensing_pipeline.quality.runtime import GxRuntime
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

    _gx: GxRuntime | None = PrivateAttr(default=None)  # while a run or step uses it

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # At the start of a run (of a step, with the multiprocess and Celery executors), so
        # Great Expectations is imported (in its own process, on another core) while the
        # sources load.
        self._gx = GxRuntime(Path(self.data_docs_dir))
        self._gx.start_worker()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # Also after a blocking check stopped the run: its pages are written all the same.
        if self._gx is not None:
            self._gx.close()
            self._gx = None

    @property
    def gx(self) -> GxRuntime:
        """Great Expectations for the run or step using this resource (its ``evaluate``
        gives the checks' outcomes; their Data Docs are written by the end of it)."""
        if self._gx is None:
            raise RuntimeError("the data_quality resource validates only within a run or step")
        return self._gx


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
