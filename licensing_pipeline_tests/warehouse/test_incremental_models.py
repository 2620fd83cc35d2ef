"""The nightly models built incrementally equal the same models built whole, on both backends.

Four nights across a month boundary, each ingested (registry) and built as of its day: the
third night also changes an earlier file, the fourth brings late events for the first night's
day (in the previous month) and re-delivers one. After them, and after an evaluation moved
back a day, every usage model equals a fresh warehouse's built whole from the same files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from licensing_pipeline.contract.usage import load_usage_events
from licensing_pipeline.warehouse.resources import Warehouse
from licensing_pipeline_tests.postgres import fresh_database
from licensing_pipeline_tests.warehouse.test_dbt_models import CATALOG, build

MODELS = {
    "events_in_scope": ["source", "id"],
    "metric_daily": ["tenant_id", "metric", "usage_date"],
    "metric_daily_values": ["tenant_id", "metric", "usage_date", "value_text"],
    "usage_daily": ["tenant_id", "metric", "usage_date"],
    "usage_monthly": ["tenant_id", "metric", "period"],
    "feature_usage_daily": ["tenant_id", "feature", "usage_date"],
    "region_usage_daily": ["tenant_id", "region", "usage_date"],
    "tenant_activity_daily": ["tenant_id", "usage_date"],
}
DAYS = ["2026-09-29", "2026-09-30", "2026-10-01", "2026-10-02"]


def line(id: str, type: str, tenant: str, time: str, **data: Any) -> str:
    body = {"user_id": "u1", "feature": "sso", "region": "eu-west-1", **data}
    return json.dumps(
        {"id": id, "source": "s", "type": type, "subject": tenant, "time": time, "data": body}
    )


def day_events(day: str, prefix: str) -> list[str]:
    return [
        line(f"{prefix}-a1", "api.request", "t1", f"{day}T08:00:00Z"),
        line(f"{prefix}-a2", "api.request", "t2", f"{day}T09:00:00Z", region="us-east-1"),
        line(f"{prefix}-s1", "auth.login", "t1", f"{day}T10:00:00Z", user_id=f"u-{prefix}"),
        line(f"{prefix}-g1", "storage.reported", "t1", f"{day}T11:00:00Z", gb=len(prefix)),
        line(f"{prefix}-x1", "egress.reported", "t1", f"{day}T12:00:00Z", gb=1.5),
        # after the end of the day: evaluated only once the window reaches it
        line(f"{prefix}-late", "api.request", "t1", f"{day}T23:59:59Z"),
    ]


def deliver(usage: Path, night: int) -> None:
    day = DAYS[night]
    lines = day_events(day, f"n{night}")
    if night == 2:  # the first night's file changes: one event more, one less
        first = usage / "night-0.jsonl"
        kept = first.read_text().splitlines()[1:]
        first.write_text(
            "\n".join([*kept, line("n0-extra", "api.request", "t1", f"{DAYS[0]}T13:00:00Z")]) + "\n"
        )
        os.utime(first, ns=(1, 10**18))
    if night == 3:  # late events for the first day, and a re-delivery of the second night's
        lines += [
            line("late-1", "api.request", "t1", f"{DAYS[0]}T15:00:00Z"),
            line("late-2", "storage.reported", "t1", f"{DAYS[0]}T16:00:00Z", gb=99),
            lines[0].replace("n3-a1", "n1-a1"),
        ]
    (usage / f"night-{night}.jsonl").write_text("\n".join(lines) + "\n")


def night(warehouse: Warehouse, usage: Path, as_of: str, full_refresh: bool = False) -> None:
    with warehouse.staging() as con, warehouse.ingest_target(con) as target:
        load_usage_events(con, usage, CATALOG, target=target, full_refresh=full_refresh)
    warehouse.write_frame("catalog", CATALOG.to_frame())
    assert build(warehouse, as_of=as_of).success


def tables(warehouse: Warehouse) -> dict[str, pd.DataFrame]:
    out = {}
    for model, key in MODELS.items():
        frame = warehouse.read_frame(model).drop(columns=["evaluated_through"], errors="ignore")
        out[model] = frame.sort_values(key).reset_index(drop=True)
    return out


def assert_same(incremental: Warehouse, whole: Warehouse, when: str) -> None:
    got, expected = tables(incremental), tables(whole)
    for model in MODELS:
        pd.testing.assert_frame_equal(got[model], expected[model], obj=f"{model} {when}")


@pytest.fixture(params=["duckdb", "postgres"])
def warehouses(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Warehouse]]:
    if request.param == "duckdb":
        yield [Warehouse(path=str(tmp_path / f"{n}.duckdb")) for n in ("incremental", "whole")]
        return
    with fresh_database() as first, fresh_database() as second:
        yield [Warehouse(url=first), Warehouse(url=second)]


def test_nights_built_incrementally_equal_a_whole_build(
    warehouses: list[Warehouse], tmp_path: Path
) -> None:
    incremental, whole = warehouses
    usage = tmp_path / "usage"
    usage.mkdir()
    for n, day in enumerate(DAYS):
        deliver(usage, n)
        night(incremental, usage, day)
    evaluated = incremental.read_frame("SELECT count(*) AS n FROM main.events_in_scope")
    assert int(evaluated["n"].iloc[0]) > 0
    night(whole, usage, DAYS[-1], full_refresh=True)
    assert_same(incremental, whole, f"after the night of {DAYS[-1]}")
    # an evaluation moved back a day: the later day goes out of every model
    night(incremental, usage, DAYS[-2])
    night(whole, usage, DAYS[-2], full_refresh=True)
    assert_same(incremental, whole, f"evaluated again as of {DAYS[-2]}")
