from __future__ import annotations

import pandas as pd
import pytest

from licensing_pipeline.compliance.quota import quota_consumption
from licensing_pipeline.contract.schemas import CHECK_RESULTS
from licensing_pipeline_tests.compliance.builders import (
    entitlement,
    entitlements,
    keyed,
    via_duckdb,
)

LIMITS = {"api_calls": 100000, "seats": 10, "storage_gb": 0}


def usage(*rows: tuple[str, str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"tenant_id": t, "period": p, "metric": m, "quantity": q, "events": 1}
            for t, p, m, q in rows
        ]
    )


def check(quantity: float, metric: str = "api_calls", ratio: float = 0.8) -> str | None:
    results = quota_consumption(
        entitlements(entitlement("t1", "2026-10", quotas=LIMITS)),
        usage(("t1", "2026-10", metric, quantity)),
        ratio,
    )
    assert len(results) <= 1
    return None if results.empty else results["check"].iloc[0]


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (79999, None),
        (80000, "quota_near_limit"),  # exactly 80 %
        (99999, "quota_near_limit"),
        (100000, "quota_near_limit"),  # exactly the limit is within it
        (100001, "quota_exceeded"),
    ],
)
def test_near_limit_and_exceeded_boundaries(quantity, expected):
    assert check(quantity) == expected


def test_ratio_comes_from_the_policy_and_small_limits_hit_it_exactly():
    assert check(8, metric="seats") == "quota_near_limit"  # 0.8 × 10 despite binary fractions
    assert check(8, metric="seats", ratio=0.9) is None
    assert check(9, metric="seats", ratio=0.9) == "quota_near_limit"


def test_zero_limit_exceeded_by_any_use_and_never_near():
    assert check(0, metric="storage_gb") is None
    assert check(0.5, metric="storage_gb") == "quota_exceeded"


def test_metric_without_quota_is_unlimited():
    results = quota_consumption(
        entitlements(entitlement("t1", "2026-10", quotas={"api_calls": 10})),
        usage(("t1", "2026-10", "seats", 10**9)),
    )
    assert results.empty


def test_only_entitled_periods_are_checked():
    ents = entitlements(
        entitlement("t1", "2026-09", status="paused", quotas=LIMITS),
        entitlement("t1", "2026-10", status="expired"),
        entitlement("t2", "2026-10", quotas=LIMITS),
    )
    results = quota_consumption(
        ents,
        usage(
            ("t1", "2026-09", "api_calls", 10**6),
            ("t1", "2026-10", "api_calls", 10**6),
            ("t2", "2026-10", "api_calls", 10**6),
            ("t2", "2026-11", "api_calls", 10**6),  # no entitlement row: not this run's
        ),
    )
    assert list(keyed(results)) == [("t2", "quota_exceeded", "api_calls", "2026-10")]


def test_result_row_figures_enforcement_and_details():
    results = quota_consumption(
        entitlements(entitlement("t1", "2026-10", quotas=LIMITS, enforcement="soft")),
        usage(("t1", "2026-10", "api_calls", 123456), ("t1", "2026-10", "seats", 9)),
    )
    assert list(results.columns) == list(CHECK_RESULTS)
    by_key = keyed(results)
    over = by_key[("t1", "quota_exceeded", "api_calls", "2026-10")]
    assert (over["observed"], over["allowed"], over["enforcement"]) == (123456, 100000, "soft")
    assert over["details"] == (
        "api_calls usage of 123,456 in 2026-10 is above the 100,000 included in your plan "
        "and add-ons."
    )
    near = by_key[("t1", "quota_near_limit", "seats", "2026-10")]
    assert (
        near["details"]
        == "seats usage of 9 in 2026-10 is 90% of the 10 included in your plan and add-ons."
    )


def test_frames_from_duckdb():
    results = quota_consumption(
        via_duckdb(entitlements(entitlement("t1", "2026-10", quotas=LIMITS))),
        via_duckdb(usage(("t1", "2026-10", "api_calls", 150000))),
    )
    assert list(results["check"]) == ["quota_exceeded"]


def test_empty_inputs_give_an_empty_well_typed_frame():
    results = quota_consumption(entitlements(), usage())
    assert results.empty and dict(results.dtypes.astype(str)) == CHECK_RESULTS
