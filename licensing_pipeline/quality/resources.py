"""The ``data_quality`` resource: where Data Docs go, the thresholds of the checks, and the
Great Expectations runtime of the run (or step) that uses it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from licensing_pipeline import environment as env
from licensing_pipeline.quality.runtime import GxRuntime
from licensing_pipeline.settings import Settings


class DataQualityResource(dg.ConfigurableResource):
    """Thresholds of the checks (``quality/expectations.yaml``) and the Data Docs folder
    (``$LICENSING_HOME/data_docs``).

    LICENSING_DQ_FRESHNESS_HOURS      the newest usage event must be at most this many hours
                                      older than the end of the as-of day
    LICENSING_DQ_MIN_VOLUME_SHARE     the as-of day must bring at least this share of the usual
                                      volume (same weekday, previous ``volume_weeks`` weeks)
    LICENSING_DQ_FUTURE_TOLERANCE_HOURS  events may be at most this many hours ahead of the
                                      clock (or of the end of the as-of day)
    LICENSING_DQ_MAX_QUARANTINE_SHARE share of usage lines that may be quarantined before the
                                      check warns
    LICENSING_DQ_EARLY_USAGE_DAYS     usage more than this many days before the tenant's first
                                      contract warns
    """

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
    return DataQualityResource(
        data_docs_dir=str(settings.data_docs_dir),
        **env.given(
            freshness_hours=env.number("LICENSING_DQ_FRESHNESS_HOURS"),
            min_volume_share=env.number("LICENSING_DQ_MIN_VOLUME_SHARE", at_most=1.0),
            future_tolerance_hours=env.number("LICENSING_DQ_FUTURE_TOLERANCE_HOURS"),
            max_quarantine_share=env.number("LICENSING_DQ_MAX_QUARANTINE_SHARE", at_most=1.0),
            early_usage_days=env.number("LICENSING_DQ_EARLY_USAGE_DAYS"),
        ),
    )
