"""The day-partitioned usage history (daily events and snapshots): real dbt on both
warehouses, and the sensor that adds a partition after each nightly run."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from licensing_pipeline.definitions import build_definitions
from licensing_pipeline.settings import load_settings
from licensing_pipeline.warehouse.assets import HISTORY_GROUP, build_dbt_resource
from licensing_pipeline.warehouse.history import (
    DAILY_EVENTS,
    SNAPSHOTS,
    build_daily_usage_history,
    daily_partitions,
    history_backfill_policy,
    history_request,
)
from licensing_pipeline.warehouse.history_days import LATE_FROM_TAG, late_days
from licensing_pipeline.warehouse.resources import Warehouse
from licensing_pipeline_tests.backends import backend_environment
from licensing_pipeline_tests.postgres import fresh_database
from licensing_pipeline_tests.warehouse.test_dbt_models import (
    AS_OF,
    EU,
    EVALUATED_EVENTS,
    EVENTS,
    build,
    event,
    write_warehouse,
)

HISTORY_ASSETS = build_daily_usage_history(
    daily_partitions(date(2026, 9, 1)), dg.BackfillPolicy.single_run()
)


def entitlements() -> pd.DataFrame:
    """t1 has quotas for api_calls and seats in October; t2 has no entitlement row."""
    return pd.DataFrame(
        {
            "tenant_id": ["t1", "t1"],
            "period": ["2026-09", "2026-10"],
            "entitled": [True, True],
            "quotas": [json.dumps({"api_calls": 100.0}), json.dumps({"api_calls": 2, "seats": 5})],
        }
    )


def history(warehouse: Warehouse, first: str, last: str) -> dg.ExecuteInProcessResult:
    """One run over the partition range first..last, as a backfill launches it."""
    return dg.materialize(
        [HISTORY_ASSETS],
        resources={"dbt": build_dbt_resource(), "warehouse": warehouse},
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        raise_on_error=False,
    )


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def warehouse(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Warehouse]:
    """The nightly models as of AS_OF, the entitlements, then a backfill of 09-29..AS_OF."""

    def prepared(warehouse: Warehouse) -> Warehouse:
        assert build(write_warehouse(warehouse, EVENTS)).success
        warehouse.write_frame("effective_entitlements", entitlements())
        result = history(warehouse, "2026-09-29", AS_OF)
        assert result.success
        checks = [e for e in result.get_asset_check_evaluations()]
        assert checks and all(e.passed for e in checks)
        return warehouse

    if request.param == "duckdb":
        path = tmp_path_factory.mktemp("snapshots") / "warehouse.duckdb"
        yield prepared(Warehouse(path=str(path)))
        return
    with fresh_database() as url:
        yield prepared(Warehouse(url=url))


def rows(warehouse: Warehouse) -> dict[tuple[str, str, str], tuple[float, int, float | None]]:
    frame = warehouse.read_frame("daily_usage_snapshots")
    found = {
        (r.tenant_id, r.metric, str(r.snapshot_day)[:10]): (
            float(r.quantity),
            int(r.events),
            None if pd.isna(r.allowed) else float(r.allowed),
        )
        for r in frame.itertuples()
    }
    assert len(found) == len(frame), "a (tenant, metric, day) appears twice"
    return found


def test_each_day_holds_month_to_date_usage_by_the_metrics_aggregation(
    warehouse: Warehouse,
) -> None:
    got = rows(warehouse)
    # api_calls (COUNT): e1 on 09-30 (delivered twice, counted once); the month restarts.
    assert got[("t1", "api_calls", "2026-09-30")] == (1.0, 1, 100.0)
    assert got[("t1", "api_calls", "2026-10-01")] == (2.0, 2, 2.0)
    assert got[("t1", "api_calls", "2026-10-02")] == (3.0, 3, 2.0)
    # seats (UNIQUE_COUNT): u1, u2 on 10-01; u1 again on 10-02 adds no seat.
    assert got[("t1", "seats", "2026-10-01")] == (2.0, 2, 5.0)
    assert got[("t1", "seats", "2026-10-02")] == (2.0, 3, 5.0)
    # storage (MAX, LATEST): 7 then 4 on 10-01, 5 and 6 (tie: source b) on 10-02.
    assert got[("t1", "storage_gb", "2026-10-01")][0] == 7.0
    assert got[("t1", "storage_gb", "2026-10-02")][0] == 7.0
    assert got[("t1", "storage_latest_gb", "2026-10-01")][0] == 4.0
    assert got[("t1", "storage_latest_gb", "2026-10-02")][0] == 6.0
    # egress (SUM): 1.5, then + 2.25 (x3 has no value).
    assert got[("t1", "egress_gb", "2026-10-02")] == (3.75, 3, None)  # no quota: unlimited
    # No events yet in the month, no row; no entitlement row, no quota.
    assert ("t1", "api_calls", "2026-09-29") not in got
    assert got[("t2", "api_calls", "2026-10-01")] == (1.0, 1, None)


def test_the_as_of_day_equals_the_monthly_table(warehouse: Warehouse) -> None:
    monthly = warehouse.read_frame("usage_monthly")
    october = monthly[monthly["period"] == "2026-10"]
    got = rows(warehouse)
    assert len(october) > 0
    for r in october.itertuples():
        assert got[(r.tenant_id, r.metric, AS_OF)][:2] == (r.quantity, r.events)


def test_rerunning_a_day_replaces_it(warehouse: Warehouse) -> None:
    before, events_before = rows(warehouse), daily_events(warehouse)
    result = history(warehouse, "2026-10-01", "2026-10-01")
    assert result.success
    materialized = {
        (e.asset_key.to_user_string(), e.partition)
        for e in result.get_asset_materialization_events()
        if e.asset_key
    }
    assert materialized == {
        ("daily_usage_events", "2026-10-01"),
        ("daily_usage_snapshots", "2026-10-01"),
    }
    assert rows(warehouse) == before  # same rows, none twice (the unique check passed too)
    after = daily_events(warehouse)
    key = ["source", "id"]
    assert (
        after.sort_values(key)
        .reset_index(drop=True)
        .equals(events_before.sort_values(key).reset_index(drop=True))
    )


def test_the_history_keeps_days_the_exports_dropped_and_takes_late_events(
    tmp_path: Path,
) -> None:
    """A vendor's export keeps a rolling window, and a late event arrives for a past day:
    re-running that day adds the late event; days no longer exported stay as they were."""
    warehouse = Warehouse(path=str(tmp_path / "warehouse.duckdb"))
    assert build(write_warehouse(warehouse, EVENTS)).success
    warehouse.write_frame("effective_entitlements", entitlements())
    assert history(warehouse, "2026-09-30", AS_OF).success
    late = event("gw", "e7", "api.request", "t1", "2026-10-01 18:00:00", **EU)
    exported = [e for e in EVENTS if e["time"] >= pd.Timestamp("2026-10-01")] + [late]
    # 09-30 is no longer exported (fewer events, not more): only 10-01 gained one, and the
    # nightly run says so on itself for the history sensor.
    assert nightly_tags(write_warehouse(warehouse, exported)).get(LATE_FROM_TAG) == "2026-10-01"
    assert late_days(warehouse, date(2026, 9, 1)) == [date(2026, 10, 1)]

    assert history(warehouse, "2026-10-01", "2026-10-01").success
    per_day = daily_events(warehouse).groupby("usage_date").size().to_dict()
    assert per_day == {"2026-09-30": 2, "2026-10-01": 10, "2026-10-02": 6}
    got = rows(warehouse)
    assert got[("t1", "api_calls", "2026-09-30")][:2] == (1.0, 1)  # no longer exported
    assert got[("t1", "api_calls", "2026-10-01")][:2] == (3.0, 3)  # e2 twice, and late e7
    assert got[("t1", "api_calls", "2026-10-02")][:2] == (3.0, 3)  # not re-run: as it was
    assert late_days(warehouse, date(2026, 9, 1)) == []
    assert LATE_FROM_TAG not in nightly_tags(warehouse)


def nightly_tags(warehouse: Warehouse) -> dict[str, str]:
    """The tags a nightly build of the warehouse models leaves on its run."""
    with dg.DagsterInstance.ephemeral() as instance:
        result = build(warehouse, instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        return dict(run.tags)


def test_a_first_nightly_run_has_no_late_days(tmp_path: Path) -> None:
    warehouse = write_warehouse(Warehouse(path=str(tmp_path / "w.duckdb")), EVENTS)
    assert LATE_FROM_TAG not in nightly_tags(warehouse)  # no history kept yet


def test_the_history_is_its_own_day_partitioned_group_outside_the_nightly_job(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LICENSING_HOME", str(tmp_path))
    monkeypatch.setenv("LICENSING_HISTORY_START", "2024-03-01")
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    nightly = defs.resolve_job_def("nightly_compliance")
    job = defs.resolve_job_def("daily_usage_history")
    for key in (DAILY_EVENTS, SNAPSHOTS):
        node = graph.get(key)
        assert node.group_name == HISTORY_GROUP
        partitions = node.partitions_def
        assert isinstance(partitions, dg.DailyPartitionsDefinition)
        assert partitions.get_first_partition_key() == "2024-03-01"
        assert key not in nightly.asset_layer.selected_asset_keys
        assert key in job.asset_layer.selected_asset_keys
        assert dg.AssetKey("events_in_scope") in graph.get(key).parent_keys
    assert dg.AssetKey("usage_monthly") in nightly.asset_layer.selected_asset_keys
    assert job.partitions_def == graph.get(SNAPSHOTS).partitions_def
    # Embedded: a backfill is one run (one DuckDB writer); PostgreSQL: a run per month of days.
    assert graph.get(SNAPSHOTS).backfill_policy == dg.BackfillPolicy.single_run()
    assert history_backfill_policy("postgres").max_partitions_per_run == 31
    sensor = defs.resolve_sensor_def("daily_usage_history_after_nightly")
    assert sensor.job_name == "daily_usage_history"


def daily_events(warehouse: Warehouse) -> pd.DataFrame:
    frame = warehouse.read_frame("daily_usage_events")
    frame["usage_date"] = frame["usage_date"].astype(str).str[:10]
    return frame


def test_each_day_holds_its_evaluated_events_once(warehouse: Warehouse) -> None:
    frame = daily_events(warehouse)
    assert len(frame) == EVALUATED_EVENTS
    per_day = frame.groupby("usage_date").size().to_dict()
    # e1 (delivered twice) and l1 on 09-30; nothing on 09-29; events after AS_OF left out.
    assert per_day == {"2026-09-30": 2, "2026-10-01": 9, "2026-10-02": 6}
    assert not frame.duplicated(["source", "id"]).any()
    assert set(frame["evaluated_through"].astype(str).str[:10]) == {AS_OF}


def nightly_run(as_of: str | None, run_id: str = "r1") -> dg.DagsterRun:
    config = {"resources": {"run_settings": {"config": {"data_dir": ".", "as_of": as_of}}}}
    return dg.DagsterRun(job_name="nightly_compliance", run_id=run_id, run_config=config)


def test_a_nightly_run_requests_the_partition_of_its_as_of_day() -> None:
    request = history_request(nightly_run("2026-11-27"), date(2025, 1, 1))
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2026-11-27"
    again = history_request(nightly_run("2026-11-27", run_id="r2"), date(2025, 1, 1))
    assert isinstance(again, dg.RunRequest) and again.run_key != request.run_key
    today = history_request(nightly_run(None), date(2025, 1, 1))  # a run without as_of
    assert isinstance(today, dg.RunRequest)
    assert today.partition_key == datetime.now(UTC).date().isoformat()
    too_early = history_request(nightly_run("2024-12-31"), date(2025, 1, 1))
    assert isinstance(too_early, dg.SkipReason)
    assert "LICENSING_HISTORY_START" in (too_early.skip_message or "")


def test_a_nightly_run_with_late_events_requests_the_days_from_the_first_late_one() -> None:
    run = nightly_run("2026-11-27").with_tags({LATE_FROM_TAG: "2026-10-14"})
    request = history_request(run, date(2025, 1, 1))
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key is None
    assert request.partition_key_range == dg.PartitionKeyRange("2026-10-14", "2026-11-27")
    # A late day before the first history day (LICENSING_HISTORY_START moved on since), one
    # not before the as-of day, or no day at all: the as-of partition alone.
    for tag in ("2024-06-01", "2026-11-27", "2026-11-28", "soon"):
        alone = history_request(
            nightly_run("2026-11-27").with_tags({LATE_FROM_TAG: tag}), date(2025, 1, 1)
        )
        assert isinstance(alone, dg.RunRequest) and alone.partition_key == "2026-11-27", tag


def test_the_history_start_must_be_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LICENSING_HISTORY_START", "last year")
    with pytest.raises(ValueError, match="LICENSING_HISTORY_START must be a day"):
        load_settings()


def test_a_mistyped_as_of_day_stops_the_snapshots_command_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from licensing_pipeline import cli

    with backend_environment({"LICENSING_HOME": str(tmp_path), "LICENSING_AS_OF": "2026-13-01"}):
        assert cli.main(["snapshots"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "LICENSING_AS_OF must be a day like 2025-01-01, got '2026-13-01'" in err
    assert "Traceback" not in err


def test_days_after_the_warehouse_as_of_are_refused(warehouse: Warehouse) -> None:
    before, events_before = rows(warehouse), len(daily_events(warehouse))
    result = history(warehouse, "2026-10-02", "2026-10-03")
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failures[0].event_specific_data)
    assert "evaluated through 2026-10-02" in message and "as of 2026-10-03 first" in message
    assert rows(warehouse) == before  # nothing deleted
    assert len(daily_events(warehouse)) == events_before


def test_the_snapshots_command_explains_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from licensing_pipeline import cli

    with backend_environment({"LICENSING_HOME": str(tmp_path)}):
        assert cli.main(["snapshots", "--to", "2026-11-20"]) == cli.EXIT_USAGE
        assert "run `licensing-pipeline run` first" in capsys.readouterr().err
        assert cli.main(["snapshots", "--from", "2026-11-21", "--to", "2026-11-20"]) == 2
        assert "is after --to" in capsys.readouterr().err
        assert cli.main(["snapshots", "--from", "2020-01-01", "--to", "2020-01-02"]) == 2
        assert "LICENSING_HISTORY_START" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            cli.main(["snapshots", "--from", "2026-11-01", "--late"])
        assert "not allowed with argument" in capsys.readouterr().err


def test_ranges_run_at_once_on_postgresql(tmp_path: Path) -> None:
    """What a fanned-out backfill does on the postgres profile: two runs over different
    ranges at the same time, each replacing only its own days."""
    from concurrent.futures import ThreadPoolExecutor

    with fresh_database() as url:
        warehouse = Warehouse(url=url)
        assert build(write_warehouse(warehouse, EVENTS)).success
        warehouse.write_frame("effective_entitlements", entitlements())
        assert history(warehouse, "2026-09-29", AS_OF).success
        before, events_before = rows(warehouse), len(daily_events(warehouse))

        def timed(days: tuple[str, str]) -> tuple[dg.ExecuteInProcessResult, float, float]:
            start = time.monotonic()
            return history(warehouse, *days), start, time.monotonic()

        with ThreadPoolExecutor(max_workers=2) as pool:
            (run_a, start_a, end_a), (run_b, start_b, end_b) = pool.map(
                timed, [("2026-09-29", "2026-09-30"), ("2026-10-01", AS_OF)]
            )
        assert start_a < end_b and start_b < end_a  # the two runs overlapped
        for run in (run_a, run_b):
            assert run.success
            assert all(e.passed for e in run.get_asset_check_evaluations())
        assert rows(warehouse) == before
        assert len(daily_events(warehouse)) == events_before
