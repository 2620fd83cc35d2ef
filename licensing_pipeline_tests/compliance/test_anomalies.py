from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from licensing_pipeline.compliance.anomalies import usage_anomalies
from licensing_pipeline.contract.schemas import CHECK_RESULTS
from licensing_pipeline.policy.bundle import AnomalyRule
from licensing_pipeline_tests.compliance.builders import entitlement, entitlements, via_duckdb

START = date(2026, 6, 1)  # a Monday
RULE = AnomalyRule()  # the shipped defaults: ratio 5, 6 sigmas, 28-day median, 14 days' history


def series(values, tenant: str = "t1", metric: str = "api_calls", start: date = START):
    """usage_daily rows for one (tenant, metric); days with 0 have no row, as in dbt."""
    rows = [
        {
            "tenant_id": tenant,
            "metric": metric,
            "usage_date": start + timedelta(days=i),
            "quantity": float(v),
            "events": int(v),
        }
        for i, v in enumerate(values)
        if v
    ]
    return pd.DataFrame(rows, columns=["tenant_id", "metric", "usage_date", "quantity", "events"])


def activity_of(usage: pd.DataFrame) -> pd.DataFrame:
    return usage.groupby(["tenant_id", "usage_date"], as_index=False)["events"].sum()


def detect(usage: pd.DataFrame, as_of: date, activity=None, **kwargs) -> pd.DataFrame:
    return usage_anomalies(
        usage, activity if activity is not None else activity_of(usage), as_of, RULE, **kwargs
    )


def day_n(n: int) -> date:
    return START + timedelta(days=n)


def test_a_one_day_tenfold_spike_is_caught_once():
    values = [100] * 60
    values[45] = 1000
    results = detect(series(values), day_n(59))
    assert list(results.columns) == list(CHECK_RESULTS)
    assert len(results) == 1
    row = results.iloc[0]
    assert (row["check"], row["subject"], row["period"]) == (
        "usage_anomaly",
        "api_calls",
        day_n(45).isoformat(),
    )
    assert (row["observed"], row["allowed"]) == (1000, 100)
    assert row["details"] == (
        f"api_calls usage of 1,000 on {day_n(45).isoformat()} is 10.0 times your typical daily "
        "usage of 100 (median of the previous 28 days)."
    )


def test_a_spike_on_two_days_is_two_results():
    values = [100] * 60
    values[45] = values[46] = 1000
    assert list(detect(series(values), day_n(59))["period"]) == [
        day_n(45).isoformat(),
        day_n(46).isoformat(),
    ]


@pytest.mark.parametrize(("weekday", "weekend"), [(100, 30), (30, 100)])
def test_a_weekly_swing_is_not_an_anomaly(weekday, weekend):
    rng = np.random.default_rng(7)
    values = [rng.poisson(weekend if day_n(i).weekday() >= 5 else weekday) for i in range(90)]
    assert detect(series(values), day_n(89)).empty
    values[60] = 10 * weekday  # ... but a spike on top of it is
    assert list(detect(series(values), day_n(89))["period"]) == [day_n(60).isoformat()]


def poisson_tenants(lam: float, tenants: int = 200, days: int = 90) -> pd.DataFrame:
    counts = np.random.default_rng(20261001).poisson(lam, size=(tenants, days))
    return pd.concat(
        [series(row, tenant=f"t{i:03d}") for i, row in enumerate(counts)], ignore_index=True
    )


@pytest.mark.parametrize("lam", [0.5, 1, 2, 5])
def test_poisson_noise_at_small_volumes_is_not_an_anomaly(lam):
    assert detect(poisson_tenants(lam), day_n(89)).empty


def test_without_the_poisson_guard_small_counts_raise_false_alarms():
    """Why the variance-stabilised test exists: at about 2 a day the 28-day median is often
    1, and 7 then passes both the ratio and the normal-approximation noise tests."""
    usage = poisson_tenants(2)
    literal = usage_anomalies(usage, activity_of(usage), day_n(89), RULE, poisson_guard=False)
    assert len(literal) > 0
    assert (literal["allowed"] <= 2).all()


def test_not_enough_history():
    values = [100] * 30
    values[13] = 1000  # 13 prior days
    assert detect(series(values), day_n(29)).empty
    values[13], values[14] = 100, 1000  # 14 prior days: enough
    assert list(detect(series(values), day_n(29))["period"]) == [day_n(14).isoformat()]


def test_days_without_usage_count_as_zero_in_the_baseline():
    values = [100 if i % 2 else 0 for i in range(60)]
    values[45] = 300  # 3x the usage days, but 6x the zero-filled median of 50
    results = detect(series(values), day_n(59))
    assert list(results["period"]) == [day_n(45).isoformat()]
    assert results["allowed"].iloc[0] == 50


def test_history_starts_at_the_tenants_first_usage_of_any_kind():
    storage = series([0] * 20 + [50] * 5, metric="storage_gb")
    # only the metric's own days: no history yet, nothing to say
    assert detect(storage, day_n(24)).empty
    # the tenant has been active for 20 days: a new 50 GB against a baseline of 0 stands out
    earlier = activity_of(series([5] * 25, metric="api_calls"))
    results = detect(storage, day_n(24), activity=earlier)
    # (a step change stays anomalous until it dominates the 28-day median)
    assert results["period"].iloc[0] == day_n(20).isoformat()
    assert "far above your typical daily usage of 0" in results["details"].iloc[0]


def test_days_after_as_of_are_not_evaluated():
    values = [100] * 60
    values[59] = 1000
    assert detect(series(values), day_n(58)).empty


def test_enforcement_from_the_entitlement_of_the_month():
    values = [100] * 60
    values[45] = 1000
    month = day_n(45).strftime("%Y-%m")
    results = detect(
        series(values),
        day_n(59),
        entitlements=entitlements(entitlement("t1", month, enforcement="soft")),
    )
    assert list(results["enforcement"]) == ["soft"]


def test_frames_from_duckdb_and_empty_input():
    values = [100] * 60
    values[45] = 1000
    usage = via_duckdb(series(values))
    assert usage["usage_date"].dtype == "datetime64[us]"
    assert (
        len(usage_anomalies(usage, via_duckdb(activity_of(series(values))), day_n(59), RULE)) == 1
    )
    empty = usage_anomalies(series([]), activity_of(series([])), day_n(59), RULE)
    assert empty.empty and dict(empty.dtypes.astype(str)) == CHECK_RESULTS


def test_a_gauge_reported_every_few_days_carries_its_level_between_reports():
    # storage_gb reported every third day at ~500 GB: zero-filled, each report would be a
    # tenfold "spike" over a median of 0; carried forward, the level is simply 500.
    values = [500 + (i % 5) if i % 3 == 0 else 0 for i in range(60)]
    usage = series(values, metric="storage_gb")
    assert detect(usage, day_n(59), gauges=["storage_gb"]).empty
    assert not detect(usage, day_n(59)).empty  # the same days read as a flow do fire


def test_a_real_jump_of_a_gauge_is_still_caught():
    values = [500 if i % 3 == 0 else 0 for i in range(60)]
    values[45] = 5000
    results = detect(series(values, metric="storage_gb"), day_n(59), gauges=["storage_gb"])
    # The level stays at 5000 until the next report (day 48): three anomalous days.
    assert list(results["period"]) == [day_n(n).isoformat() for n in (45, 46, 47)]
    assert set(results["allowed"]) == {500}
