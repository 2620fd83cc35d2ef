from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from licensing_pipeline.compliance.entitlements import (
    last_day,
    parse_features,
    parse_quotas,
    period_of,
    resolve_entitlements,
)
from licensing_pipeline.contract.schemas import EFFECTIVE_ENTITLEMENTS
from licensing_pipeline_tests.compliance.builders import (
    CATALOG,
    activity,
    contract,
    contracts,
    day,
    tenants,
    via_duckdb,
)


def resolve(contract_rows=(), as_of="2026-10-15", tenant_ids=(), usage=()) -> pd.DataFrame:
    return resolve_entitlements(
        CATALOG, tenants(*tenant_ids), contracts(*contract_rows), activity(usage), day(as_of)
    )


def row(frame: pd.DataFrame, tenant: str, period: str) -> dict:
    found = frame[(frame["tenant_id"] == tenant) & (frame["period"] == period)]
    assert len(found) == 1, f"{tenant} {period}: {len(found)} rows"
    return found.iloc[0].to_dict()


def test_helpers():
    assert period_of(date(2026, 2, 28)) == "2026-02"
    assert last_day("2024-02") == date(2024, 2, 29)
    assert last_day("2026-12") == date(2026, 12, 31)
    assert parse_features('["sso", "api_access", "sso"]') == ("api_access", "sso")
    assert parse_features(None) == () and parse_features("not json") == ()
    assert parse_quotas('{"api_calls": 100, "bad": "x", "seats": 5.5}') == {
        "api_calls": 100.0,
        "seats": 5.5,
    }
    assert parse_quotas(pd.NA) == {}


def test_layout_and_months_from_contract_start_to_as_of():
    frame = resolve([contract("t1", "2026-07-01")])
    assert list(frame.columns) == list(EFFECTIVE_ENTITLEMENTS)
    assert dict(frame.dtypes.astype(str)) == EFFECTIVE_ENTITLEMENTS
    assert list(frame["period"]) == ["2026-07", "2026-08", "2026-09", "2026-10"]
    assert frame["entitled"].all()


def test_current_period_resolves_on_as_of_and_closed_ones_on_their_last_day():
    frame = resolve([contract("t1", "2026-09-01")], as_of="2026-10-15")
    assert row(frame, "t1", "2026-09")["resolved_on"] == pd.Timestamp("2026-09-30")
    assert row(frame, "t1", "2026-10")["resolved_on"] == pd.Timestamp("2026-10-15")


def test_contract_ending_mid_month_counts_for_the_current_period_only_until_it_ends():
    ends_mid_september = [contract("t1", "2026-08-01", "2026-09-15")]
    later = resolve(ends_mid_september, as_of="2026-10-15")
    assert row(later, "t1", "2026-08")["contract_status"] == "active"
    # not in force on 30 September: September is expired, and so is October
    september = row(later, "t1", "2026-09")
    assert september["contract_status"] == "expired"
    assert not september["entitled"]
    assert pd.isna(september["contract_id"]) and september["features"] == "[]"
    assert september["quotas"] == "{}" and pd.isna(september["enforcement"])
    assert row(later, "t1", "2026-10")["contract_status"] == "expired"
    # as-of on 10 September: the current period is looked up on as-of, when it was in force
    during = resolve(ends_mid_september, as_of="2026-09-10")
    assert row(during, "t1", "2026-09")["contract_status"] == "active"
    # ... and on its last day, inclusive
    on_end = resolve(ends_mid_september, as_of="2026-09-15")
    assert row(on_end, "t1", "2026-09")["entitled"]


def test_addons_add_features_and_quotas():
    frame = resolve([contract("t1", "2026-10-01", addons="seats_pack_10; analytics")])
    got = row(frame, "t1", "2026-10")
    assert json.loads(got["features"]) == ["advanced_analytics", "api_access"]
    assert json.loads(got["quotas"]) == {"api_calls": 100000, "seats": 15, "storage_gb": 10}
    assert got["addons"] == "seats_pack_10;analytics"


def test_addon_quota_on_a_metric_the_plan_does_not_limit_starts_from_zero():
    frame = resolve([contract("t1", "2026-10-01", plan="pro", addons="storage_pack")])
    assert json.loads(row(frame, "t1", "2026-10")["quotas"])["storage_gb"] == 100
    plain_pro = resolve([contract("t1", "2026-10-01", plan="pro")])
    assert "storage_gb" not in json.loads(row(plain_pro, "t1", "2026-10")["quotas"])


def test_overrides_replace_the_computed_limit():
    frame = resolve(
        [
            contract(
                "t1",
                "2026-10-01",
                addons="seats_pack_10",
                overrides={"seats": 8, "api_calls": None, "storage_gb": 250},
            )
        ]
    )
    # 8 replaces 5 + 10; null makes api_calls unlimited; an override may also raise a limit
    assert json.loads(row(frame, "t1", "2026-10")["quotas"]) == {"seats": 8, "storage_gb": 250}


