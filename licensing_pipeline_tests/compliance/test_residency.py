from __future__ import annotations

import pandas as pd

from licensing_pipeline.compliance.residency import residency_compliance
from licensing_pipeline.contract.schemas import CHECK_RESULTS
from licensing_pipeline_tests.compliance.builders import (
    CATALOG,
    day,
    deployment,
    deployments,
    entitlement,
    entitlements,
    keyed,
    only_result,
    residency,
    via_duckdb,
)

AS_OF = day("2026-10-15")


def region_usage(*rows: tuple[str, str, str, int]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["tenant_id", "region", "usage_date", "events"])
    frame["usage_date"] = pd.to_datetime(frame["usage_date"]).dt.date
    return frame


def check(allowed: pd.DataFrame, usage: pd.DataFrame, deploys=None, **kwargs) -> pd.DataFrame:
    return residency_compliance(
        CATALOG, allowed, usage, deploys if deploys is not None else deployments(), AS_OF, **kwargs
    )


def test_usage_outside_the_allowed_jurisdiction_is_a_violation_per_month():
    results = check(
        residency(t1="EU"),
        region_usage(
            ("t1", "eu-west-1", "2026-09-01", 100),
            ("t1", "us-east-1", "2026-09-01", 3),
            ("t1", "us-east-1", "2026-09-30", 4),
            ("t1", "us-east-1", "2026-10-01", 5),
        ),
    )
    assert list(results.columns) == list(CHECK_RESULTS)
    by_key = keyed(results)
    assert set(by_key) == {
        ("t1", "residency_violation", "us-east-1", "2026-09"),
        ("t1", "residency_violation", "us-east-1", "2026-10"),
    }
    september = by_key[("t1", "residency_violation", "us-east-1", "2026-09")]
    assert (september["observed"], september["allowed"]) == (7, 0)
    assert september["details"] == (
        "7 usage events in 2026-09 were processed in us-east-1 (US), but your data may only "
        "be processed in EU."
    )


def test_any_and_no_row_are_unrestricted_and_lists_allow_each_jurisdiction():
    usage = region_usage(
        ("t-any", "us-east-1", "2026-10-01", 1),
        ("t-no-row", "us-east-1", "2026-10-01", 1),
        ("t-eu-uk", "uk-south-1", "2026-10-01", 1),
        ("t-eu-uk", "eu-central-1", "2026-10-01", 1),
        ("t-eu-uk", "us-east-1", "2026-10-01", 1),
    )
    results = check(residency(**{"t-any": "ANY", "t-eu-uk": "eu;UK"}), usage)
    assert list(keyed(results)) == [("t-eu-uk", "residency_violation", "us-east-1", "2026-10")]
    assert results["details"].iloc[0].endswith("may only be processed in EU or UK.")


def test_a_region_missing_from_the_catalog_is_not_allowed_under_a_restriction():
    usage = region_usage(
        ("t1", "mars-north-1", "2026-10-02", 2), ("t-free", "mars-north-1", "2026-10-02", 2)
    )
    results = check(residency(t1="EU"), usage)
    assert list(keyed(results)) == [("t1", "residency_violation", "mars-north-1", "2026-10")]
    assert "a region with no known jurisdiction" in results["details"].iloc[0]


def test_days_after_as_of_are_not_evaluated():
    assert check(residency(t1="EU"), region_usage(("t1", "us-east-1", "2026-10-16", 1))).empty


def test_latest_deployment_observation_wins():
    moved_to_eu = deployments(
        deployment("t1", "2026-10-01T00:00:00", region="us-east-1"),
        deployment("t1", "2026-10-10T00:00:00", region="eu-west-1"),
    )
    assert check(residency(t1="EU"), region_usage(), moved_to_eu).empty
    moved_to_us = deployments(
        deployment("t1", "2026-10-01T00:00:00", region="eu-west-1"),
        deployment("t1", "2026-10-10T00:00:00", region="us-east-1"),
        # observed after the end of the as-of day: not part of this run
        deployment("t1", "2026-10-16T00:00:00", region="eu-west-1"),
    )
    results = check(residency(t1="EU"), region_usage(), moved_to_us)
    row = only_result(results, ("t1", "residency_violation", "us-east-1", "2026-10"))
    assert (row["observed"], row["allowed"]) == (1, 0)
    assert row["details"] == (
        "Deployment prod runs in us-east-1 (US), but your data may only be processed in EU."
    )


def test_usage_and_deployments_in_one_region_make_one_result():
    running = deployments(
        deployment("t1", "2026-10-01T00:00:00", deployment="a", region="us-east-1"),
        deployment("t1", "2026-10-01T00:00:00", deployment="b", region="us-east-1"),
    )
    results = check(residency(t1="EU"), region_usage(("t1", "us-east-1", "2026-10-02", 9)), running)
    assert len(results) == 1
    assert results["observed"].iloc[0] == 9
    assert "where deployments a and b run too" in results["details"].iloc[0]


def test_applies_without_a_contract_and_takes_enforcement_when_there_is_one():
    usage = region_usage(("t1", "us-east-1", "2026-10-02", 1), ("t2", "us-east-1", "2026-10-02", 1))
    ents = entitlements(
        entitlement("t1", "2026-10", enforcement="soft"),
        entitlement("t2", "2026-10", status="none"),
    )
    results = check(residency(t1="EU", t2="EU"), usage, entitlements=ents)
    assert dict(zip(results["tenant_id"], results["enforcement"].astype(object), strict=True)) == {
        "t1": "soft",
        "t2": pd.NA,
    }


def test_frames_from_duckdb():
    results = residency_compliance(
        CATALOG,
        via_duckdb(residency(t1="EU")),
        via_duckdb(region_usage(("t1", "us-east-1", "2026-10-02", 1))),
        via_duckdb(deployments(deployment("t1", "2026-10-01T00:00:00", region="us-east-1"))),
        AS_OF,
    )
    assert len(results) == 1
