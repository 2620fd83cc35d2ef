"""The dbt models, built by real dbt through the ``warehouse_models`` asset on a tiny warehouse.

dbt takes a few seconds per call, so one module-scoped build serves the aggregation tests, and
only the bad-data cases run dbt again.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
import pytest

from licensing_pipeline.contract.catalog import Catalog, Metric, Package
from licensing_pipeline.contract.schemas import USAGE_EVENTS_SQL
from licensing_pipeline.run_config import RunSettings
from licensing_pipeline.warehouse.assets import (
    WAREHOUSE_GROUP,
    build_dbt_resource,
    dbt_build_args,
    prune_run_folders,
    warehouse_models,
)
from licensing_pipeline.warehouse.manifest import dbt_environment
from licensing_pipeline.warehouse.resources import Warehouse
from licensing_pipeline_tests.postgres import fresh_database

AS_OF = "2026-10-02"
MODELS = {
    "events_in_scope",
    "metric_daily",
    "metric_daily_values",
    "usage_daily",
    "usage_monthly",
    "feature_usage_daily",
    "region_usage_daily",
    "tenant_activity_daily",
}

CATALOG = Catalog(
    version="2026-10-01",
    regions={"eu-west-1": "EU", "us-east-1": "US"},
    features=("sso", "reports_export"),
    metrics={
        "api_calls": Metric("api_calls", "api.request", "COUNT"),
        "seats": Metric("seats", "auth.login", "UNIQUE_COUNT", "user_id"),
        # Two metrics fed by the same event type.
        "storage_gb": Metric("storage_gb", "storage.reported", "MAX", "gb"),
        "storage_latest_gb": Metric("storage_latest_gb", "storage.reported", "LATEST", "gb"),
        "egress_gb": Metric("egress_gb", "egress.reported", "SUM", "gb"),
    },
    plans={"starter": Package("starter", ("sso",), {"api_calls": 100.0})},
    addons={},
)


def event(
    source: str,
    event_id: str,
    event_type: str,
    tenant: str,
    time: str,
    **data: Any,
) -> dict[str, Any]:
    return {
        "source": source,
        "id": event_id,
        "type": event_type,
        "tenant_id": tenant,
        "time": pd.Timestamp(time),
        "user_id": data.get("user_id"),
        "feature": data.get("feature"),
        "region": data.get("region"),
        "data": json.dumps(data),
    }


EU = {"region": "eu-west-1"}
EVENTS = [
    # api_calls (COUNT): e1 is delivered twice; e2 from two sources is two events.
    event("gw", "e1", "api.request", "t1", "2026-09-30 23:30:00", feature="sso", **EU),
    event("gw", "e1", "api.request", "t1", "2026-09-30 23:30:00", feature="sso", **EU),
    event("gw", "e2", "api.request", "t1", "2026-10-01 08:00:00", feature="sso", **EU),
    event("sdk", "e2", "api.request", "t1", "2026-10-01 08:00:00", feature="sso", **EU),
    event("gw", "e3", "api.request", "t1", "2026-10-02 23:59:59"),  # last second of as-of
    event("gw", "e4", "api.request", "t1", "2026-10-03 00:00:00"),  # after as-of
    # seats (UNIQUE_COUNT of data.user_id): a month is not the sum of its days.
    event("idp", "l1", "auth.login", "t1", "2026-09-30 09:00:00", user_id="u1"),
    event("idp", "l2", "auth.login", "t1", "2026-10-01 09:00:00", user_id="u1"),
    event("idp", "l3", "auth.login", "t1", "2026-10-01 10:00:00", user_id="u2"),
    event("idp", "l4", "auth.login", "t1", "2026-10-02 09:00:00", user_id="u1"),
    event("idp", "l5", "auth.login", "t1", "2026-10-03 09:00:00", user_id="u3"),  # after
    # storage (MAX and LATEST of data.gb); s3 and s4 tie on time: the larger source wins.
    event("agent", "s1", "storage.reported", "t1", "2026-10-01 09:00:00", gb=7),
    event("agent", "s2", "storage.reported", "t1", "2026-10-01 12:00:00", gb=4),
    event("a", "s3", "storage.reported", "t1", "2026-10-02 10:00:00", gb=5),
    event("b", "s4", "storage.reported", "t1", "2026-10-02 10:00:00", gb=6),
    event("agent", "s5", "storage.reported", "t1", "2026-10-03 10:00:00", gb=100),  # after
    # egress (SUM of data.gb); x3 has no value: an event, but nothing to add.
    event("cdn", "x1", "egress.reported", "t1", "2026-10-01 01:00:00", gb=1.5),
    event("cdn", "x2", "egress.reported", "t1", "2026-10-02 01:00:00", gb=2.25),
    event("cdn", "x3", "egress.reported", "t1", "2026-10-02 02:00:00"),
    # t2: an API call and an event of a type no metric counts.
    event("gw", "e9", "api.request", "t2", "2026-10-01 12:00:00", region="us-east-1"),
    event("web", "p1", "page.view", "t2", "2026-10-01 12:05:00", region="us-east-1"),
]
# Distinct (source, id) before the end of the as-of day: 21 rows, 1 duplicate, 3 after as-of.
EVALUATED_EVENTS = 17


def write_warehouse(warehouse: Warehouse, events: list[dict[str, Any]]) -> Warehouse:
    """usage_events by SQL with its exact columns (as the source asset does); catalog as a frame."""
    columns = ", ".join(f'"{name}" {sql_type}' for name, sql_type in USAGE_EVENTS_SQL.items())
    frame = pd.DataFrame(
        [{**e, "file": "usage/events.jsonl", "line": n} for n, e in enumerate(events, start=1)],
        columns=list(USAGE_EVENTS_SQL),
    )
    with warehouse.staging() as con:
        con.execute(f"CREATE OR REPLACE TABLE main.usage_events ({columns})")
        con.register("_events", frame)
        con.execute("INSERT INTO main.usage_events SELECT * FROM _events")
        warehouse.publish(con, ["usage_events"])
    warehouse.write_frame("catalog", CATALOG.to_frame())
    return warehouse


def build(
    warehouse: Warehouse, instance: dg.DagsterInstance | None = None, as_of: str = AS_OF
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [warehouse_models],
        resources={
            "dbt": build_dbt_resource(),
            "warehouse": warehouse,
            "run_settings": RunSettings(data_dir=".", as_of=as_of),
        },
        instance=instance,
        raise_on_error=False,
    )


def table(warehouse: Warehouse, name: str) -> pd.DataFrame:
    return warehouse.read_frame(name)


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Warehouse, dg.ExecuteInProcessResult]]:
    """The models built once per backend: the same SQL must give the same tables on both."""
    if request.param == "duckdb":
        path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
        warehouse = Warehouse(path=str(path))
        yield warehouse, build(write_warehouse(warehouse, EVENTS))
        return
    with fresh_database() as url:
        warehouse = Warehouse(url=url)
        yield warehouse, build(write_warehouse(warehouse, EVENTS))


def usage(
    warehouse: Warehouse, name: str, grain: str
) -> dict[tuple[str, str, str], tuple[float, int]]:
    frame = table(warehouse, name)
    return {
        (r.tenant_id, r.metric, str(getattr(r, grain))[:10]): (r.quantity, r.events)
        for r in frame.itertuples()
    }


def test_asset_wiring() -> None:
    assert {k.to_user_string() for k in warehouse_models.keys} == MODELS
    assert set(warehouse_models.group_names_by_key.values()) == {WAREHOUSE_GROUP}
    deps = {d.asset_key for spec in warehouse_models.specs for d in spec.deps}
    assert {dg.AssetKey("usage_events"), dg.AssetKey("catalog")} <= deps
    checks = {(k.asset_key.to_user_string(), k.name) for k in warehouse_models.check_keys}
    assert ("tenant_activity_daily", "usage_reconciles_with_events") in checks
    assert ("usage_monthly", "usage_monthly_metric_in_catalog") in checks
    assert dbt_build_args() == ["build"]  # the as-of day goes in LICENSING_AS_OF


def test_build_succeeds_and_every_dbt_test_passes(
    built: tuple[Warehouse, dg.ExecuteInProcessResult],
) -> None:
    _, result = built
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == MODELS
    checks = check_results(result)
    assert len(checks) >= 30
    assert all(checks.values()), [name for name, passed in checks.items() if not passed]


def test_usage_monthly_aggregates_each_metric_from_events(
    built: tuple[Warehouse, dg.ExecuteInProcessResult],
) -> None:
    warehouse, _ = built
    assert usage(warehouse, "usage_monthly", "period") == {
        ("t1", "api_calls", "2026-09"): (1.0, 1),  # duplicate delivery counts once
        ("t1", "api_calls", "2026-10"): (3.0, 3),  # e2 from two sources + e3; e4 is after as-of
        ("t1", "seats", "2026-09"): (1.0, 1),
        ("t1", "seats", "2026-10"): (2.0, 3),  # u1, u2 (the days would add up to 3)
        ("t1", "storage_gb", "2026-10"): (7.0, 4),  # the 100 is after as-of
        ("t1", "storage_latest_gb", "2026-10"): (6.0, 4),  # tie on time: source b > a
        ("t1", "egress_gb", "2026-10"): (3.75, 3),
        ("t2", "api_calls", "2026-10"): (1.0, 1),
    }
    assert list(table(warehouse, "usage_monthly").columns) == [
        "tenant_id",
        "metric",
        "period",
        "quantity",
        "events",
    ]


def test_usage_daily_aggregates_each_metric_per_utc_day(
    built: tuple[Warehouse, dg.ExecuteInProcessResult],
) -> None:
    warehouse, _ = built
    daily = usage(warehouse, "usage_daily", "usage_date")
    assert daily[("t1", "api_calls", "2026-09-30")] == (1.0, 1)
    assert daily[("t1", "api_calls", "2026-10-02")] == (1.0, 1)  # 23:59:59 is in
    assert ("t1", "api_calls", "2026-10-03") not in daily
    assert daily[("t1", "seats", "2026-10-01")] == (2.0, 2)
    assert daily[("t1", "seats", "2026-10-02")] == (1.0, 1)
    assert daily[("t1", "storage_gb", "2026-10-01")] == (7.0, 2)
    assert daily[("t1", "storage_latest_gb", "2026-10-01")] == (4.0, 2)  # 12:00 beats 09:00
    assert daily[("t1", "storage_latest_gb", "2026-10-02")] == (6.0, 2)
    assert daily[("t1", "egress_gb", "2026-10-01")] == (1.5, 1)
    assert daily[("t1", "egress_gb", "2026-10-02")] == (2.25, 2)
    assert len(daily) == 13
    frame = table(warehouse, "usage_daily")
    assert list(frame.columns) == ["tenant_id", "metric", "usage_date", "quantity", "events"]
    assert str(frame["events"].dtype) == "int64"
    assert str(frame["quantity"].dtype) == "float64"


def test_feature_region_and_activity_tables(
    built: tuple[Warehouse, dg.ExecuteInProcessResult],
) -> None:
    warehouse, _ = built

    def rows(name: str) -> set[tuple[Any, ...]]:
        frame = table(warehouse, name)
        frame["usage_date"] = frame["usage_date"].astype(str)
        return set(frame.itertuples(index=False, name=None))

    assert rows("feature_usage_daily") == {
        ("t1", "sso", "2026-09-30", 1),
        ("t1", "sso", "2026-10-01", 2),
    }
    assert rows("region_usage_daily") == {
        ("t1", "eu-west-1", "2026-09-30", 1),
        ("t1", "eu-west-1", "2026-10-01", 2),
        ("t2", "us-east-1", "2026-10-01", 2),
    }
    assert rows("tenant_activity_daily") == {
        ("t1", "2026-09-30", 2),
        ("t1", "2026-10-01", 7),
        ("t1", "2026-10-02", 6),
        ("t2", "2026-10-01", 2),
    }
    assert table(warehouse, "tenant_activity_daily")["events"].sum() == EVALUATED_EVENTS


def test_negative_value_fails_the_non_negative_checks(tmp_path: Path) -> None:
    bad = event("cdn", "x9", "egress.reported", "t1", "2026-10-02 03:00:00", gb=-10)
    result = build(write_warehouse(Warehouse(path=str(tmp_path / "wh.duckdb")), [*EVENTS, bad]))
    assert not result.success  # a blocking (error) check failed
    checks = check_results(result)
    assert checks["non_negative_usage_monthly_quantity"] is False
    assert checks["non_negative_usage_daily_quantity"] is False
    assert checks["usage_reconciles_with_events"] is True


def test_reconcile_test_catches_lost_events(
    built: tuple[Warehouse, dg.ExecuteInProcessResult], tmp_path: Path
) -> None:
    warehouse, _ = built
    if warehouse.is_postgres:
        pytest.skip("tampers with a copy of the DuckDB file; the test SQL is shared")
    tampered = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse.path, tampered)
    with duckdb.connect(str(tampered)) as con:
        con.execute("DELETE FROM main.tenant_activity_daily WHERE tenant_id = 't2'")
    args = [
        "test",
        "--select",
        "usage_reconciles_with_events",
        "--vars",
        json.dumps({"as_of": AS_OF}),
    ]
    with dbt_environment(LICENSING_WAREHOUSE_PATH=str(tampered)):
        invocation = build_dbt_resource().cli(
            args, raise_on_error=False, target_path=tmp_path / "dbt_target"
        )
    invocation.wait()
    assert not invocation.is_successful()
    results = invocation.get_artifact("run_results.json")["results"]
    assert [(r["unique_id"].split(".")[-1], r["status"]) for r in results] == [
        ("usage_reconciles_with_events", "fail")
    ]


def test_old_dbt_run_folders_are_pruned(tmp_path: Path) -> None:
    for n in range(5):
        folder = tmp_path / f"warehouse_models-run{n}"
        folder.mkdir()
        os.utime(folder, (1_000_000 + n, 1_000_000 + n))
    (tmp_path / "partial_parse").mkdir()
    removed = prune_run_folders(tmp_path, "warehouse_models", keep=3)
    assert sorted(p.name for p in removed) == ["warehouse_models-run0", "warehouse_models-run1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "partial_parse",
        "warehouse_models-run2",
        "warehouse_models-run3",
        "warehouse_models-run4",
    ]
