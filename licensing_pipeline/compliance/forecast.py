"""Usage forecasts: where each tenant's metric will end the month still running, and the day
it reaches its limit at the current pace.

**Flows** (COUNT, SUM) are projected as the month to date plus a daily pace spread over the
remaining days by the tenant's weekday pattern (each weekday's mean over the last 4 weeks).
The pace is the weekday-adjusted mean of those 4 weeks with each day's weight halving every
week back, so a new level shows within days; a day counts in it at most 3 times its weekday's
median, so a burst stays in the month to date and is not projected onto the days ahead.
**Gauges** (MAX, LATEST) are projected as their last reported level moved by the median daily
change between the reports of the last 2 weeks (a MAX never falls, nor ends below its month
to date); **UNIQUE_COUNT** is held at the larger of its month-to-date count and last month's:
the same users come back, so distinct users do not add up over days (and the daily counts do
not say who is new), while a team that has not all logged in yet will have by month end.

A day without usage is a day of zero use (a flow adds nothing, a gauge keeps its level); the
weekday pattern needs 2 weeks of history, before which every day weighs the same. Everything
runs as one DuckDB query over the daily aggregates, never over events.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import duckdb
import pandas as pd

from licensing_pipeline.compliance.common import (
    as_day,
    daily_usage,
    day_series,
    fmt_number,
    typed_frame,
)
from licensing_pipeline.compliance.entitlements import entitled_quotas, period_of
from licensing_pipeline.contract.schemas import USAGE_FORECASTS, conform

RECENT_DAYS = 28  # the weekday pattern and the recent pace
TREND_DAYS = 14  # a gauge's daily change
PATTERN_DAYS = 14  # history a weekday pattern needs
HALF_LIFE_DAYS = 7.0  # a day's weight in the pace halves every week back
BURST_CAP = 3.0  # a day counts in the pace at most this many times its weekday's median

# How each aggregation is projected (the ``method`` column, before the weekday test).
METHODS = {
    "COUNT": "pace",
    "SUM": "pace",
    "MAX": "trend",
    "LATEST": "trend",
    "UNIQUE_COUNT": "held",
}

_FORECAST = """
WITH kinds AS (
    SELECT metric, any_value(upper(aggregation)) AS aggregation FROM kinds_in GROUP BY ALL
),
usage AS (
    SELECT u.tenant_id, u.metric, u.usage_date AS day, sum(u.quantity) AS q, sum(u.events) AS n
    FROM usage_in u
    WHERE u.usage_date <= $as_of
    GROUP BY ALL
),
series AS (
    SELECT tenant_id, metric, coalesce(k.aggregation, 'COUNT') AS aggregation,
           greatest(min(day), $window_start) AS start
    FROM usage LEFT JOIN kinds k USING (metric)
    GROUP BY ALL
    HAVING max(day) >= $window_start
),
daily AS (
    SELECT s.tenant_id, s.metric, s.aggregation, g.day, isodow(g.day) AS dow,
           g.day <= $as_of AS seen,
           g.day >= $month_start AND g.day <= $as_of AS in_month,
           g.day > $as_of - $recent_days AND g.day <= $as_of AS recent,
           coalesce(u.q, 0) AS x,
           coalesce(u.n, 0) > 0 AS reported,
           u.q AS report
    FROM series s,
         LATERAL (SELECT unnest(generate_series(s.start::TIMESTAMP, $month_end::TIMESTAMP,
                                                INTERVAL 1 DAY))::DATE AS day) g
    LEFT JOIN usage u ON u.tenant_id = s.tenant_id AND u.metric = s.metric AND u.day = g.day
),
typical AS (
    SELECT tenant_id, metric, dow, median(x) AS typical
    FROM daily WHERE recent
    GROUP BY ALL
),
capped AS (
    SELECT d.*, CASE WHEN t.typical > 0 THEN least(d.x, $burst_cap * t.typical) ELSE d.x END
                    AS usual
    FROM daily d LEFT JOIN typical t USING (tenant_id, metric, dow)
),
weekdays AS (
    SELECT tenant_id, metric, dow, avg(usual) AS level
    FROM capped WHERE recent
    GROUP BY ALL
),
patterns AS (
    SELECT tenant_id, metric, avg(level) AS mean_level
    FROM weekdays
    GROUP BY ALL
),
history AS (
    SELECT tenant_id, metric, count(*) FILTER (WHERE seen) AS days_observed,
           count(*) FILTER (WHERE recent) AS recent_days
    FROM daily
    GROUP BY ALL
),
shaped AS (
    SELECT d.*, h.days_observed,
           h.recent_days >= $pattern_days AND p.mean_level > 0 AS weekly,
           CASE WHEN h.recent_days >= $pattern_days AND p.mean_level > 0
                THEN w.level / p.mean_level ELSE 1 END AS weight
    FROM capped d
    JOIN history h USING (tenant_id, metric)
    LEFT JOIN patterns p USING (tenant_id, metric)
    LEFT JOIN weekdays w USING (tenant_id, metric, dow)
),
pace AS (
    SELECT tenant_id, metric, aggregation, any_value(weekly) AS weekly,
           any_value(days_observed) AS days_observed,
           coalesce(sum(usual * recency) FILTER (WHERE recent)
                    / nullif(sum(weight * recency) FILTER (WHERE recent), 0), 0) AS rate,
           coalesce(sum(weight) FILTER (WHERE NOT seen), 0) AS rest_w
    FROM (SELECT *, pow(0.5, datediff('day', day, $as_of) / $half_life) AS recency FROM shaped)
    GROUP BY ALL
),
reports AS (
    SELECT tenant_id, metric, day, report,
           (report - lag(report) OVER ordered) / datediff('day', lag(day) OVER ordered, day)
               AS change
    FROM daily
    WHERE reported AND seen
    WINDOW ordered AS (PARTITION BY tenant_id, metric ORDER BY day)
),
levels AS (
    SELECT tenant_id, metric, arg_max(report, day) AS last_level, max(day) AS last_day,
           coalesce(median(change) FILTER (WHERE day > $as_of - $trend_days), 0) AS trend
    FROM reports
    GROUP BY ALL
),
projected AS (
    SELECT s.tenant_id, s.metric, s.aggregation, s.day, s.in_month OR s.day > $as_of AS counted,
           CASE WHEN s.aggregation IN ('MAX', 'LATEST') THEN
                    CASE WHEN s.seen THEN
                             CASE WHEN s.day >= $month_start THEN s.report END
                         ELSE greatest(0, l.last_level + CASE WHEN s.aggregation = 'MAX'
                                                              THEN greatest(l.trend, 0)
                                                              ELSE l.trend END
                                                         * datediff('day', l.last_day, s.day))
                    END
                WHEN s.seen THEN s.x
                ELSE p.rate * s.weight END AS value
    FROM shaped s
    JOIN pace p USING (tenant_id, metric)
    LEFT JOIN levels l USING (tenant_id, metric)
),
figures AS (
    SELECT tenant_id, metric, aggregation, day,
           CASE aggregation
                WHEN 'MAX' THEN max(value) OVER month_so_far
                WHEN 'LATEST' THEN last_value(value IGNORE NULLS) OVER month_so_far
                ELSE sum(value) OVER month_so_far END AS figure
    FROM projected
    WHERE counted
    WINDOW month_so_far AS (PARTITION BY tenant_id, metric ORDER BY day
                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
-- The limit is reached on the first day from which the month's figure stays at or above it
-- (a LATEST that went over and came back down has not reached it).
ends AS (
    SELECT tenant_id, metric, arg_max(figure, day) AS figure_at_end,
           min(day) FILTER (WHERE figure >= "limit" AND lowest_after >= "limit" AND figure > 0)
               AS crossing
    FROM (
        SELECT f.*, l."limit",
               min(f.figure) OVER (PARTITION BY f.tenant_id, f.metric ORDER BY f.day
                                   ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)
                   AS lowest_after
        FROM figures f LEFT JOIN limits_in l USING (tenant_id, metric)
    )
    GROUP BY ALL
)
SELECT p.tenant_id, p.metric, p.aggregation, p.weekly, p.days_observed,
       coalesce(m.quantity, 0) AS month_to_date,
       CASE p.aggregation
            WHEN 'UNIQUE_COUNT' THEN greatest(coalesce(m.quantity, 0), coalesce(b.quantity, 0))
            WHEN 'MAX' THEN greatest(coalesce(m.quantity, 0), coalesce(e.figure_at_end, 0))
            WHEN 'LATEST' THEN coalesce(e.figure_at_end, m.quantity, 0)
            ELSE coalesce(m.quantity, 0) + p.rate * p.rest_w
       END AS projected_total,
       l."limit",
       CASE WHEN p.aggregation <> 'UNIQUE_COUNT' THEN e.crossing END AS crossing
FROM pace p
LEFT JOIN month_in m USING (tenant_id, metric)
LEFT JOIN before_in b USING (tenant_id, metric)
LEFT JOIN ends e USING (tenant_id, metric)
LEFT JOIN limits_in l USING (tenant_id, metric)
ORDER BY p.tenant_id, p.metric
"""


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def usage_forecasts(
    usage_daily: pd.DataFrame,
    usage_monthly: pd.DataFrame,
    aggregations: Mapping[str, str],
    entitlements: pd.DataFrame,
    as_of: date,
) -> pd.DataFrame:
    """One row per tenant and metric used in the as-of month or the 4 weeks before it
    (USAGE_FORECASTS columns): month to date, projected month-end total, the entitled limit
    of the month (<NA>: unlimited or not entitled), the day the projection first reaches it
    (<NA> when it does not, and always for UNIQUE_COUNT, whose days do not add up), the method
    and the days of history read."""
    day = as_day(as_of).date()
    period = period_of(day)
    month_start = day.replace(day=1)
    usage = daily_usage(usage_daily)
    monthly = typed_frame(
        usage_monthly,
        {"tenant_id": "text", "metric": "text", "period": "text", "quantity": "number"},
    )
    previous = period_of(month_start - timedelta(days=1))
    months = monthly.groupby(["period", "tenant_id", "metric"], as_index=False)["quantity"].sum()
    this_month, last_month = (
        months[months["period"] == p].drop(columns="period") for p in (period, previous)
    )
    kinds = pd.DataFrame(
        [(str(m), str(a)) for m, a in aggregations.items()],
        columns=["metric", "aggregation"],
        dtype=object,
    )
    quotas = entitled_quotas(entitlements)
    limits = quotas[quotas["period"] == period][["tenant_id", "metric", "limit"]].astype(
        {"tenant_id": object, "metric": object}
    )
    params = {
        "as_of": day,
        "month_start": month_start,
        "month_end": _month_end(day),
        "window_start": min(month_start, day - timedelta(days=RECENT_DAYS - 1)),
        "recent_days": RECENT_DAYS,
        "trend_days": TREND_DAYS,
        "pattern_days": PATTERN_DAYS,
        "half_life": HALF_LIFE_DAYS,
        "burst_cap": BURST_CAP,
    }
    con = duckdb.connect()
    try:
        for name, frame in (
            ("usage_in", usage),
            ("month_in", this_month),
            ("before_in", last_month),
            ("kinds_in", kinds),
            ("limits_in", limits),
        ):
            con.register(name, frame)
        found = con.execute(_FORECAST, params).df()
    finally:
        con.close()
    method = found["aggregation"].map(METHODS).fillna("pace")
    weekly = found["weekly"].fillna(False).astype(bool)
    found["method"] = method.where(method != "pace", method.where(~weekly, "weekday_pace"))
    found["period"] = period
    found["as_of"] = pd.Timestamp(day)
    crossing = day_series(found["crossing"])
    reached = found["projected_total"] >= found["limit"]
    found["projected_exhaustion_day"] = crossing.where(reached.fillna(False))
    return conform(found, USAGE_FORECASTS)


def pace_note(projected: float, limit: float, exhaustion_day: Any) -> str:
    """The forecast in one sentence for people: the day the limit is reached at the current
    pace, or where the month ends against it."""
    if exhaustion_day is not None and not pd.isna(exhaustion_day):
        return f"At the current pace the limit is reached on {as_day(exhaustion_day):%Y-%m-%d}."
    return (
        f"At the current pace, projected {fmt_number(projected)} of {fmt_number(limit)} "
        "by month end."
    )
