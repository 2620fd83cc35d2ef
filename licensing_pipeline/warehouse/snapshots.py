"""Daily usage snapshots: the day-partitioned part of the graph.

The nightly job reloads every export and rebuilds the warehouse as of one day, because a late
or re-delivered event and a finding's lifecycle need the whole picture. Month-to-date usage at
the end of a past day is different: once the day's events are in, it is a fact about that day.
So it is partitioned by day: the nightly success adds one partition, and a backfill of a year
runs from the UI as ranges of days, each range one ``dbt build`` in the warehouse (the SQL
spreads over the warehouse's own cores; on PostgreSQL several ranges can run at once).
"""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from licensing_pipeline.jobs import nightly_compliance
from licensing_pipeline.warehouse.assets import (
    PARTITIONED_TAG,
    TRANSLATOR,
    dbt_build,
    dbt_project,
)
from licensing_pipeline.warehouse.resources import Warehouse

SNAPSHOTS = dg.AssetKey("daily_usage_snapshots")
SNAPSHOT_JOB = "daily_usage_snapshots"


def daily_partitions(start: date) -> dg.DailyPartitionsDefinition:
    """UTC days from ``start``; ``end_offset=1`` keeps today's partition (month-to-date so
    far), since a run as of today is what the demo and a manual run evaluate."""
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC", end_offset=1)


def snapshot_window(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """The first and last day (inclusive) of the run's partition or partition range."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()


def build_daily_usage_snapshots(partitions_def: dg.DailyPartitionsDefinition) -> Any:
    @dbt_assets(
        manifest=dbt_project.manifest_path,
        dagster_dbt_translator=TRANSLATOR,
        project=dbt_project,
        name="daily_usage_snapshot_models",
        select=f"tag:{PARTITIONED_TAG}",
        partitions_def=partitions_def,
        # A backfill of many days is one dbt build over the range, not one per day.
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def daily_usage_snapshot_models(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse
    ) -> Iterator[Any]:
        first, last = snapshot_window(context)
        context.log.info(f"daily usage snapshots {first} .. {last} on {warehouse.location}")
        yield from dbt_build(
            context,
            dbt,
            warehouse,
            LICENSING_AS_OF=last.isoformat(),
            LICENSING_SNAPSHOT_START=first.isoformat(),
        )

    return daily_usage_snapshot_models


daily_usage_snapshots_job = dg.define_asset_job(
    name=SNAPSHOT_JOB,
    selection=dg.AssetSelection.assets(SNAPSHOTS),
    description="Month-to-date usage per tenant and metric at the end of the partition's days.",
)


def nightly_as_of(run: dg.DagsterRun) -> str:
    """The day a nightly run evaluated: its run_settings as_of, else today (the run just
    finished, and a run without as_of evaluates today)."""
    as_of: Any = run.run_config
    for key in ("resources", "run_settings", "config", "as_of"):
        as_of = as_of.get(key) if isinstance(as_of, dict) else None
    return str(as_of or run.tags.get("licensing/as_of") or datetime.now(UTC).date().isoformat())


def snapshot_request(run: dg.DagsterRun, first_day: date) -> dg.RunRequest | dg.SkipReason:
    """The partition a finished nightly run adds; one run per nightly run."""
    as_of = nightly_as_of(run)
    try:
        day = date.fromisoformat(as_of)
    except ValueError:
        return dg.SkipReason(f"run {run.run_id} has no usable as-of day ({as_of!r})")
    if day < first_day:
        return dg.SkipReason(
            f"{day} is before the first snapshot day {first_day} (LICENSING_HISTORY_START)"
        )
    return dg.RunRequest(run_key=f"{run.run_id}-{day}", partition_key=day.isoformat())


def build_snapshot_sensor(first_day: date) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        name="daily_usage_snapshot_after_nightly",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[nightly_compliance],
        request_job=daily_usage_snapshots_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After a nightly run succeeds, snapshot its as-of day.",
    )
    def daily_usage_snapshot_after_nightly(
        context: dg.RunStatusSensorContext,
    ) -> dg.RunRequest | dg.SkipReason:
        return snapshot_request(context.dagster_run, first_day)

    return daily_usage_snapshot_after_nightly
