"""Usage anomalies: episodes of usage far outside the tenant's own recent level, judged by a rule
that fits the kind of series.

Per (tenant, metric) the daily series runs from the metric's first day of use to as-of; flows
(COUNT, UNIQUE_COUNT, SUM) count a day without events as zero, gauges (MAX, LATEST) carry the
last reported level. Each series is cut into *regimes*: it starts one, every change of the
tenant's entitlement starts one (the baseline re-anchors on what the new contract brings), and
for gauges every level shift starts one. Only days inside a regime form a day's baseline.

* **Counts** (COUNT, UNIQUE_COUNT): the baseline is the median of the previous
  ``baseline_days`` days, or of the same weekday over the previous ``seasonal_weeks`` weeks once
  the regime is that old. A day is anomalous when it is at least ``ratio`` times the baseline,
  ``noise_sigmas`` apart on the variance-stabilised (Anscombe) scale of a Poisson count, and
  above ``novelty`` times the 90th percentile of the whole window (a Saturday as busy as an
  ordinary Tuesday is not news, however quiet Saturdays are).
* **Sums** (SUM): activity and size are judged apart against the previous *active* days (days
  with events), once ``min_active_days`` of them exist: an anomalous day has far more events
  (the count tests above, on the number of events, never on the summed value) *and* a far
  larger quantity; or, with ordinary activity, a quantity ``2 × ratio`` times the usual active
  day and twice the largest one seen. One more ordinary export is not news.
* **Gauges** (MAX, LATEST): a level shift is a day at least ``ratio`` times the regime's
  baseline; it is one finding, and the baseline re-anchors on the new level from that day.

Consecutive anomalous days of one tenant and metric are one *episode*: it opens on a day that
passes the tests, goes on while days pass them at half the thresholds, and ends after
``episode_gap_days`` + 1 days in a row that do not. Its period is the first day, so an ongoing
episode keeps its finding id night after night. An episode that opens within
``explained_days`` of a change of the tenant's entitlement (upgrade, add-on, override, a new or
ended contract) is expected, not news: it is suppressed and reported in the asset's metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import duckdb
import pandas as pd

from licensing_pipeline.compliance.common import (
    as_day,
    check_results,
    daily_usage,
    day_series,
    fmt_number,
    typed_frame,
)
from licensing_pipeline.compliance.entitlements import enforcement_for, entitlement_changes
from licensing_pipeline.compliance.overrides import change_days
from licensing_pipeline.policy.schema import AnomalyRule

CHECKS = ("usage_anomaly",)

# The catalog's aggregation decides the rule; an unknown metric is judged as a count.
KINDS = {"COUNT": "count", "UNIQUE_COUNT": "count", "SUM": "sum", "MAX": "gauge", "LATEST": "gauge"}

# Gauges: a series can shift several times; each pass finds the next shift of every series.
_MAX_SHIFT_PASSES = 50

EPISODES: dict[str, str] = {
    "tenant_id": "string",
    "metric": "string",
    "kind": "string",
    "start": "datetime64[ns]",
    "end": "datetime64[ns]",
    "days": "object",  # list of the episode's anomalous days, ISO text
    "peak_day": "datetime64[ns]",
    "peak": "float64",
    "peak_events": "float64",
    "expected": "float64",
    "usual_low": "float64",
    "usual_high": "float64",
    "usual_events_low": "float64",
    "usual_events_high": "float64",
    "previous": "float64",
    "seasonal": "bool",
    "suppressed_by": "string",  # <NA>, or why the episode is expected
}

_SERIES = """
CREATE TEMP TABLE daily AS
WITH usage AS (
    SELECT u.tenant_id, u.metric, u.usage_date AS day,
           sum(u.quantity) AS q, sum(u.events) AS n,
           coalesce(any_value(k.kind), 'count') AS kind
    FROM usage_in u LEFT JOIN kinds_in k USING (metric)
    WHERE u.usage_date <= $as_of
    GROUP BY ALL
),
spans AS (
    SELECT tenant_id, metric, kind, min(day) AS first_day
    FROM usage
    WHERE n > 0 AND (kind <> 'gauge' OR q > 0)
    GROUP BY ALL
),
series AS (
    SELECT tenant_id, metric, kind,
           unnest(generate_series(first_day, $as_of::TIMESTAMP, INTERVAL 1 DAY))::DATE AS day
    FROM spans
)
SELECT s.tenant_id, s.metric, s.kind, s.day,
       CASE WHEN s.kind = 'gauge'
            THEN coalesce(last_value(CASE WHEN u.n > 0 THEN u.q END IGNORE NULLS) OVER carried, 0)
            ELSE coalesce(u.q, 0)
       END AS x,
       coalesce(u.n, 0) AS n
