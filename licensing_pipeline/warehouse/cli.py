"""`licensing-pipeline snapshots`: build the usage history (daily events and snapshots) for a
range of days from the shell, as one run of the day-partitioned job (what a backfill in the UI
launches)."""

import argparse
import contextlib
import io
from datetime import UTC, date, datetime
from typing import Any

from licensing_pipeline.cli import EXIT_JOB_FAILED, CliError, _iso_date
from licensing_pipeline.settings import Settings
from licensing_pipeline.warehouse.history_days import late_days


def snapshot_range(
    first_day: str | None, last_day: str | None, settings: Settings
) -> tuple[date, date]:
    """The days to build (``--from``/``--to``, checked by ``_iso_date``): the last defaults
    to the as-of day (today), the first to the last."""
    last_text = last_day or settings.as_of
    last = date.fromisoformat(last_text) if last_text else datetime.now(UTC).date()
    first = date.fromisoformat(first_day) if first_day else last
    if first > last:
        raise CliError(f"--from {first} is after --to {last}")
    if first < settings.history_start:
        raise CliError(
            f"--from {first} is before the first snapshot day {settings.history_start} "
            "(set LICENSING_HISTORY_START to go further back)"
        )
    return first, last


def cmd_snapshots(args: argparse.Namespace, settings: Settings) -> int:
    import dagster as dg

    from licensing_pipeline.definitions import build_definitions
    from licensing_pipeline.instance import ensure_dagster_home, process_tags
    from licensing_pipeline.warehouse.history import HISTORY_JOB
    from licensing_pipeline.warehouse.resources import warehouse_for

    first, last = snapshot_range(args.first, args.last, settings)
    warehouse = warehouse_for(settings)
    tables = warehouse.table_names()
    missing = {"events_in_scope", "effective_entitlements"} - tables
    if missing:
        raise CliError(
            f"the warehouse has no {', '.join(sorted(missing))} yet: run "
            "`licensing-pipeline run` first (snapshots read what the nightly run loaded)"
        )
    if args.late:
        if "daily_usage_events" not in tables:
            raise CliError(
                "no day of the history is kept yet: build it first with "
                "`licensing-pipeline snapshots --from DAY`"
            )
        late = [day for day in late_days(warehouse, settings.history_start) if day <= last]
        if not late:
            print(f"No kept day up to {last} has gained events since it was kept.")
            return 0
        # Month-to-date snapshots after a late day change too: rebuild through the last day.
        first = late[0]
        print(f"{len(late)} kept day(s) gained events since: {', '.join(map(str, late))}")
    ensure_dagster_home(settings)
    print(f"Building the daily usage history {first} .. {last} on {warehouse.location}", flush=True)
    job = build_definitions(settings).resolve_job_def(HISTORY_JOB)
    tags = {
        **process_tags(),
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }
    quiet = contextlib.nullcontext() if args.verbose else contextlib.redirect_stdout(io.StringIO())
    with dg.DagsterInstance.get() as instance, quiet:
        result = job.execute_in_process(
            run_config={"loggers": {"progress": {}}},
            instance=instance,
            tags=tags,
            raise_on_error=False,
        )
    if not result.success:
        print(f"Run {result.run_id} FAILED; open it in the Dagster UI for the log.")
        return EXIT_JOB_FAILED
    summary = warehouse.read_frame(
        "SELECT count(DISTINCT snapshot_day) AS days, count(*) AS row_count, "
        "count(DISTINCT tenant_id) AS tenants FROM main.daily_usage_snapshots "
        f"WHERE snapshot_day BETWEEN CAST('{first}' AS DATE) AND CAST('{last}' AS DATE)"
    )
    events = warehouse.read_frame(
        "SELECT count(*) AS n FROM main.daily_usage_events "
        f"WHERE usage_date BETWEEN CAST('{first}' AS DATE) AND CAST('{last}' AS DATE)"
    )["n"].iloc[0]
    over = warehouse.read_frame(
        "SELECT tenant_id, metric, quantity, allowed FROM main.daily_usage_snapshots "
        f"WHERE snapshot_day = CAST('{last}' AS DATE) AND allowed IS NOT NULL "
        "AND quantity > allowed ORDER BY tenant_id, metric"
    )
    row: Any = summary.iloc[0]
    print(
        f"Run {result.run_id} succeeded: {int(events)} events kept by day; "
        f"{int(row['row_count'])} snapshot rows over "
        f"{int(row['days'])} day(s) with usage, {int(row['tenants'])} tenant(s)."
    )
    if len(over):
        print(f"Over quota at the end of {last}:")
        for r in over.itertuples():
            print(f"  {r.tenant_id}  {r.metric}  {r.quantity:g} of {r.allowed:g}")
    return 0


def add_snapshot_commands(sub: Any) -> None:
    snapshots = sub.add_parser(
        "snapshots",
        help="build the daily usage history (events, snapshots) for a range of days",
    )
    start = snapshots.add_mutually_exclusive_group()
    start.add_argument(
        "--from", dest="first", type=_iso_date, help="first day (default: the --to day)"
    )
    start.add_argument(
        "--late",
        action="store_true",
        help="from the first kept day that has gained events since (late deliveries) to --to",
    )
    snapshots.add_argument(
        "--to", dest="last", type=_iso_date, help="last day (default: LICENSING_AS_OF or today)"
    )
    snapshots.add_argument("--verbose", action="store_true", help="also print dbt's logs")
    snapshots.set_defaults(func=cmd_snapshots)
