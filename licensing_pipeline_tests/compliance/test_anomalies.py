from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from licensing_pipeline.compliance.anomalies import anomaly_episodes, usage_anomalies
from licensing_pipeline.contract.schemas import CHECK_RESULTS
from licensing_pipeline.policy.bundle import AnomalyRule
from licensing_pipeline_tests.compliance.builders import entitlement, entitlements, via_duckdb

START = date(2026, 5, 4)  # a Monday
RULE = AnomalyRule()  # the shipped defaults
AGGREGATIONS = {
    "api_calls": "COUNT",
    "seats": "UNIQUE_COUNT",
    "export_gb": "SUM",
    "storage_gb": "MAX",
}


def day_n(n: int) -> date:
    return START + timedelta(days=n)


def series(values, tenant="t1", metric="api_calls", events=None) -> pd.DataFrame:
    """usage_daily rows for one (tenant, metric); days without events have no row, as in dbt."""
    counts = list(values) if events is None else list(events)
    rows = [
        {
            "tenant_id": tenant,
            "metric": metric,
            "usage_date": day_n(i),
            "quantity": float(v),
            "events": int(n),
        }
        for i, (v, n) in enumerate(zip(values, counts, strict=True))
        if n
    ]
    return pd.DataFrame(rows, columns=["tenant_id", "metric", "usage_date", "quantity", "events"])


def detect(usage: pd.DataFrame, as_of: date, **kwargs) -> pd.DataFrame:
    results, _ = usage_anomalies(usage, as_of, RULE, aggregations=AGGREGATIONS, **kwargs)
    return results


def contracts(*changes: tuple[str, date, date | None]) -> pd.DataFrame:
    """A contracts export: (plan, start, end) per contract of tenant t1."""
    return pd.DataFrame(
        [
            {
                "contract_id": f"c{i}",
                "tenant_id": "t1",
                "plan": plan,
                "addons": "",
                "quota_overrides": "",
                "start_date": start,
                "end_date": end,
                "status": "active",
                "enforcement": "hard",
            }
            for i, (plan, start, end) in enumerate(changes)
        ]
    )


# --- counts ---------------------------------------------------------------------------------


def test_a_one_day_tenfold_spike_is_one_finding_that_says_what_was_expected():
    values = [100] * 70
    values[60] = 1000
    results = detect(series(values), day_n(69))
    assert list(results.columns) == list(CHECK_RESULTS)
    assert len(results) == 1
    row = results.iloc[0]
    assert (row["check"], row["subject"], row["period"]) == (
        "usage_anomaly",
        "api_calls",
        day_n(60).isoformat(),
    )
    assert (row["observed"], row["allowed"]) == (1000, 100)
    weekday = day_n(60).strftime("%A")
    assert row["details"] == (
        f"1,000 api_calls on {day_n(60).isoformat()} against a usual 100 on {weekday}s."
    )


def test_a_three_day_surge_is_one_episode_named_by_its_first_day():
    values = [100] * 70
    values[60:63] = [900, 1200, 700]
    results = detect(series(values), day_n(69))
    assert list(results["period"]) == [day_n(60).isoformat()]
    assert results["observed"].iloc[0] == 1200
    days = ", ".join(day_n(n).isoformat() for n in (60, 61, 62))
    assert f"anomalous on 3 days from {day_n(60).isoformat()}: {days}." in results["details"][0]


def test_an_episode_survives_one_quieter_day_and_ends_after_two():
    values = [100] * 80
    values[60], values[61], values[62] = 900, 150, 900  # one ordinary day inside: one episode
    assert list(detect(series(values), day_n(79))["period"]) == [day_n(60).isoformat()]
    values[61], values[62], values[63] = 100, 100, 900  # two ordinary days: a new episode
    assert list(detect(series(values), day_n(79))["period"]) == [
        day_n(60).isoformat(),
        day_n(63).isoformat(),
    ]


def test_an_ongoing_episode_keeps_its_first_day_night_after_night():
    values = [100] * 70
    values[60:66] = [1000] * 6
    periods = {
        night: list(detect(series(values[: night + 1]), day_n(night))["period"])
        for night in range(60, 70)
    }
    assert all(found == [day_n(60).isoformat()] for found in periods.values())


@pytest.mark.parametrize(("weekday", "weekend"), [(100, 8), (30, 120)])
def test_a_weekly_rhythm_is_not_an_anomaly_but_a_spike_on_top_of_it_is(weekday, weekend):
    rng = np.random.default_rng(7)
    level = [weekend if day_n(i).weekday() >= 5 else weekday for i in range(120)]
    values = [int(rng.poisson(v)) for v in level]
    assert detect(series(values), day_n(119)).empty
    values[100] = 12 * level[100]
    assert list(detect(series(values), day_n(119))["period"]) == [day_n(100).isoformat()]


