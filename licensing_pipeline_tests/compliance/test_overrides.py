"""The override layer on small frames: each kind, later-wins, the effective window, nothing
half-way; the residency allowance, exception waivers and the details that name a change."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from licensing_pipeline.compliance.entitlements import resolve_entitlements
from licensing_pipeline.compliance.features import feature_compliance
from licensing_pipeline.compliance.overrides import change_exceptions
from licensing_pipeline.compliance.quota import quota_consumption
from licensing_pipeline.compliance.residency import residency_compliance
from licensing_pipeline.contract.schemas import APPROVED_CHANGES, EFFECTIVE_ENTITLEMENTS, conform
from licensing_pipeline_tests.compliance.builders import (
    CATALOG,
    activity,
    contract,
    contracts,
    day,
    deployment,
    deployments,
    residency,
    tenants,
    via_duckdb,
)


def change(
    request_id: int,
    kind: str,
    start: str,
    until: str | None = None,
    *,
    tenant: str = "t1",
    decided_by: str = "carol",
    **payload: Any,
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "kind": kind,
        "tenant_id": tenant,
        "payload": json.dumps(payload),
        "reason": "agreed with the customer",
        "effective_from": pd.Timestamp(start),
        "effective_until": pd.Timestamp(until) if until else pd.NaT,
        "proposed_by": "erin",
        "decided_by": decided_by,
        "decided_at": pd.Timestamp("2026-08-20 10:00"),
    }


def changes(*rows: dict[str, Any]) -> pd.DataFrame:
    return conform(pd.DataFrame(list(rows), columns=list(APPROVED_CHANGES)), APPROVED_CHANGES)


def resolve(*rows: dict[str, Any], as_of: str = "2026-10-15", **terms: Any) -> pd.DataFrame:
    """t1 on starter from August (plus ``terms``), t2 alongside, with the changes applied."""
    return resolve_entitlements(
        CATALOG,
        tenants("t1", "t2"),
        contracts(contract("t1", "2026-08-01", **terms), contract("t2", "2026-08-01")),
        activity([]),
        day(as_of),
        changes(*rows),
    )


def month(frame: pd.DataFrame, period: str, tenant: str = "t1") -> dict[str, Any]:
    row = frame[(frame["tenant_id"] == tenant) & (frame["period"] == period)].iloc[0].to_dict()
    row["features"] = json.loads(row["features"])
    row["quotas"] = json.loads(row["quotas"])
    row["applied_changes"] = json.loads(row["applied_changes"])
    return row


STARTER = {"api_calls": 100000, "seats": 5, "storage_gb": 10}


def test_without_changes_every_row_says_none_applied():
    frame = resolve()
    assert list(frame.columns) == list(EFFECTIVE_ENTITLEMENTS)
    assert set(frame["applied_changes"]) == {"[]"}


def test_a_quota_override_applies_from_the_month_it_is_in_force_on_resolved_on():
    frame = resolve(change(7, "quota_override", "2026-09-10", metric="api_calls", limit=200000))
    assert month(frame, "2026-08")["quotas"] == STARTER
    assert month(frame, "2026-08")["applied_changes"] == []
    for period in ("2026-09", "2026-10"):
        assert month(frame, period)["quotas"] == {**STARTER, "api_calls": 200000}
        assert month(frame, period)["applied_changes"] == [7]
    assert month(frame, "2026-10", "t2")["quotas"] == STARTER
    assert month(frame, "2026-10", "t2")["applied_changes"] == []


def test_a_null_limit_makes_the_metric_unlimited():
    frame = resolve(change(1, "quota_override", "2026-10-01", metric="seats", limit=None))
    assert month(frame, "2026-10")["quotas"] == {"api_calls": 100000, "storage_gb": 10}


def test_on_one_subject_the_later_request_wins_and_only_it_is_recorded():
    frame = resolve(
        change(5, "quota_override", "2026-09-01", metric="api_calls", limit=300000),
        change(3, "quota_override", "2026-08-01", metric="api_calls", limit=150000),
        change(4, "quota_override", "2026-08-01", metric="seats", limit=9),
    )
    assert month(frame, "2026-08")["quotas"] == {**STARTER, "api_calls": 150000, "seats": 9}
    assert month(frame, "2026-08")["applied_changes"] == [3, 4]
    assert month(frame, "2026-09")["quotas"] == {**STARTER, "api_calls": 300000, "seats": 9}
    assert month(frame, "2026-09")["applied_changes"] == [4, 5]


def test_a_change_not_yet_effective_on_as_of_does_not_apply():
    frame = resolve(change(1, "quota_override", "2026-10-16", metric="api_calls", limit=1))
    assert month(frame, "2026-10")["quotas"] == STARTER
    assert month(frame, "2026-10")["applied_changes"] == []


def test_a_change_stops_after_its_until_day():
    frame = resolve(change(1, "feature_grant", "2026-08-01", "2026-09-30", feature="sso"))
    assert month(frame, "2026-09")["features"] == ["api_access", "sso"]
    assert month(frame, "2026-10")["features"] == ["api_access"]
    assert month(frame, "2026-10")["applied_changes"] == []


def test_a_plan_change_moves_features_and_quotas_together_under_the_contracts_overrides():
    frame = resolve(
        change(2, "plan_change", "2026-10-01", plan="pro"),
        change(3, "quota_override", "2026-10-01", metric="seats", limit=70),
        overrides={"api_calls": 2000000},
    )
    before, after = month(frame, "2026-09"), month(frame, "2026-10")
    assert (before["plan"], before["features"]) == ("starter", ["api_access"])
    assert before["quotas"] == {**STARTER, "api_calls": 2000000}
    assert after["plan"] == "pro"
    assert after["features"] == ["api_access", "reports_export", "sso"]
    # pro's quotas, then the contract's own override, then the change's.
    assert after["quotas"] == {"api_calls": 2000000, "seats": 70}
    assert after["applied_changes"] == [2, 3]


def test_addons_added_and_removed_rederive_from_the_catalog():
    frame = resolve(
        change(1, "addon_add", "2026-09-01", addon="analytics"),
        change(2, "addon_add", "2026-09-01", addon="seats_pack_10"),
        change(3, "addon_remove", "2026-10-01", addon="analytics"),
        addons="storage_pack",
    )
    september = month(frame, "2026-09")
    assert september["addons"] == "storage_pack;analytics;seats_pack_10"
    assert september["features"] == ["advanced_analytics", "api_access"]
    assert september["quotas"] == {"api_calls": 100000, "seats": 15, "storage_gb": 110}
    october = month(frame, "2026-10")
    assert october["addons"] == "storage_pack;seats_pack_10"
    assert october["features"] == ["api_access"]
    assert october["applied_changes"] == [2, 3]


def test_feature_grant_and_revoke():
    frame = resolve(
        change(1, "feature_grant", "2026-08-01", feature="audit_log"),
        change(2, "feature_revoke", "2026-09-01", feature="api_access"),
        change(3, "feature_grant", "2026-10-01", feature="api_access"),
    )
    assert month(frame, "2026-08")["features"] == ["api_access", "audit_log"]
    assert month(frame, "2026-09")["features"] == ["audit_log"]
    assert month(frame, "2026-10")["features"] == ["api_access", "audit_log"]
    assert month(frame, "2026-10")["applied_changes"] == [1, 3]


def test_contract_status_sets_status_and_entitlement():
    frame = resolve(change(1, "contract_status", "2026-10-01", status="paused"))
    assert month(frame, "2026-09")["entitled"]
    october = month(frame, "2026-10")
    assert (october["contract_status"], october["entitled"]) == ("paused", False)


def test_changes_read_back_from_the_warehouse_apply_the_same():
    rows = [
        change(2, "plan_change", "2026-10-01", plan="pro"),
        change(3, "feature_revoke", "2026-10-01", "2026-12-31", feature="sso"),
    ]
    direct = resolve(*rows)
    stored = resolve_entitlements(
        CATALOG,
        tenants("t1", "t2"),
        contracts(contract("t1", "2026-08-01"), contract("t2", "2026-08-01")),
        activity([]),
        day("2026-10-15"),
        via_duckdb(changes(*rows)),
    )
    pd.testing.assert_frame_equal(direct, stored)
    assert month(direct, "2026-10")["features"] == ["api_access", "reports_export"]


def test_many_tenant_months_with_few_changes():
    ids = [f"t{i:04d}" for i in range(3000)]
    frame = resolve_entitlements(
        CATALOG,
        tenants(*ids),
        contracts(*(contract(t, "2025-11-01") for t in ids)),
        activity([]),
        day("2026-10-15"),
        changes(
            change(1, "plan_change", "2026-01-01", tenant="t0007", plan="pro"),
            change(2, "quota_override", "2026-06-01", tenant="t0007", metric="seats", limit=9),
        ),
    )
    assert len(frame) == 3000 * 12
    shaped = frame[frame["applied_changes"] != "[]"]
    assert set(shaped["tenant_id"]) == {"t0007"}
    assert list(shaped["applied_changes"]) == ["[1]"] * 5 + ["[1, 2]"] * 5


# --- the checks that read the changes ------------------------------------------------------


def usage(metric: str, period: str, quantity: float) -> pd.DataFrame:
    return pd.DataFrame(
        {"tenant_id": ["t1"], "metric": [metric], "period": [period], "quantity": [quantity]}
    )


def test_quota_details_name_the_change_that_set_the_limit():
    approved = changes(change(7, "quota_override", "2026-10-01", metric="api_calls", limit=200000))
    frame = resolve(*approved.to_dict("records"))
    results = quota_consumption(frame, usage("api_calls", "2026-10", 190000), 0.8, approved)
    assert list(results["check"]) == ["quota_near_limit"]
    assert results["details"].iloc[0] == (
        "api_calls usage of 190,000 in 2026-10 is 95% of the limit of 200,000 from change #7 "
        "(quota override approved by carol on 2026-08-20)."
    )
    september = quota_consumption(frame, usage("api_calls", "2026-09", 150000), 0.8, approved)
    assert list(september["check"]) == ["quota_exceeded"]
    assert "included in your plan and add-ons" in september["details"].iloc[0]


def test_quota_details_name_a_plan_change_that_rederived_the_limit():
    approved = changes(change(2, "plan_change", "2026-10-01", plan="pro"))
    frame = resolve(*approved.to_dict("records"))
    results = quota_consumption(frame, usage("seats", "2026-10", 60), 0.8, approved)
    assert "the limit of 50 from change #2 (plan change approved by carol" in str(
        results["details"].iloc[0]
    )


def test_feature_details_name_the_change_that_withdrew_it():
    approved = changes(change(3, "feature_revoke", "2026-10-01", feature="api_access"))
    frame = resolve(*approved.to_dict("records"))
    used = pd.DataFrame(
        {
            "tenant_id": ["t1", "t1"],
            "feature": ["api_access", "sso"],
            "usage_date": [day("2026-10-02"), day("2026-10-02")],
            "events": [2, 1],
        }
    )
    details = feature_compliance(frame, used, approved).set_index("subject")["details"]
    assert details["api_access"] == (
        "api_access was used in 2 events in 2026-10, but it is not included in your plan "
        "(starter) or add-ons since change #3 (feature revoke approved by carol on 2026-08-20)."
    )
    assert details["sso"].endswith("not included in your plan (starter) or add-ons.")


def region_usage(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenant_id": ["t1"] * len(rows),
            "region": [region for region, _ in rows],
            "usage_date": [day(d) for _, d in rows],
            "events": [4] * len(rows),
        }
    )


@pytest.mark.parametrize(
    ("start", "until", "violations"),
    [
        ("2026-10-10", None, {("us-east-1", "2026-09"), ("us-east-1", "2026-10")}),
        ("2026-09-01", None, set()),
        ("2026-09-01", "2026-09-30", {("us-east-1", "2026-10")}),
    ],
)
def test_region_allow_allows_the_region_on_the_days_it_is_in_force(start, until, violations):
    approved = changes(change(1, "region_allow", start, until, region="us-east-1"))
    results = residency_compliance(
        CATALOG,
        residency(t1="EU"),
        region_usage(("us-east-1", "2026-09-15"), ("us-east-1", "2026-10-05")),
        deployments(),
        day("2026-10-15"),
        changes=approved,
    )
    assert set(zip(results["subject"], results["period"], strict=True)) == violations


def test_region_allow_covers_a_deployment_running_there_on_as_of():
    running = deployments(deployment("t1", "2026-10-14", region="us-east-1"))
    inputs = (CATALOG, residency(t1="EU"), region_usage(), running, day("2026-10-15"))
    assert len(residency_compliance(*inputs)) == 1
    allowed = changes(change(1, "region_allow", "2026-10-15", region="us-east-1"))
    assert residency_compliance(*inputs, changes=allowed).empty
    other = changes(change(1, "region_allow", "2026-10-15", tenant="t2", region="us-east-1"))
    assert len(residency_compliance(*inputs, changes=other)) == 1


def test_exception_changes_become_waivers_from_their_effective_day():
    approved = changes(
        change(4, "exception", "2026-10-01", "2026-12-31", check="quota_exceeded", subject=""),
        change(5, "exception", "2026-10-01", check="residency_violation", subject="us-east-1"),
        change(6, "exception", "2026-10-20", check="feature_not_entitled", subject="sso"),
        change(7, "quota_override", "2026-10-01", metric="seats", limit=1),
    )
    waivers = change_exceptions(approved, day("2026-10-15"))
    assert list(waivers["exception_id"]) == ["change #4", "change #5"]
    assert list(waivers["approved_by"]) == ["carol", "carol"]
    assert list(waivers["check"]) == ["quota_exceeded", "residency_violation"]
    assert waivers["expires_on"].iloc[0] == pd.Timestamp("2026-12-31")
    assert waivers["expires_on"].iloc[1].year > 2200  # no until: it never expires
    assert change_exceptions(changes(), day("2026-10-15")).empty
