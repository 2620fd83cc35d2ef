"""The forecast's backtest: forecast each closed month from its days up to a cut-off day, and
compare with what the month came to.

The forecast is ``forecast.usage_forecasts``, the function the nightly asset runs, fed the
daily usage up to the cut-off and the month-to-date figures as the warehouse would have held
them that night. The error of a series is |projected − actual| / actual, over series whose
month had usage (actual > 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import pandas as pd

from licensing_pipeline.compliance.common import day_series
from licensing_pipeline.compliance.forecast import usage_forecasts
from licensing_pipeline.contract.schemas import EFFECTIVE_ENTITLEMENTS, empty_frame

# How the report groups the aggregations.
KIND_OF = {
    "COUNT": "flow",
    "SUM": "flow",
    "MAX": "gauge",
    "LATEST": "gauge",
    "UNIQUE_COUNT": "unique",
}


def month_figures(
    usage_daily: pd.DataFrame, aggregations: Mapping[str, str], values: pd.DataFrame
) -> pd.DataFrame:
    """Per tenant, metric and month, the figure of its days as usage_monthly counts it: the sum
    (COUNT, SUM), the largest (MAX), the last day's (LATEST), or for UNIQUE_COUNT the distinct
    ``value_text`` of ``values`` (metric_daily_values: tenant_id, metric, usage_date,
    value_text), since a month's distinct users are not a figure of its days."""
    frame = usage_daily.assign(
        usage_date=day_series(usage_daily["usage_date"]),
        aggregation=usage_daily["metric"].map(aggregations),
    )
    frame = frame[frame["aggregation"].isin(["COUNT", "SUM", "MAX", "LATEST"])]
    frame = frame.sort_values("usage_date")
    frame["period"] = frame["usage_date"].dt.strftime("%Y-%m")
    keys = ["tenant_id", "metric", "period"]
    grouped = frame.groupby(keys)["quantity"]
    figures = pd.DataFrame(
        {"sum": grouped.sum(), "max": grouped.max(), "last": grouped.last()}
    ).reset_index()
    aggregation = figures["metric"].map(aggregations)
    figures["quantity"] = figures["sum"].where(
        aggregation.isin(["COUNT", "SUM"]),
        figures["max"].where(aggregation == "MAX", figures["last"]),
    )
    uniques = values.assign(period=day_series(values["usage_date"]).dt.strftime("%Y-%m"))
    distinct = uniques.groupby(keys)["value_text"].nunique().rename("quantity").reset_index()
    return pd.concat([figures[[*keys, "quantity"]], distinct], ignore_index=True)


def backtest(
    usage_daily: pd.DataFrame,
    values: pd.DataFrame,
    aggregations: Mapping[str, str],
    periods: list[str],
    cut_day: int = 15,
) -> pd.DataFrame:
    """Per tenant, metric and period: the month's actual figure, the forecast made on day
    ``cut_day`` of it, the absolute percentage error and the kind (flow, gauge, unique).
    ``values`` holds the UNIQUE_COUNT metrics' distinct values per day (metric_daily_values)."""
    usage = usage_daily.assign(usage_date=day_series(usage_daily["usage_date"]))
    values = values.assign(usage_date=day_series(values["usage_date"]))
    actual = month_figures(usage, aggregations, values).rename(columns={"quantity": "actual"})
    no_limits = empty_frame(EFFECTIVE_ENTITLEMENTS)
    parts = []
    for period in periods:
        year, month = (int(p) for p in period.split("-"))
        cut = date(year, month, cut_day)
        seen = usage[usage["usage_date"] <= pd.Timestamp(cut)]
        to_date = month_figures(
            seen, aggregations, values[values["usage_date"] <= pd.Timestamp(cut)]
        )
        forecast = usage_forecasts(seen, to_date, aggregations, no_limits, cut)
        parts.append(forecast[forecast["aggregation"].isin(list(KIND_OF))])
    forecasts = pd.concat(parts, ignore_index=True)
    scored = forecasts.merge(actual, on=["tenant_id", "metric", "period"])
    scored = scored[scored["actual"] > 0].copy()
    scored["ape"] = (scored["projected_total"] - scored["actual"]).abs() / scored["actual"]
    scored["kind"] = scored["aggregation"].map(KIND_OF)
    return scored[
        [
            "tenant_id",
            "metric",
            "period",
            "kind",
            "method",
            "month_to_date",
            "projected_total",
            "actual",
            "ape",
        ]
    ].reset_index(drop=True)


def summary(scored: pd.DataFrame) -> pd.DataFrame:
    """Median and 90th-percentile absolute percentage error per kind and metric, in percent."""
    rows = []
    for (kind, metric), group in [
        *((("all " + k, "all"), g) for k, g in scored.groupby("kind")),
        *scored.groupby(["kind", "metric"]),
    ]:
        rows.append(
            {
                "kind": kind,
                "metric": metric,
                "series-months": len(group),
                "median APE %": round(100 * float(group["ape"].median()), 2),
                "p90 APE %": round(100 * float(group["ape"].quantile(0.9)), 2),
            }
        )
    return pd.DataFrame(rows)