def test_mid_year_upgrade():
    frame = resolve(
        [
            contract("t1", "2026-01-01", "2026-06-30", plan="starter", contract_id="c-1"),
            contract("t1", "2026-07-01", plan="pro", contract_id="c-2"),
        ]
    )
    assert row(frame, "t1", "2026-06")["plan"] == "starter"
    assert row(frame, "t1", "2026-07")["plan"] == "pro"
    assert "sso" in json.loads(row(frame, "t1", "2026-07")["features"])
    assert len(frame) == 10  # January to October


def test_overlapping_contracts_prefer_active_then_latest_start_then_contract_id():
    frame = resolve(
        [
            contract("t1", "2026-01-01", plan="starter", contract_id="c-1"),
            contract("t1", "2026-07-01", plan="pro", contract_id="c-2"),
            contract("t1", "2026-09-01", plan="pro", contract_id="c-3", status="paused"),
            contract("t2", "2026-10-01", contract_id="c-b"),
            contract("t2", "2026-10-01", contract_id="c-a"),
        ]
    )
    assert row(frame, "t1", "2026-06")["contract_id"] == "c-1"
    assert row(frame, "t1", "2026-07")["contract_id"] == "c-2"  # the latest start wins
    assert row(frame, "t1", "2026-10")["contract_id"] == "c-2"  # active beats a later paused
    assert row(frame, "t2", "2026-10")["contract_id"] == "c-a"


@pytest.mark.parametrize("status", ["paused", "cancelled"])
def test_paused_and_cancelled_contracts_are_in_force_but_not_entitled(status):
    frame = resolve([contract("t1", "2026-10-01", status=status, enforcement="soft")])
    got = row(frame, "t1", "2026-10")
    assert got["contract_status"] == status and not got["entitled"]
    assert got["contract_id"] == "c-t1-2026-10-01" and got["enforcement"] == "soft"


def test_tenants_without_contracts_are_none_from_first_usage():
    frame = resolve(
        tenant_ids=["t-profile-only"],
        usage=[("t-usage", "2026-08-20", 5), ("t-usage", "2026-11-02", 7)],
    )
    # a profile with no usage and no contract still gets as-of's month
    assert list(frame.loc[frame["tenant_id"] == "t-profile-only", "period"]) == ["2026-10"]
    # usage after as-of does not extend the months
    usage_months = frame.loc[frame["tenant_id"] == "t-usage", "period"]
    assert list(usage_months) == ["2026-08", "2026-09", "2026-10"]
    assert set(frame["contract_status"]) == {"none"} and not frame["entitled"].any()


def test_usage_before_the_first_contract_is_expired_and_extends_the_months():
    frame = resolve([contract("t1", "2026-10-01")], usage=[("t1", "2026-09-03", 1)])
    assert row(frame, "t1", "2026-09")["contract_status"] == "expired"
    assert row(frame, "t1", "2026-10")["contract_status"] == "active"


def test_contract_starting_after_as_of_gives_an_expired_current_month():
    frame = resolve([contract("t1", "2026-12-01")])
    assert list(frame["period"]) == ["2026-10"]
    assert row(frame, "t1", "2026-10")["contract_status"] == "expired"


def test_segment_comes_from_the_tenant_profile():
    frame = resolve([contract("t1", "2026-10-01")], tenant_ids=["t1"])
    assert row(frame, "t1", "2026-10")["segment"] == "smb"


def test_frames_read_back_from_duckdb_resolve_the_same():
    rows = [
        contract("t1", "2026-01-01", "2026-06-30", addons="analytics"),
        contract("t1", "2026-07-01", plan="pro", overrides={"seats": 7}),
    ]
    usage = [("t2", "2026-09-01", 3)]
    plain = resolve(rows, usage=usage, tenant_ids=["t1"])
    warehouse = resolve_entitlements(
        CATALOG,
        via_duckdb(tenants("t1")),
        via_duckdb(contracts(*rows)),
        via_duckdb(activity(usage)),
        day("2026-10-15"),
    )
    pd.testing.assert_frame_equal(plain, warehouse)
    assert via_duckdb(contracts(*rows))["start_date"].dtype == "datetime64[us]"


def test_no_input_gives_an_empty_well_typed_frame():
    frame = resolve()
    assert frame.empty and list(frame.columns) == list(EFFECTIVE_ENTITLEMENTS)


def test_dates_beyond_what_pandas_holds_keep_their_meaning():
    """An open end written as 2999-12-31, a start typed as 1600, and a usage day from year 1
    that slipped past the loader: from the warehouse they are microseconds, and none of them
    fails the run (OutOfBoundsDatetime) any more."""
    frame = resolve_entitlements(
        CATALOG,
        tenants("t1", "t2"),
        via_duckdb(
            contracts(
                contract("t1", "2026-07-01", "2999-12-31"),
                contract("t2", "1600-01-01", "1600-12-31", contract_id="c-t2-old"),
                contract("t2", "1600-01-01", contract_id="c-t2-open"),
            )
        ),
        via_duckdb(activity([("t1", "0001-01-01", 1), ("t1", "2026-10-01", 3)])),
        day("2026-10-15"),
    )
    assert row(frame, "t1", "2026-10")["contract_status"] == "active"
    assert row(frame, "t2", "2026-10")["contract_id"] == "c-t2-open"
    assert frame["period"].min() >= "1677-09"
