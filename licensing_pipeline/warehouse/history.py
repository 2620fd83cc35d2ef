"""The usage history: the day-partitioned part of the graph (group ``history``).

The nightly job reloads every export and rebuilds the warehouse as of one day, because a late
or re-delivered event and a finding's lifecycle need the whole picture. A past day's events,
and month-to-date usage at its end, are different: once the day's events are in, they are
facts about that day. So ``daily_usage_events`` and ``daily_usage_snapshots`` are partitioned
by day: the nightly success adds one partition, and a backfill of a year runs from the UI as
ranges of days, each range one ``dbt build`` in the warehouse (the SQL spreads over the
warehouse's own cores; on PostgreSQL several ranges can run at once).
"""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from dagster_dbt import DbtCliResource, dbt_assets

from licensing_pipeline.warehouse.assets import (
    PARTITIONED_TAG,
    TRANSLATOR,
    dbt_build,
    dbt_project,
)
from licensing_pipeline.warehouse.history_days import LATE_FROM_TAG
from licensing_pipeline.warehouse.resources import Warehouse

DAILY_EVENTS = dg.AssetKey("daily_usage_events")
SNAPSHOTS = dg.AssetKey("daily_usage_snapshots")
HISTORY_JOB = "daily_usage_history"


def daily_partitions(start: date) -> dg.DailyPartitionsDefinition:
    """UTC days from ``start``; ``end_offset=1`` keeps today's partition (month-to-date so
    far), since a run as of today is what the demo and a manual run evaluate."""
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC", end_offset=1)


def history_window(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """The first and last day (inclusive) of the run's partition or partition range."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()


# On PostgreSQL a long backfill fans out as one run per month of days, which can run at once;
# on the embedded DuckDB file (one writer) it is one run, so it pays dbt's start-up once.
DAYS_PER_RUN_ON_POSTGRES = 31


def history_backfill_policy(profile: str) -> dg.BackfillPolicy:
    if profile == "postgres":
        return dg.BackfillPolicy.multi_run(max_partitions_per_run=DAYS_PER_RUN_ON_POSTGRES)
    return dg.BackfillPolicy.single_run()


def build_daily_usage_history(
    partitions_def: dg.DailyPartitionsDefinition, backfill_policy: dg.BackfillPolicy
) -> Any:
    @dbt_assets(
        manifest=dbt_project.manifest_path,
        dagster_dbt_translator=TRANSLATOR,
        project=dbt_project,
        name="daily_usage_history_models",
        select=f"tag:{PARTITIONED_TAG}",
        partitions_def=partitions_def,
        # Each run is one dbt build over its range of days, never one build per day.
        backfill_policy=backfill_policy,
    )
    def daily_usage_history_models(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse
    ) -> Iterator[Any]:
        first, last = history_window(context)
        context.log.info(f"daily usage history {first} .. {last} on {warehouse.location}")
        yield from dbt_build(
            context,
            dbt,
            warehouse,
            LICENSING_AS_OF=last.isoformat(),
            LICENSING_HISTORY_FROM=first.isoformat(),
        )

    return daily_usage_history_models


daily_usage_history_job = dg.define_asset_job(
    name=HISTORY_JOB,
    selection=dg.AssetSelection.assets(DAILY_EVENTS, SNAPSHOTS),
    description="The partition's days of evaluated events, and month-to-date usage at their end.",
)


def nightly_as_of(run: dg.DagsterRun) -> str:
    """The day a nightly run evaluated: its run_settings as_of, else today (the run just
    finished, and a run without as_of evaluates today)."""
    as_of: Any = run.run_config
    for key in ("resources", "run_settings", "config", "as_of"):
        as_of = as_of.get(key) if isinstance(as_of, dict) else None
    return str(as_of or run.tags.get("licensing/as_of") or datetime.now(UTC).date().isoformat())


def _late_from(run: dg.DagsterRun, first_day: date, as_of: date) -> date | None:
    """The first kept day the run found late events for (its tag), if it is in range."""
    try:
        day = date.fromisoformat(run.tags.get(LATE_FROM_TAG, ""))
    except ValueError:
        return None
    return day if first_day <= day < as_of else None


def history_request(run: dg.DagsterRun, first_day: date) -> dg.RunRequest | dg.SkipReason:
    """What a finished nightly run adds: its as-of day, or, when it evaluated late events for
    kept days, every day from the first of those to the as-of day (month-to-date snapshots
    after a late day change too); one run per nightly run."""
    as_of = nightly_as_of(run)
    try:
        day = date.fromisoformat(as_of)
    except ValueError:
        return dg.SkipReason(f"run {run.run_id} has no usable as-of day ({as_of!r})")
    if day < first_day:
        return dg.SkipReason(
            f"{day} is before the first history day {first_day} (LICENSING_HISTORY_START)"
        )
    late = _late_from(run, first_day, day)
    if late is None:
        return dg.RunRequest(run_key=f"{run.run_id}-{day}", partition_key=day.isoformat())
    return dg.RunRequest(
        run_key=f"{run.run_id}-{late}-{day}",
        tags={
            "dagster/asset_partition_range_start": late.isoformat(),
            "dagster/asset_partition_range_end": day.isoformat(),
        },
    )


def build_history_sensor(
    first_day: date, nightly: UnresolvedAssetJobDefinition
) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        name="daily_usage_history_after_nightly",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[nightly],
        request_job=daily_usage_history_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "After a nightly run succeeds, add its as-of day to the usage history, and "
            "rebuild the kept days it evaluated late events for."
        ),
    )
    def daily_usage_history_after_nightly(
        context: dg.RunStatusSensorContext,
    ) -> dg.RunRequest | dg.SkipReason:
        return history_request(context.dagster_run, first_day)

    return daily_usage_history_after_nightly
