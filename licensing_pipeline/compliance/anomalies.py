"""Usage anomalies: a day's usage far outside the tenant's own recent baseline.

Per (tenant, metric) the daily series runs from the tenant's first usage day to as-of.
A day without events counts as zero for flows (COUNT, SUM, UNIQUE_COUNT) and carries the
last reported level for gauges (MAX, LATEST: storage reported every few days is not a
string of zeros and spikes); the baseline b is the median of the previous ``baseline_days`` days, once at least
``min_history_days`` prior days exist. A day x is anomalous when

* x >= ratio × max(b, 1), and
* x − b >= noise_sigmas × sqrt(max(b, 1)) (Poisson standard deviations), and
* 2·(sqrt(x + 3/8) − sqrt(b + 3/8)) >= noise_sigmas — the same distance on the
  variance-stabilised (Anscombe) scale of a Poisson count.

The third test is the second one made honest for small counts: there the normal
approximation of the Poisson tail is far too thin, and the median of a few weeks of
counts averaging 1 or 2 a day is often 1, which lets a day of 7 pass the first two tests
with a false-alarm rate near 1 in 200. For larger baselines the ratio test is the
binding one, so the extra test changes nothing there.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

import duckdb
import pandas as pd

from licensing_pipeline.compliance.common import (
    as_day,
    check_results,
    day_series,
    fmt_number,
    number_series,
    require,
    text_series,
)
from licensing_pipeline.compliance.entitlements import enforcement_for
from licensing_pipeline.policy.bundle import AnomalyRule

CHECKS = ("usage_anomaly",)

_SQL = """
WITH usage AS (
    SELECT tenant_id, metric, usage_date, sum(quantity) AS quantity
    FROM usage_in WHERE usage_date <= $as_of GROUP BY ALL
),
first_day AS (
    SELECT tenant_id, min(usage_date) AS first_day
    FROM (
        SELECT tenant_id, usage_date FROM usage
        UNION ALL
        SELECT tenant_id, usage_date FROM activity_in WHERE usage_date <= $as_of
    )
    GROUP BY tenant_id
),
series AS (
    SELECT s.tenant_id, s.metric,
           unnest(generate_series(f.first_day, $as_of::TIMESTAMP, INTERVAL 1 DAY))::DATE
               AS usage_date
    FROM (SELECT DISTINCT tenant_id, metric FROM usage) s
    JOIN first_day f USING (tenant_id)
),
filled AS (
    SELECT s.tenant_id, s.metric, s.usage_date,
           CASE WHEN list_contains($gauges, s.metric)
                THEN coalesce(last_value(u.quantity IGNORE NULLS) OVER carried, 0)
                ELSE coalesce(u.quantity, 0)
           END AS x
    FROM series s LEFT JOIN usage u USING (tenant_id, metric, usage_date)
    WINDOW carried AS (PARTITION BY s.tenant_id, s.metric ORDER BY s.usage_date
                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
scored AS (
    SELECT *,
           median(x) OVER previous AS b,
           row_number() OVER days - 1 AS prior_days
    FROM filled
    WINDOW days AS (PARTITION BY tenant_id, metric ORDER BY usage_date),
           previous AS (PARTITION BY tenant_id, metric ORDER BY usage_date
                        ROWS BETWEEN $baseline_days PRECEDING AND 1 PRECEDING)
)
SELECT tenant_id, metric, usage_date, x, b
FROM scored
WHERE prior_days >= $min_history_days
  AND x >= $ratio * greatest(b, 1)
  AND x - b >= $noise_sigmas * sqrt(greatest(b, 1))
  AND (NOT $poisson_guard OR 2 * (sqrt(x + 0.375) - sqrt(b + 0.375)) >= $noise_sigmas)
ORDER BY tenant_id, metric, usage_date
"""


def _daily(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    frame = require(frame, list(columns))
    out = pd.DataFrame(
        {
            name: text_series(frame[name])
            if kind == "text"
            else day_series(frame[name]).dt.date
            if kind == "day"
            else number_series(frame[name]).fillna(0.0)
            for name, kind in columns.items()
        }
    )
    return out.dropna().astype({n: object for n, k in columns.items() if k == "text"})


def _explain(metric: str, day: str, x: float, b: float, baseline_days: int) -> str:
    usual = (
        f"your typical daily usage of {fmt_number(b)} (median of the previous {baseline_days} days)"
    )
    if b >= 1:
        return f"{metric} usage of {fmt_number(x)} on {day} is {x / b:,.1f} times {usual}."
    return f"{metric} usage of {fmt_number(x)} on {day} is far above {usual}."


def usage_anomalies(
    usage_daily: pd.DataFrame,
    activity: pd.DataFrame,
    as_of: date,
    rule: AnomalyRule | None = None,
    entitlements: pd.DataFrame | None = None,
    poisson_guard: bool = True,
    gauges: Collection[str] = (),
) -> pd.DataFrame:
    """usage_anomaly per (tenant, metric, day); period is the day 'YYYY-MM-DD'.

    ``activity`` (tenant_activity_daily) fixes each tenant's first usage day, so a metric
    a tenant starts using late is measured against the zeros before it. ``entitlements``
    only supplies the contract's enforcement; ``gauges`` names the metrics whose daily value is
    a level (MAX, LATEST) rather than a flow. The window runs in an in-memory DuckDB
    over the daily aggregates, never over events. ``poisson_guard=False`` drops the
    variance-stabilised test (the first two tests alone, as the policy file words them).
    """
    rule = rule or AnomalyRule()
    usage = _daily(
        usage_daily,
        {"tenant_id": "text", "metric": "text", "usage_date": "day", "quantity": "number"},
    )
    days = _daily(activity, {"tenant_id": "text", "usage_date": "day"})
    con = duckdb.connect()
    try:
        con.register("usage_in", usage)
        con.register("activity_in", days)
        found = con.execute(
            _SQL,
            {
                "as_of": as_day(as_of).date(),
                "ratio": float(rule.ratio),
                "noise_sigmas": float(rule.noise_sigmas),
                "baseline_days": int(rule.baseline_days),
                "min_history_days": int(rule.min_history_days),
                "poisson_guard": bool(poisson_guard),
                "gauges": sorted(gauges),
            },
        ).df()
    finally:
        con.close()
    if found.empty:
        return check_results(found)
    stamps = day_series(found["usage_date"])
    found["check"] = "usage_anomaly"
    found["subject"] = found["metric"]
    found["period"] = stamps.dt.strftime("%Y-%m-%d")
    found["observed"] = found["x"].astype(float)
    found["allowed"] = found["b"].astype(float)
    if entitlements is not None:
        months = found.assign(period=stamps.dt.strftime("%Y-%m"))
        found["enforcement"] = enforcement_for(entitlements, months)
    found["details"] = [
        _explain(metric, day, x, b, rule.baseline_days)
        for metric, day, x, b in found[["metric", "period", "x", "b"]].itertuples(index=False)
    ]
    return check_results(found)
