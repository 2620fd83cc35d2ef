"""Usage forecasts on hand-written series: flat, growing, weekend-heavy, a burst, gauges, a
month with a gap, a tenant with two days of history; then what they add to quota_near_limit
details and to statements, on both warehouses.

November 2026 starts on a Sunday; as-of is Sunday the 15th, so 15 days are seen and 15 remain
(Monday 16th to Monday 30th).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pandas as pd
import pytest

from licensing_pipeline.compliance import backtest as synthetic
from licensing_pipeline.compliance.forecast import usage_forecasts
from licensing_pipeline.compliance.forecast_backtest import backtest
from licensing_pipeline.compliance.quota import quota_consumption
from licensing_pipeline.statements.statement import (
    ForeignRowError,
    period_statements,
    render_html,
    tenant_statement,
)
from licensing_pipeline.warehouse.resources import Warehouse
from licensing_pipeline_tests.compliance.builders import entitlement, entitlements

AS_OF = date(2026, 11, 15)
HISTORY = pd.date_range("2026-10-01", "2026-11-15")
AGGREGATIONS = {
    "api_calls": "COUNT",
    "exports": "SUM",
    "storage_gb": "MAX",
    "projects": "LATEST",
    "seats": "UNIQUE_COUNT",
}
QUOTAS = {"api_calls": 2800, "exports": 5000, "storage_gb": 40, "seats": 10}


def daily(metric: str, value: Callable[[pd.Timestamp], float | None], tenant: str = "t1"):
    """One series: ``value(day)`` for each day of HISTORY, no row where it is None."""
    return [
        {"tenant_id": tenant, "metric": metric, "usage_date": day, "quantity": q, "events": 1}
        for day in HISTORY
        if (q := value(day)) is not None
    ]


def month_to_date(rows: list[dict], aggregation: str) -> float:
    seen = [r["quantity"] for r in rows if r["usage_date"] >= pd.Timestamp("2026-11-01")]
    return {"COUNT": sum, "SUM": sum, "MAX": max, "LATEST": lambda q: q[-1]}[aggregation](seen)


def forecast(
    *series: list[dict], quotas: dict | None = None, monthly=None, status: str = "active"
) -> pd.DataFrame:
    """The forecasts of the series, usage_monthly made from their days (unless given)."""
    rows = [row for one in series for row in one]
    usage = pd.DataFrame(rows)
    if monthly is None:
        monthly = pd.DataFrame(
            [
                {
                    "tenant_id": one[0]["tenant_id"],
                    "metric": one[0]["metric"],
                    "period": "2026-11",
                    "quantity": month_to_date(one, AGGREGATIONS[one[0]["metric"]]),
                }
                for one in series
            ]
        )
    quotas = QUOTAS if quotas is None else quotas
    ents = entitlements(entitlement("t1", "2026-11", status=status, quotas=quotas))
    return usage_forecasts(usage, monthly, AGGREGATIONS, ents, AS_OF).set_index("metric")


def day_of(stamp) -> str | None:
    return None if pd.isna(stamp) else pd.Timestamp(stamp).strftime("%Y-%m-%d")


def test_a_flat_series_ends_at_its_pace_and_reaches_the_limit_on_the_day_it_adds_up():
    row = forecast(daily("api_calls", lambda d: 100.0)).loc["api_calls"]
    assert row["month_to_date"] == 1500
    assert row["projected_total"] == pytest.approx(3000)
    assert row["limit"] == 2800
    assert day_of(row["projected_exhaustion_day"]) == "2026-11-28"  # 28 x 100 = 2,800
    assert row["method"] == "weekday_pace" and row["days_observed"] == 28
    assert row["period"] == "2026-11"


def test_a_growing_series_is_projected_above_its_month_average_but_not_extrapolated():
    start = HISTORY[0]

    def growing(d):
        return 10.0 + (d - start).days

    row = forecast(daily("api_calls", growing)).loc["api_calls"]
    future = sum(growing(d) for d in pd.date_range("2026-11-16", "2026-11-30"))
    truth = row["month_to_date"] + future
    # The pace is where the series stands lately (about the month's own pace at mid-month),
    # and the growth still to come is not extrapolated: a trend fitted to 4 weeks of noisy
    # days costs more than it gains (the backtest's flows: 4.3 % without, 4.4-6.0 % with).
    assert row["projected_total"] == pytest.approx(2 * row["month_to_date"], rel=0.02)
    assert row["projected_total"] < truth
    assert abs(row["projected_total"] - truth) / truth < 0.15


def test_a_weekend_heavy_series_is_projected_by_its_weekdays():
    row = forecast(
        daily("exports", lambda d: 300.0 if d.weekday() >= 5 else 50.0), quotas={"exports": 3500}
    ).loc["exports"]
    # seen: 5 weekend days and 10 weekdays (2,000); ahead: 4 weekend days and 11 weekdays.
    assert row["month_to_date"] == 2000
    assert row["projected_total"] == pytest.approx(2000 + 4 * 300 + 11 * 50)  # not 2 x 2,000
    # 2,000 + Mon-Fri 250 + Sat 300 = 2,550 on the 21st ... 3,400 on the 28th, 3,700 the 29th
    assert day_of(row["projected_exhaustion_day"]) == "2026-11-29"


def test_a_burst_counts_in_the_month_to_date_and_is_not_projected():
    burst = pd.Timestamp("2026-11-10")
    row = forecast(daily("api_calls", lambda d: 100.0 + (5000.0 if d == burst else 0.0))).loc[
        "api_calls"
    ]
    assert row["month_to_date"] == 6500
    truth = 6500 + 15 * 100
    assert abs(row["projected_total"] - truth) / truth < 0.05


def test_gauges_follow_their_trend_a_max_never_falls_and_a_step_is_not_a_trend():
    start = HISTORY[0]
    rows = forecast(
        daily("storage_gb", lambda d: 10.0 + 0.5 * (d - start).days),
        daily("projects", lambda d: 5.0 if d < pd.Timestamp("2026-11-05") else 20.0),
    )
    storage = rows.loc["storage_gb"]
    assert storage["month_to_date"] == 32.5
    assert storage["projected_total"] == pytest.approx(40.0)  # 0.5 GB a day to the 30th
    assert day_of(storage["projected_exhaustion_day"]) == "2026-11-30"
    assert storage["method"] == "trend"
    # A level that stepped up once is held at its new level, not extrapolated.
    assert rows.loc["projects", "projected_total"] == 20.0

    shrinking = forecast(daily("storage_gb", lambda d: 100.0 - (d - start).days)).loc["storage_gb"]
    assert shrinking["projected_total"] == shrinking["month_to_date"] == 69.0  # the 1st's level
    # A limit already reached: the day it was (the month's figure counts from the 1st).
    assert day_of(shrinking["projected_exhaustion_day"]) == "2026-11-01"


def test_a_gap_is_days_of_no_use_that_lower_the_pace_without_stopping_it():
    gap = pd.date_range("2026-11-06", "2026-11-10")
    row = forecast(daily("api_calls", lambda d: None if d in gap else 100.0)).loc["api_calls"]
    assert row["month_to_date"] == 1000
    # Not data missing (that would keep the full pace: 2,500), nor a stop: 5 days of zero in
    # the last 4 weeks, recent ones weighing most, bring the pace down by about a quarter.
    assert 1000 + 15 * 70 < row["projected_total"] < 1000 + 15 * 80
    assert row["days_observed"] == 28  # calendar days, the gap included
    assert pd.isna(row["projected_exhaustion_day"])


def test_a_tenant_with_two_days_of_history_is_projected_from_them_with_every_day_alike():
    new = {pd.Timestamp("2026-11-14"): 40.0, pd.Timestamp("2026-11-15"): 60.0}
    row = forecast(daily("api_calls", new.get), quotas={"api_calls": 500}).loc["api_calls"]
    assert row["days_observed"] == 2 and row["method"] == "pace"
    recency = 0.5 ** (1 / 7)  # yesterday weighs a little less than today
    pace = (40 * recency + 60) / (recency + 1)
    assert row["projected_total"] == pytest.approx(100 + 15 * pace)
    assert day_of(row["projected_exhaustion_day"]) == "2026-11-23"  # 100 + 8 x 50.4 >= 500


@pytest.mark.parametrize(
    ("last_month", "projected"),
    [
        (None, 12.0),  # no history: the month to date, not 4 a day added up
        (9.0, 12.0),  # a team grown since: the month to date
        (16.0, 16.0),  # a team not all logged in yet: last month's, as it comes back
    ],
)
def test_distinct_counts_are_held_at_the_larger_of_the_month_and_last_month(last_month, projected):
    seats = daily("seats", lambda d: 4.0)
    months = [("2026-11", 12.0)] + ([("2026-10", last_month)] if last_month else [])
    monthly = pd.DataFrame(
        [{"tenant_id": "t1", "metric": "seats", "period": p, "quantity": q} for p, q in months]
    )
    row = forecast(seats, monthly=monthly).loc["seats"]
    assert row["month_to_date"] == 12.0
    assert row["projected_total"] == projected
    # Distinct users have no day they add up to the limit (10) on: never a day, over it or not.
    assert row["method"] == "held" and pd.isna(row["projected_exhaustion_day"])


def test_no_quota_or_no_contract_means_no_limit_and_no_day():
    for rows in (
        forecast(daily("api_calls", lambda d: 100.0), quotas={}),
        forecast(daily("api_calls", lambda d: 100.0), status="paused"),
    ):
        assert pd.isna(rows.loc["api_calls", "limit"])
        assert pd.isna(rows.loc["api_calls", "projected_exhaustion_day"])
        assert rows.loc["api_calls", "projected_total"] == pytest.approx(3000)


def test_tenants_are_forecast_apart_in_one_query():
    both = forecast(
        daily("api_calls", lambda d: 100.0),
        daily("api_calls", lambda d: 10.0, tenant="t2"),
    ).reset_index()
    totals = dict(zip(both["tenant_id"], both["projected_total"], strict=True))
    assert totals == pytest.approx({"t1": 3000.0, "t2": 300.0})
    assert both.set_index("tenant_id")["limit"].isna().to_dict() == {"t1": False, "t2": True}


# --- what the forecasts feed -------------------------------------------------------------

NOVEMBER = [
    *daily("api_calls", lambda d: 160.0),
    *daily("exports", lambda d: 300.0 if d.weekday() >= 5 else 50.0),
    *daily("projects", lambda d: 9.0),
]
MONTHLY = pd.DataFrame(
    {
        "tenant_id": "t1",
        "metric": ["api_calls", "exports", "projects"] * 2,
        "period": ["2026-10"] * 3 + ["2026-11"] * 3,
        "quantity": [2700.0, 4200.0, 9.0, 2400.0, 2000.0, 9.0],
        "events": 1,
    }
)
LIMITS = {"api_calls": 2800, "exports": 5000, "projects": 10}


def nightly_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    ents = entitlements(
        entitlement("t1", "2026-10", quotas=LIMITS), entitlement("t1", "2026-11", quotas=LIMITS)
    )
    return ents, usage_forecasts(pd.DataFrame(NOVEMBER), MONTHLY, AGGREGATIONS, ents, AS_OF)


def test_near_limit_details_say_when_the_limit_is_reached_and_nothing_else_changes():
    ents, forecasts = nightly_frames()
    plain = quota_consumption(ents, MONTHLY)
    told = quota_consumption(ents, MONTHLY, forecasts=forecasts)
    keys = ["tenant_id", "check", "subject", "period", "observed", "allowed", "enforcement"]
    pd.testing.assert_frame_equal(plain[keys], told[keys])  # same findings, same figures
    details = dict(zip(told["subject"] + " " + told["period"], told["details"], strict=True))
    before = dict(zip(plain["subject"] + " " + plain["period"], plain["details"], strict=True))
    # 2,400 of 2,800 on the 15th at 160 a day: 2,720 on the 17th, 2,880 on the 18th.
    assert details["api_calls 2026-11"] == (
        "api_calls usage of 2,400 in 2026-11 is 85% of the 2,800 included in your plan and "
        "add-ons. At the current pace the limit is reached on 2026-11-18."
    )
    # A level of 9 of 10 that holds does not reach it.
    assert details["projects 2026-11"].endswith(
        "is 90% of the 10 included in your plan and add-ons. At the current pace, projected 9 "
        "of 10 by month end."
    )
    # Closed months have no forecast: their details are as they were.
    for closed in ("api_calls 2026-10", "projects 2026-10"):
        assert details[closed] == before[closed] and "pace" not in details[closed]


@pytest.fixture
def stored(any_warehouse: Warehouse) -> pd.DataFrame:
    """The forecasts as the IO manager stores and hands them back, on DuckDB and PostgreSQL."""
    _, forecasts = nightly_frames()
    any_warehouse.write_frame("usage_forecasts", forecasts)
    return any_warehouse.read_frame("usage_forecasts")


def test_forecasts_round_trip_through_the_warehouse(stored: pd.DataFrame):
    rows = stored.set_index("metric")
    assert rows.loc["api_calls", "limit"] == 2800.0
    assert day_of(rows.loc["api_calls", "projected_exhaustion_day"]) == "2026-11-18"
    assert pd.isna(rows.loc["exports", "projected_exhaustion_day"])
    assert rows.loc["exports", "projected_total"] == pytest.approx(3750.0)


def test_statements_show_the_projection_of_the_month_running_only(stored: pd.DataFrame):
    ents, _ = nightly_frames()
    tenants = pd.DataFrame({"tenant_id": ["t1"], "name": ["T One"]})
    no_findings = pd.DataFrame(
        columns=["finding_id", "tenant_id", "check", "subject", "period", "status"]
    )

    def lines(period: str) -> dict[str, dict]:
        (statement,) = period_statements(
            period,
            as_of=AS_OF,
            tenants=tenants,
            entitlements=ents,
            usage=MONTHLY,
            findings=no_findings,
            forecasts=stored,
        )
        return {line["metric"]: line for line in statement["usage"]}, statement

    november, statement = lines("2026-11")
    assert november["api_calls"]["projected"] == pytest.approx(2400 + 15 * 160)
    assert november["api_calls"]["limit_reached_on"] == "2026-11-18"
    assert november["exports"]["projected"] == pytest.approx(3750.0)
    assert november["exports"]["limit_reached_on"] is None
    page = render_html(statement)
    assert "Projected by month end" in page and "2026-11-18" in page
    october, closed = lines("2026-10")
    assert october["api_calls"]["projected"] is None  # a closed month is not forecast
    assert "Projected by month end" not in render_html(closed)


def test_a_statement_refuses_another_tenants_forecast(stored: pd.DataFrame):
    foreign = stored.assign(tenant_id="t2")
    with pytest.raises(ForeignRowError, match="forecasts"):
        tenant_statement(
            "t1",
            "2026-11",
            as_of=AS_OF,
            tenant=None,
            entitlement=None,
            usage=MONTHLY,
            findings=pd.DataFrame(columns=["tenant_id", "period", "status"]),
            forecasts=foreign,
        )


def test_no_usage_gives_no_forecasts_and_leaves_the_details_alone():
    nothing = usage_forecasts(pd.DataFrame(), pd.DataFrame(), AGGREGATIONS, pd.DataFrame(), AS_OF)
    assert nothing.empty and list(nothing.columns)[:2] == ["tenant_id", "metric"]
    ents, _ = nightly_frames()
    plain = quota_consumption(ents, MONTHLY)
    pd.testing.assert_frame_equal(plain, quota_consumption(ents, MONTHLY, forecasts=nothing))


def test_traffic_the_demo_does_not_plan_is_forecast_within_10_percent_for_flows():
    """The anomaly backtest's generator: weekly rhythms, bursts, new and churning tenants, late
    deliveries, sporadic exports (the full report: scripts/backtest_forecast.py)."""
    data = synthetic.generate(120, seed=5)
    none = pd.DataFrame(columns=["tenant_id", "metric", "usage_date", "value_text"])
    scored = backtest(data.usage_daily, none, synthetic.AGGREGATIONS, ["2026-08", "2026-09"])
    errors = scored.groupby("kind")["ape"].median()
    assert errors["flow"] < 0.10 and errors["gauge"] < 0.05
    assert scored.loc[scored["metric"] == "api_calls", "ape"].median() < 0.06


def test_a_latest_level_that_went_over_and_came_back_has_not_reached_the_limit():
    def projects(d):  # 12 on the 3rd only; 7, then 0.25 more a day from the 4th: 9.75 now
        if d == pd.Timestamp("2026-11-03"):
            return 12.0
        return 7.0 + 0.25 * max(0, (d - pd.Timestamp("2026-11-04")).days)

    row = forecast(daily("projects", projects), quotas={"projects": 10}).loc["projects"]
    assert row["month_to_date"] == 9.75 and row["projected_total"] == pytest.approx(13.5)
    assert day_of(row["projected_exhaustion_day"]) == "2026-11-16"  # not the 3rd


@pytest.mark.parametrize(
    ("as_of", "month_to_date", "projected"),
    [
        (date(2026, 11, 1), 100.0, 3000.0),  # day one: last month's weeks give the pace
        (date(2026, 11, 30), 3000.0, 3000.0),  # the last day: the month is what it is
    ],
)
def test_the_first_and_last_day_of_a_month(as_of, month_to_date, projected):
    rows = [
        r for r in daily("api_calls", lambda d: 100.0) if r["usage_date"] <= pd.Timestamp(as_of)
    ]
    rows += [  # HISTORY ends on the 15th: the rest of November for the last-day case
        {"tenant_id": "t1", "metric": "api_calls", "usage_date": d, "quantity": 100.0, "events": 1}
        for d in pd.date_range("2026-11-16", as_of)
    ]
    monthly = pd.DataFrame(
        [{"tenant_id": "t1", "metric": "api_calls", "period": "2026-11", "quantity": month_to_date}]
    )
    ents = entitlements(entitlement("t1", "2026-11", quotas=QUOTAS))
    row = usage_forecasts(pd.DataFrame(rows), monthly, AGGREGATIONS, ents, as_of).iloc[0]
    assert row["month_to_date"] == month_to_date
    assert row["projected_total"] == pytest.approx(projected)
    assert day_of(row["projected_exhaustion_day"]) == "2026-11-28"