FROM series s LEFT JOIN usage u USING (tenant_id, metric, day)
WINDOW carried AS (PARTITION BY s.tenant_id, s.metric ORDER BY s.day
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
"""

# A series starts at the metric's first day of use, and a count starts anew on a day of use that
# follows more than ``baseline_days`` days without any: a tenant back from a long pause (or a
# stray event years early) is not judged against a baseline of zeros.
_STARTS = """
CREATE TEMP TABLE starts AS
SELECT tenant_id, metric, day, 'start' AS why
FROM (
    SELECT tenant_id, metric, kind, day,
           lag(day) OVER (PARTITION BY tenant_id, metric ORDER BY day) AS used_before
    FROM daily
    WHERE n > 0 OR day = (SELECT min(d.day) FROM daily d
                          WHERE d.tenant_id = daily.tenant_id AND d.metric = daily.metric)
)
WHERE used_before IS NULL
   OR (kind = 'count' AND datediff('day', used_before, day) > $baseline_days)
"""

# Every day with its regime and the statistics of the days before it in that regime.
_SCORED = """
WITH regimed AS (
    SELECT d.*, s.day AS regime, s.why,
           row_number() OVER (PARTITION BY d.tenant_id, d.metric, s.day ORDER BY d.day) - 1
               AS prior,
           dayofweek(d.day) AS dow
    FROM daily d
    ASOF JOIN starts s
        ON d.tenant_id = s.tenant_id AND d.metric = s.metric AND d.day >= s.day
    WHERE d.kind IN (SELECT unnest($kinds))
),
windowed AS (
    SELECT *,
           median(x) OVER w AS b,
           quantile_cont(x, 0.25) OVER w AS lo,
           quantile_cont(x, 0.75) OVER w AS hi,
           quantile_cont(x, 0.9) OVER w AS top,
           count(*) OVER wd AS dow_n,
           median(x) OVER wd AS bd,
           quantile_cont(x, 0.25) OVER wd AS lod,
           quantile_cont(x, 0.75) OVER wd AS hid,
           median(x) OVER wall AS b_all,
           quantile_cont(x, 0.25) OVER wall AS lo_all,
           quantile_cont(x, 0.75) OVER wall AS hi_all,
           1.4826 * mad(ln(x + 1)) OVER w AS spread,
           lag(x) OVER (PARTITION BY tenant_id, metric ORDER BY day) AS before
    FROM regimed
    WINDOW w AS (PARTITION BY tenant_id, metric, regime ORDER BY day
                 ROWS BETWEEN $baseline_days PRECEDING AND 1 PRECEDING),
           wd AS (PARTITION BY tenant_id, metric, regime, dow ORDER BY day
                  ROWS BETWEEN $seasonal_weeks PRECEDING AND 1 PRECEDING),
           wall AS (PARTITION BY tenant_id, metric ORDER BY day
                    ROWS BETWEEN $baseline_days PRECEDING AND 1 PRECEDING)
),
active AS (
    SELECT tenant_id, metric, day,
           count(*) OVER wa AS a_days,
           median(x) OVER wa AS a_x,
           quantile_cont(x, 0.25) OVER wa AS a_lo,
           quantile_cont(x, 0.75) OVER wa AS a_hi,
           median(n) OVER wa AS a_n,
           quantile_cont(n, 0.25) OVER wa AS a_nlo,
           quantile_cont(n, 0.75) OVER wa AS a_nhi,
           quantile_cont(n, 0.9) OVER wa AS a_ntop,
           1.4826 * mad(ln(n + 1)) OVER wa AS a_spread
    FROM regimed
    WHERE kind = 'sum' AND n > 0
    WINDOW wa AS (PARTITION BY tenant_id, metric, regime ORDER BY day
                  ROWS BETWEEN $baseline_days PRECEDING AND 1 PRECEDING)
)
SELECT *,
       -- A day that only makes up for a short day before it (a late delivery) is judged
       -- without what the day before fell short by.
       x - greatest(0, CASE WHEN kind = 'sum' THEN coalesce(lag(a_x) OVER series, a_x)
                            ELSE lag(ref) OVER series END - lag(x) OVER series, 0) AS x_net,
       n - greatest(0, coalesce(lag(a_n) OVER series, a_n) - lag(n) OVER series, 0) AS n_net
FROM (
    SELECT w.*, a.* EXCLUDE (tenant_id, metric, day),
           prior >= CASE WHEN why = 'start' THEN $min_history_days ELSE 1 END AS judged,
           $seasonal_weeks > 0 AND dow_n >= least($seasonal_weeks, 4) AS seasonal,
           CASE WHEN $seasonal_weeks > 0 AND dow_n >= least($seasonal_weeks, 4) THEN bd ELSE b END
               AS ref
    FROM windowed w LEFT JOIN active a USING (tenant_id, metric, day)
)
WINDOW series AS (PARTITION BY tenant_id, metric ORDER BY day)
"""


def _count_test(value: str, base: str, ratio: str, sigmas: str) -> str:
    """SQL: ``value`` is ``ratio`` times ``base`` and ``sigmas`` apart on the Anscombe scale."""
    return (
        f"({value} >= {ratio} * greatest({base}, 1) AND "
        f"2 * (sqrt({value} + 0.375) - sqrt(greatest({base}, 0) + 0.375)) >= {sigmas})"
    )


def _flags(rule: AnomalyRule, *, shifts_found: bool = True) -> tuple[str, str]:
    """SQL for (opens an episode, continues one), per kind. Once ``_find_shifts`` has run, a
    gauge's episode is the first day of each regime it started."""
    r, s, half_r, half_s = rule.ratio, rule.noise_sigmas, rule.ratio / 2, rule.noise_sigmas / 2
    count_open = (
        f"{_count_test('x_net', 'ref', str(r), str(s))} AND x_net >= {rule.novelty} * top "
        f"AND ln((x_net + 1) / (greatest(ref, 0) + 1)) >= "
        f"{rule.spread_sigmas} * greatest(spread, 0.1)"
    )
    count_go_on = _count_test("x", "ref", str(half_r), str(half_s))
    sums_active = f"n > 0 AND a_days >= {rule.min_active_days}"
    # Events and size must both stand out, each a check on the other: the events' noise test
    # runs at half the sigmas.
    sum_open = (
        f"{sums_active} AND {_count_test('n_net', 'a_n', str(r), str(half_s))} "
        f"AND ln((n_net + 1) / (greatest(a_n, 0) + 1)) >= "
        f"{rule.spread_sigmas} * greatest(a_spread, 0.1) "
        f"AND n_net >= {rule.novelty} * a_ntop AND x_net >= {r} * a_x"
    )
    sum_go_on = (
        f"{sums_active} AND {_count_test('n', 'a_n', str(half_r), str(half_s))} "
        f"AND x >= {half_r} * a_x"
    )
    # A shift is a step: far above the regime's level and a jump from the day before.
    gauge_shift = (
        "(why = 'shift' AND day = regime)"
        if shifts_found
        else f"x >= {r} * greatest(b, 1) AND x >= {half_r} * greatest(before, 0)"
    )
    opens = (
        f"CASE kind WHEN 'count' THEN judged AND {count_open} "
        f"WHEN 'sum' THEN judged AND {sum_open} "
        f"ELSE {gauge_shift} END"
    )
    goes_on = (
        f"CASE kind WHEN 'count' THEN judged AND {count_go_on} "
        f"WHEN 'sum' THEN judged AND {sum_go_on} "
        f"ELSE {gauge_shift} END"
    )
    return opens, goes_on


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping) -> duckdb.DuckDBPyConnection:
    """Execute with the parameters the statement names (DuckDB refuses any other)."""
    return con.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql})


