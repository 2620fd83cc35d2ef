"""The data the expectations look at: derived views on small frames, and usage_events
aggregates computed by DuckDB."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from licensing_pipeline.contract.schemas import (
    CONTRACTS,
    QUARANTINED_RECORDS,
    USAGE_EVENTS_SQL,
    conform,
    empty_frame,
)
from licensing_pipeline.quality import batches as qb
from licensing_pipeline.warehouse.resources import Warehouse

AS_OF = date(2026, 11, 20)  # a Friday
NOW = datetime(2026, 11, 21, 2, 0)


def contracts(*rows: tuple[str, str, str, str | None, str]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [
            {
                "contract_id": cid,
                "tenant_id": tenant,
                "plan": "starter",
                "addons": "analytics; seats_pack_10",
                "quota_overrides": '{"api_calls": 10}',
                "start_date": start,
                "end_date": end,
                "status": status,
                "enforcement": "hard",
            }
            for cid, tenant, start, end, status in rows
        ]
    )
    return conform(frame, CONTRACTS)


def test_overlapping_active_contracts_are_paired_and_renewals_are_not():
    frame = contracts(
        ("c-1", "t-1", "2026-01-01", "2026-06-30", "active"),
        ("c-2", "t-1", "2026-07-01", None, "active"),  # renewal: the day after
        ("c-3", "t-2", "2026-01-01", None, "active"),
        ("c-4", "t-2", "2026-05-01", "2026-05-31", "active"),  # inside c-3
        ("c-5", "t-3", "2026-01-01", None, "active"),
        ("c-6", "t-3", "2026-02-01", None, "paused"),  # not active: no overlap
    )
    batch = qb.active_contract_overlaps(frame)
    found = dict(
        zip(batch.frame["contract_id"], batch.frame["overlapping_contract_id"], strict=True)
    )
    assert found["c-3"] == "c-4" and found["c-4"] == "c-3"
    assert all(pd.isna(found[c]) for c in ("c-1", "c-2", "c-5"))
    assert "c-6" not in found
    row = batch.frame[batch.frame["contract_id"] == "c-3"].iloc[0].to_dict()
    assert batch.label(row) == "c-3 and c-4 (t-2)"


def test_addons_and_overrides_are_one_row_per_name():
    frame = contracts(("c-1", "t-1", "2026-01-01", None, "active"))
    assert list(qb.contract_addons(frame).frame["addon"]) == ["analytics", "seats_pack_10"]
    assert list(qb.contract_quota_overrides(frame).frame["metric"]) == ["api_calls"]


def test_quarantine_reasons_name_the_lines():
    quarantined = conform(
        pd.DataFrame(
            {
                "source": ["billing_records"] * 3,
                "file": ["/x/billing_records.csv"] * 3,
                "line": [4, 9, 17],
                "field": ["billed_quantity"] * 3,
                "raw": ["a", "b", "c"],
                "reason": ["billed_quantity is negative"] * 3,
            }
        ),
        QUARANTINED_RECORDS,
    )
    batch = qb.quarantine_batch(quarantined)
    assert batch.facts["reasons"] == "billed_quantity is negative (3: lines 4, 9, 17)"
    assert batch.label(batch.frame.iloc[0].to_dict()) == "billing_records.csv line 4"


@pytest.mark.parametrize(
    ("usual", "floor"),
    [(0, 0.0), (10, 0.0), (100, 50.0), (25, 10.0)],  # 25: 25 - 3*5 = 10 < 12.5
)
def test_volume_floor(usual: float, floor: float):
    assert qb.volume_floor(usual, 0.5, 20) == pytest.approx(floor)


def _usage(con: duckdb.DuckDBPyConnection, events: list[dict]) -> None:
    columns = ", ".join(f'"{c}" {t}' for c, t in USAGE_EVENTS_SQL.items())
    con.execute(f"CREATE TABLE usage_events ({columns})")
    con.execute(
        "CREATE TABLE quarantine_usage_events "
        "(source VARCHAR, file VARCHAR, line BIGINT, field VARCHAR, raw VARCHAR, reason VARCHAR)"
    )
    frame = pd.DataFrame(events, columns=list(USAGE_EVENTS_SQL))
    con.register("_events", frame)
    con.execute("INSERT INTO usage_events SELECT * FROM _events")


def _day_events(tenant: str, day: date, n: int, start: int, file: str = "a.jsonl") -> list[dict]:
    return [
        {
            "source": "gw",
            "id": f"{tenant}-{day}-{i}",
            "type": "api.request",
            "tenant_id": tenant,
            "time": datetime.combine(day, datetime.min.time()) + timedelta(minutes=10 + i),
            "file": file,
            "line": start + i,
        }
        for i in range(n)
    ]


@pytest.fixture
def usage() -> duckdb.DuckDBPyConnection:
    """Four usual Fridays of 100 events for t-big and 5 for t-small, then an as-of day
    that brings 30 and 5."""
    con = duckdb.connect()
    events, line = [], 1
    for weeks in range(1, 5):
        day = AS_OF - timedelta(weeks=weeks)
        for tenant, n in (("t-big", 100), ("t-small", 5)):
            events += _day_events(tenant, day, n, line)
            line += n
    events += _day_events("t-big", AS_OF, 30, line)
    events += _day_events("t-small", AS_OF, 5, line + 30)
    _usage(con, events)
    return con


def _usage_batches(con: duckdb.DuckDBPyConnection) -> dict[str, qb.Batch]:
    """The usage batches of AS_OF at NOW, with the default thresholds."""
    return qb.usage_batches(
        con,
        AS_OF,
        qb.UsageThresholds(),
        now=NOW,
        future_tolerance_hours=48,
        events_table="usage_events",
        quarantine_table="quarantine_usage_events",
    )


def test_a_short_as_of_day_is_below_the_feed_and_tenant_floor(usage):
    batches = _usage_batches(usage)
    feed = batches["usage_events.feed_volume"]
    row = feed.frame.iloc[0]
    assert row["as_of_day_events"] == 35 and row["usual_events"] == 105
    assert row["as_of_day_events"] < row["volume_floor"]
    assert feed.facts["share_of_usual"] == "33%" and feed.facts["weekday"] == "Friday"
    tenants = batches["usage_events.tenant_volume"].frame.set_index("tenant_id")
    assert tenants.loc["t-big", "as_of_day_events"] < tenants.loc["t-big", "volume_floor"]
    assert tenants.loc["t-small", "volume_floor"] == 0  # too small a day to judge


def test_freshness_is_hours_from_the_newest_event_to_the_end_of_as_of(usage):
    batches = _usage_batches(usage)
    fresh = batches["usage_events.freshness"]
    hours = fresh.frame["hours_since_newest_event"].iloc[0]
    assert hours == pytest.approx(24 - (10 + 29) / 60)  # the newest: t-big at 00:39


def test_a_file_ending_in_half_a_json_object_is_cut_off(usage):
    usage.execute(
        "INSERT INTO quarantine_usage_events VALUES "
        "('usage_events', 'a.jsonl', 9999, NULL, '{\"id\":\"x\",\"sou', 'not valid JSON'),"
        "('usage_events', 'b.jsonl', 3, NULL, '<html>', 'not valid JSON')"
    )
    usage.execute(
        "INSERT INTO usage_events (source, id, type, tenant_id, time, file, line) VALUES "
        "('gw', 'b1', 'api.request', 't-big', TIMESTAMP '2026-11-01 00:00:00', 'b.jsonl', 1)"
    )
    batches = _usage_batches(usage)
    files = batches["usage_events.files"]
    cut = files.frame.set_index("file")["cut_off_at_line"]
    assert cut["a.jsonl"] == 9999
    assert pd.isna(cut["b.jsonl"])  # an HTML error page at the end is bad, not truncated
    assert files.label(files.frame.iloc[0].to_dict()).startswith("a.jsonl at line 9999")


def test_events_far_ahead_of_the_clock_are_counted(usage):
    usage.execute(
        "INSERT INTO usage_events (source, id, type, tenant_id, time, file, line) VALUES "
        "('gw', 'f1', 'api.request', 't-big', TIMESTAMP '2030-01-01 00:00:00', 'a.jsonl', 1),"
        "('gw', 'f2', 'api.request', 't-big', TIMESTAMP '2026-11-22 00:00:00', 'a.jsonl', 2)"
    )
    batches = _usage_batches(usage)
    latest = batches["usage_events.latest"]
    assert latest.facts["future_events"] == 1  # 2026-11-22 is within 48 h of the clock
    assert latest.frame["hours_ahead"].max() > 48


def test_unknown_subjects_and_regions_are_matched_with_their_findings():
    activity = pd.DataFrame({"tenant_id": ["t-1", "t-x", "t-y"], "events": [5, 3, 2]})
    tenants = pd.DataFrame({"tenant_id": ["t-1"]})
    known = pd.DataFrame({"tenant_id": ["t-1"]})
    findings = pd.DataFrame(
        {
            "tenant_id": ["t-x", "t-1"],
            "check": ["inactive_contract_usage", "residency_violation"],
            "subject": ["contract", "mars-1"],
            "status": ["open", "open"],
        }
    )
    subjects = qb.unknown_tenants(activity, tenants, known, findings).frame
    assert dict(
        zip(subjects["tenant_id"], subjects["inactive_contract_usage_findings"], strict=True)
    ) == {
        "t-x": 1,
        "t-y": 0,
    }
    catalog = pd.DataFrame({"kind": ["region"], "name": ["us-east-1"], "jurisdiction": ["US"]})
    regions = pd.DataFrame(
        {
            "tenant_id": ["t-1", "t-1", "t-2"],
            "region": ["us-east-1", "mars-1", "mars-1"],
            "events": [1, 2, 3],
        }
    )
    pairs = qb.unknown_regions(regions, catalog, findings).frame
    assert sorted(zip(pairs["tenant_id"], pairs["residency_violation_findings"], strict=True)) == [
        ("t-1", 1),
        ("t-2", 0),
    ]


def test_suite_parameters_come_from_the_catalog_and_the_contract():
    catalog = pd.DataFrame(
        {
            "kind": ["region", "plan", "metric"],
            "name": ["eu-west-1", "starter", "api_calls"],
            "jurisdiction": ["EU", None, None],
        }
    )
    parameters = qb.suite_parameters(catalog, freshness_hours=36.0)
    assert parameters["catalog_plans"] == ["starter"]
    assert parameters["catalog_jurisdictions"] == ["ANY", "EU"]
    assert parameters["freshness_hours"] == 36.0
    assert "usage_anomaly" in parameters["checks"]
    assert Path  # keep the import for the fixtures above


def _early_usage(con: Any, contracts_table: str | None) -> qb.Batch:
    every = qb.usage_batches(
        con,
        AS_OF,
        qb.UsageThresholds(),
        now=NOW,
        future_tolerance_hours=48,
        contracts_table=contracts_table,
    )
    return every["usage_events.early_usage"]


def test_usage_long_before_the_first_contract_is_named(any_warehouse: Warehouse):
    """On both warehouses: per tenant with usage before its first contract, the earliest
    event and how many days before the contract it is; tenants without a contract (their
    usage is an inactive_contract_usage finding) and usage after the start are not listed."""
    events = [
        *_day_events("t-early", date(2001, 3, 4), 2, 1),
        *_day_events("t-early", date(2025, 12, 1), 1, 3),
        *_day_events("t-early", date(2026, 11, 1), 5, 4),
        *_day_events("t-ok", date(2026, 1, 1), 1, 9),
        *_day_events("t-none", date(2010, 1, 1), 1, 10),
    ]
    frame = pd.DataFrame(events, columns=list(USAGE_EVENTS_SQL))
    any_warehouse.write_frame("usage_events", frame.astype({"line": "int64"}))
    any_warehouse.write_frame("quarantine_usage_events", empty_frame(QUARANTINED_RECORDS))
    any_warehouse.write_frame(
        "contracts",
        contracts(
            ("c-1", "t-early", "2026-01-30", None, "active"),
            ("c-2", "t-early", "2027-01-01", None, "active"),
            ("c-3", "t-ok", "2026-01-01", None, "active"),
        ),
    )
    with any_warehouse.connect() as con:
        early = _early_usage(con, "main.contracts")
    assert early.frame["tenant_id"].tolist() == ["t-early"]
    row = early.frame.iloc[0].to_dict()
    assert row["days_before_first_contract"] == pytest.approx(
        (datetime(2026, 1, 30) - datetime(2001, 3, 4, 0, 10)).total_seconds() / 86400
    )
    assert early.label(row) == (
        "t-early: an event on 2001-03-04, 9,098 days before its first contract (2026-01-30)"
    )
    with any_warehouse.connect() as con:
        unknown = _early_usage(con, None)  # contracts not loaded
    assert unknown.frame.empty and "days_before_first_contract" in unknown.frame