def test_a_saturday_spike_is_judged_against_saturdays():
    # 200 on weekdays, 20 on weekends: 240 on a Saturday is busy for a Saturday but no busier
    # than an ordinary weekday, so not news; 4,000 is news.
    values = [20 if day_n(i).weekday() >= 5 else 200 for i in range(84)]
    saturday = next(i for i in range(70, 84) if day_n(i).weekday() == 5)
    values[saturday] = 240
    assert detect(series(values), day_n(83)).empty
    values[saturday] = 4000
    results = detect(series(values), day_n(83))
    assert list(results["period"]) == [day_n(saturday).isoformat()]
    assert "against a usual 20 on Saturdays" in results["details"][0]


@pytest.mark.parametrize("lam", [0.5, 2, 5, 40])
def test_poisson_noise_is_not_an_anomaly(lam):
    counts = np.random.default_rng(20261001).poisson(lam, size=(200, 120))
    usage = pd.concat(
        [series(row, tenant=f"t{i:03d}") for i, row in enumerate(counts)], ignore_index=True
    )
    assert detect(usage, day_n(119)).empty


def test_a_new_tenant_is_not_judged_before_four_weeks_of_its_metric():
    values = [0] * 40 + [50] * 30
    values[40 + 20] = 1000  # 20 days after the metric's first use
    assert detect(series(values), day_n(69)).empty
    values[40 + 20], values[40 + 29] = 50, 1000  # 29 days after: judged
    assert list(detect(series(values), day_n(69))["period"]) == [day_n(69).isoformat()]


def test_a_churned_tenant_going_to_zero_is_not_an_anomaly():
    values = [300] * 60 + [0] * 40
    assert detect(series(values), day_n(99)).empty


def test_days_after_as_of_are_not_evaluated():
    values = [100] * 70
    values[69] = 1000
    assert detect(series(values), day_n(68)).empty


# --- sums -----------------------------------------------------------------------------------