def _find_shifts(con: duckdb.DuckDBPyConnection, rule: AnomalyRule, params: dict) -> None:
    """Add every gauge's level shifts to ``starts``, earliest first, so each re-anchors the
    baseline the next one is judged against."""
    opens, _ = _flags(rule, shifts_found=False)
    for _ in range(_MAX_SHIFT_PASSES):
        added = _run(
            con,
            f"""
            INSERT INTO starts
            SELECT tenant_id, metric, min(day), 'shift'
            FROM ({_SCORED})
            WHERE judged AND {opens} AND day > regime
            GROUP BY ALL
            RETURNING 1
            """,
            {**params, "kinds": ["gauge"]},
        ).fetchall()
        if not added:
            return


_EPISODES = """
WITH scored AS ({scored}),
flagged AS (
    SELECT *, {opens} AS opens, {goes_on} AS goes_on FROM scored
),
runs AS (
    SELECT *,
           sum(CASE WHEN gap > $episode_gap_days THEN 1 ELSE 0 END)
               OVER (PARTITION BY tenant_id, metric ORDER BY day) AS run
    FROM (
        SELECT *, coalesce(datediff('day', lag(day) OVER (PARTITION BY tenant_id, metric
                                                          ORDER BY day), day) - 1, 1e9) AS gap
        FROM flagged WHERE goes_on OR opens
    )
),
opened AS (
    SELECT *, min(CASE WHEN opens THEN day END)
                  OVER (PARTITION BY tenant_id, metric, run) AS start
    FROM runs
),
episode_days AS (SELECT * FROM opened WHERE start IS NOT NULL AND day >= start)
SELECT e.tenant_id, e.metric, any_value(e.kind) AS kind, e.start,
       max(e.day) AS "end",
       list(strftime(e.day, '%Y-%m-%d') ORDER BY e.day) AS days,
       arg_max(e.day, e.x) AS peak_day,
       max(e.x) AS peak,
       arg_max(e.n, e.x) AS peak_events,
       any_value(CASE WHEN e.day = e.start THEN
           CASE WHEN e.kind = 'sum' THEN e.a_x WHEN e.kind = 'gauge' THEN e.b_all ELSE e.ref END
       END) AS expected,
       any_value(CASE WHEN e.day = e.start THEN
           CASE WHEN e.kind = 'sum' THEN e.a_lo WHEN e.kind = 'gauge' THEN e.lo_all
                WHEN e.seasonal THEN e.lod ELSE e.lo END
       END) AS usual_low,
       any_value(CASE WHEN e.day = e.start THEN
           CASE WHEN e.kind = 'sum' THEN e.a_hi WHEN e.kind = 'gauge' THEN e.hi_all
                WHEN e.seasonal THEN e.hid ELSE e.hi END
       END) AS usual_high,
       any_value(CASE WHEN e.day = e.start THEN e.a_nlo END) AS usual_events_low,
       any_value(CASE WHEN e.day = e.start THEN e.a_nhi END) AS usual_events_high,
       any_value(CASE WHEN e.day = e.start THEN e.before END) AS previous,
       bool_or(e.day = e.start AND e.seasonal AND e.kind = 'count') AS seasonal,
       (SELECT median(d.x) FROM daily d
        WHERE d.tenant_id = e.tenant_id AND d.metric = e.metric
          AND d.day > e.start AND d.day <= e.start + $explained_days::INTEGER) AS level_after,
       (SELECT arg_min(c.day, abs(datediff('day', c.day, e.start))) FROM changes_in c
        WHERE c.tenant_id = e.tenant_id
          AND abs(datediff('day', c.day, e.start)) <= $explained_days) AS change
FROM episode_days e
GROUP BY e.tenant_id, e.metric, e.start
ORDER BY e.tenant_id, e.metric, e.start
"""

# A change explains the one episode of a metric nearest to it, and only when the level it
# brought stays: the median of the days after the start is still at half the ratio (a one-day
# spike next to an upgrade, or a second jump after the upgrade's own, is news).
_EXPLAINED = """
SELECT * EXCLUDE (level_after, change, nearest),
       CASE WHEN nearest = 1 AND coalesce(level_after >= $half_ratio * greatest(expected, 0), TRUE)
            THEN 'entitlement change on ' || strftime(change, '%Y-%m-%d') END AS suppressed_by
FROM (
    SELECT *, row_number() OVER (PARTITION BY tenant_id, metric, change
                                 ORDER BY abs(datediff('day', change, start)), start) AS nearest
    FROM found
)
ORDER BY tenant_id, metric, start
"""


def anomaly_episodes(
    usage_daily: pd.DataFrame,
    as_of: date,
    rule: AnomalyRule | None = None,
    *,
    aggregations: Mapping[str, str] | None = None,
    changes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every anomaly episode up to as-of (EPISODES columns), suppressed ones included.

    ``usage_daily`` has tenant_id, metric, usage_date, quantity and events; ``aggregations``
    maps each metric to its catalog aggregation; ``changes`` (tenant_id, changed_on) lists the
    days a tenant's entitlement changed. The windows run in an in-memory DuckDB over the daily
    aggregates, never over events.
    """
    rule = rule or AnomalyRule()
    usage = daily_usage(usage_daily)
    kinds = pd.DataFrame(
        [
            (metric, KINDS.get(str(aggregation).upper(), "count"))
            for metric, aggregation in (aggregations or {}).items()
        ],
        columns=["metric", "kind"],
        dtype=object,
    )
    days_changed = typed_frame(
        changes if changes is not None else pd.DataFrame(), {"tenant_id": "text", "day": "day"}
    ).drop_duplicates()
    params = {
        "as_of": as_day(as_of).date(),
        "baseline_days": int(rule.baseline_days),
        "seasonal_weeks": int(rule.seasonal_weeks),
        "min_history_days": int(rule.min_history_days),
    }
    con = duckdb.connect()
    try:
        con.register("usage_in", usage)
        con.register("kinds_in", kinds)
        con.register("changes_in", days_changed)
        _run(con, _SERIES, params)
        _run(con, _STARTS, params)
        _find_shifts(con, rule, params)
        opens, goes_on = _flags(rule)
        params |= {
            "kinds": ["count", "sum", "gauge"],
            "episode_gap_days": int(rule.episode_gap_days),
            "explained_days": int(rule.explained_days),
            "half_ratio": rule.ratio / 2,
        }
        episodes = _EPISODES.format(scored=_SCORED, opens=opens, goes_on=goes_on)
        _run(con, f"CREATE TEMP TABLE found AS {episodes}", params)
        found = _run(con, _EXPLAINED, params).df()
    finally:
        con.close()
    for column in ("start", "end", "peak_day"):
        found[column] = day_series(found[column])
    found["days"] = found["days"].map(list)
    return found.astype(EPISODES)[list(EPISODES)]


_WEEKDAYS = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")


def _range(low: float, high: float) -> str:
    if pd.isna(low) or pd.isna(high) or fmt_number(low) == fmt_number(high):
        return fmt_number(high if pd.notna(high) else low if pd.notna(low) else 0.0)
    return f"{fmt_number(low)}–{fmt_number(high)}"


def explain(episode: Mapping, rule: AnomalyRule) -> str:
    """What was expected and what was seen, in plain words."""
    metric, kind = episode["metric"], episode["kind"]
    start, peak_day = episode["start"], episode["peak_day"]
    on = f"on {peak_day:%Y-%m-%d}"
    if kind == "gauge":
        seen = (
            f"{metric} rose to {fmt_number(episode['peak'])} {on}, from "
            f"{fmt_number(episode['previous'])} the day before "
            f"({_range(episode['usual_low'], episode['usual_high'])} over the previous "
            f"{rule.baseline_days} days)"
        )
    elif kind == "sum":
        seen = (
            f"{metric} of {fmt_number(episode['peak'])} in {fmt_number(episode['peak_events'])} "
            f"event(s) {on} against a usual {_range(episode['usual_low'], episode['usual_high'])} "
            f"in {_range(episode['usual_events_low'], episode['usual_events_high'])} event(s) "
            "on the days with any"
        )
    else:
        # A seasonal baseline is that of the episode's first day's weekday.
        when = f"on {_WEEKDAYS[start.weekday()]}" if episode["seasonal"] else "a day"
        seen = (
            f"{fmt_number(episode['peak'])} {metric} {on} against a usual "
            f"{_range(episode['usual_low'], episode['usual_high'])} {when}"
        )
    days = list(episode["days"])
    if len(days) > 1:
        return f"{seen}; anomalous on {len(days)} days from {days[0]}: {', '.join(days)}."
    return f"{seen}."


def anomaly_results(
    episodes: pd.DataFrame, rule: AnomalyRule, entitlements: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One usage_anomaly result per episode that no entitlement change explains."""
    found = episodes[episodes["suppressed_by"].isna()].reset_index(drop=True)
    if found.empty:
        return check_results(found)
    out = pd.DataFrame(
        {
            "tenant_id": found["tenant_id"],
            "check": "usage_anomaly",
            "subject": found["metric"],
            "period": found["start"].dt.strftime("%Y-%m-%d"),
            "observed": found["peak"].astype(float),
            "allowed": found["expected"].astype(float),
            "details": [explain(row, rule) for row in found.to_dict("records")],
        }
    )
    if entitlements is not None:
        months = out.assign(period=found["start"].dt.strftime("%Y-%m"))
        out["enforcement"] = enforcement_for(entitlements, months)
    return check_results(out)


def usage_anomalies(
    usage_daily: pd.DataFrame,
    as_of: date,
    rule: AnomalyRule | None = None,
    *,
    aggregations: Mapping[str, str] | None = None,
    contracts: pd.DataFrame | None = None,
    entitlements: pd.DataFrame | None = None,
    approved: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(usage_anomaly results, every episode): what the nightly asset and the backtest run.

    The entitlement changes that explain a shift come from ``contracts`` and from the
    ``approved`` change requests (the days they begin or stop); a result's period is its
    episode's first day 'YYYY-MM-DD'.
    """
    rule = rule or AnomalyRule()
    changes = pd.concat(
        [
            entitlement_changes(contracts)[["tenant_id", "day"]]
            if contracts is not None
            else pd.DataFrame(columns=["tenant_id", "day"]),
            change_days(approved),
        ],
        ignore_index=True,
    )
    episodes = anomaly_episodes(
        usage_daily, as_of, rule, aggregations=aggregations, changes=changes
    )
    return anomaly_results(episodes, rule, entitlements), episodes