def sporadic_exports(days: int = 180, seed: int = 3):
    """Six exports a month of 5-70 GB, one event each, on random days."""
    rng = np.random.default_rng(seed)
    gb, events = np.zeros(days), np.zeros(days, dtype=int)
    chosen = rng.choice(days, size=days // 5, replace=False)
    gb[chosen] = rng.uniform(5, 70, len(chosen))
    events[chosen] = 1
    return gb, events


def test_a_quiet_tenants_ordinary_exports_are_not_anomalies():
    gb, events = sporadic_exports()
    usage = series(gb, metric="export_gb", events=events)
    assert detect(usage, day_n(179)).empty


def test_a_runaway_export_day_is_an_anomaly_but_one_big_export_is_not():
    gb, events = sporadic_exports()
    gb[150], events[150] = 900.0, 1  # one big export: size alone is not news
    assert detect(series(gb, metric="export_gb", events=events), day_n(179)).empty
    gb[150], events[150] = 900.0, 25  # 25 exports, 900 GB: far more events and far more GB
    results = detect(series(gb, metric="export_gb", events=events), day_n(179))
    assert list(results["period"]) == [day_n(150).isoformat()]
    assert "export_gb of 900 in 25 event(s)" in results["details"][0]


def test_many_small_events_of_an_ordinary_size_are_not_an_anomaly():
    gb, events = sporadic_exports()
    gb[150], events[150] = 20.0, 25  # 25 events but 20 GB: the size is ordinary
    assert detect(series(gb, metric="export_gb", events=events), day_n(179)).empty


# --- gauges ---------------------------------------------------------------------------------


def stepping_storage(step_day: int = 90, days: int = 150):
    """3.5 GB growing slowly, then 40 GB from step_day on, growing slowly."""
    return [(3.5 + 0.01 * i) if i < step_day else (40 + 0.05 * (i - step_day)) for i in range(days)]


def test_a_gauge_that_steps_is_one_finding_on_the_day_then_the_baseline_re_anchors():
    results = detect(series(stepping_storage(), metric="storage_gb"), day_n(149))
    assert list(results["period"]) == [day_n(90).isoformat()]
    assert results["allowed"][0] == pytest.approx(3.5 + 0.01 * 75.5)  # the 28 days before
    assert results["details"][0] == (
        f"storage_gb rose to 40 on {day_n(90).isoformat()}, from 4.39 the day before "
        "(4.19–4.32 over the previous 28 days)."
    )


def test_a_second_jump_soon_after_the_first_is_judged_against_the_new_level():
    values = stepping_storage()
    values[100:] = [v * 6 for v in values[100:]]
    results = detect(series(values, metric="storage_gb"), day_n(149))
    assert list(results["period"]) == [day_n(90).isoformat(), day_n(100).isoformat()]


def test_an_upgrade_explains_the_step_and_the_suppression_is_reported():
    usage = series(stepping_storage(), metric="storage_gb")
    upgrade = contracts(("starter", START, day_n(89)), ("growth", day_n(90), None))
    results, episodes = usage_anomalies(
        usage, day_n(149), RULE, aggregations=AGGREGATIONS, contracts=upgrade
    )
    assert results.empty
    assert list(episodes["suppressed_by"]) == [f"entitlement change on {day_n(90).isoformat()}"]


def test_a_renewal_on_the_same_terms_explains_nothing():
    usage = series(stepping_storage(), metric="storage_gb")
    renewal = contracts(("starter", START, day_n(89)), ("starter", day_n(90), None))
    assert len(detect(usage, day_n(149), contracts=renewal)) == 1


def test_a_one_day_spike_next_to_an_upgrade_is_still_news():
    values = [100] * 120
    values[95] = 2000
    upgrade = contracts(("starter", START, day_n(97)), ("growth", day_n(98), None))
    assert list(detect(series(values), day_n(119), contracts=upgrade)["period"]) == [
        day_n(95).isoformat()
    ]


def test_a_gauge_reported_every_few_days_carries_its_level():
    values = [500 + (i % 5) if i % 3 == 0 else 0 for i in range(90)]
    assert detect(series(values, metric="storage_gb"), day_n(89)).empty


def test_a_slow_climb_of_a_gauge_is_not_an_anomaly():
    values = [5 * 1.03**i for i in range(150)]  # x80 over five months, 3 % a day
    assert detect(series(values, metric="storage_gb"), day_n(149)).empty


# --- inputs ---------------------------------------------------------------------------------


def test_enforcement_from_the_entitlement_of_the_month():
    values = [100] * 70
    values[60] = 1000
    month = day_n(60).strftime("%Y-%m")
    results = detect(
        series(values),
        day_n(69),
        entitlements=entitlements(entitlement("t1", month, enforcement="soft")),
    )
    assert list(results["enforcement"]) == ["soft"]


def test_frames_from_duckdb_and_empty_input():
    values = [100] * 70
    values[60] = 1000
    usage = via_duckdb(series(values))
    assert usage["usage_date"].dtype == "datetime64[us]"
    assert len(detect(usage, day_n(69))) == 1
    empty, episodes = usage_anomalies(series([]), day_n(69), RULE)
    assert empty.empty and dict(empty.dtypes.astype(str)) == CHECK_RESULTS
    assert episodes.empty


def test_every_threshold_is_read_from_the_rule():
    values = [100] * 70
    values[60] = 450  # 4.5x: under the shipped ratio of 5
    usage = series(values)
    assert anomaly_episodes(usage, day_n(69), RULE).empty
    assert len(anomaly_episodes(usage, day_n(69), AnomalyRule(ratio=4.0))) == 1


def test_a_tenant_back_from_a_long_pause_starts_a_new_history():
    values = [100] * 40 + [0] * 40 + [100] * 20
    assert detect(series(values), day_n(99)).empty  # not judged against 40 days of zeros
    values[95] = 1500  # ... until it has 28 days of the new history
    assert detect(series(values), day_n(99)).empty
    values = [1] + [0] * 400 + [100] * 60  # a stray early event does not start the history
    values[450] = 1500
    assert list(detect(series(values), day_n(460))["period"]) == [day_n(450).isoformat()]


def test_an_approved_plan_change_explains_the_step_like_a_new_contract():
    usage = series(stepping_storage(), metric="storage_gb")
    approved = pd.DataFrame(
        [
            {
                "request_id": 1,
                "kind": "plan_change",
                "tenant_id": "t1",
                "payload": '{"plan": "growth"}',
                "effective_from": pd.Timestamp(day_n(90)),
                "effective_until": pd.NaT,
            }
        ]
    )
    same = contracts(("starter", START, None))
    results, episodes = usage_anomalies(
        usage, day_n(149), RULE, aggregations=AGGREGATIONS, contracts=same, approved=approved
    )
    assert results.empty
    assert list(episodes["suppressed_by"]) == [f"entitlement change on {day_n(90).isoformat()}"]
    assert len(detect(usage, day_n(149), contracts=same)) == 1
