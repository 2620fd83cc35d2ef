"""Small helpers shared by the check families: input normalisation and customer wording.

Frames come from the warehouse (DuckDB: object columns, ``datetime64[us]`` dates) or from
tests (plain Python values), so every family normalises its inputs the same way first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime

import numpy as np
import pandas as pd

from licensing_pipeline.contract.schemas import CHECK_RESULTS, conform, empty_frame


def as_day(value: date | datetime | str | pd.Timestamp) -> pd.Timestamp:
    """A calendar day as a naive midnight timestamp (UTC)."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.normalize()


# What a nanosecond timestamp holds. The warehouse hands over microseconds (years 1 to
# 9999), so a date beyond these is clipped to them rather than failing the run; every
# comparison with a real date comes out as before (a contract from 1600 is in force, one
# ending in 2999 is open).
_EARLIEST = pd.Timestamp.min.ceil("D")
_LATEST = pd.Timestamp.max.floor("D")


def _nanoseconds(stamps: pd.Series) -> pd.Series:
    return stamps.clip(lower=_EARLIEST, upper=_LATEST).astype("datetime64[ns]")


def day_series(values: pd.Series) -> pd.Series:
    """Dates, datetimes or ISO text to naive midnight timestamps (NaT stays NaT)."""
    stamps = pd.to_datetime(values, utc=True, errors="coerce")
    return _nanoseconds(stamps.dt.tz_localize(None).dt.normalize())


def time_series(values: pd.Series) -> pd.Series:
    """Timestamps to naive UTC, keeping the time of day."""
    stamps = pd.to_datetime(values, utc=True, errors="coerce")
    return _nanoseconds(stamps.dt.tz_localize(None))


def text_series(values: pd.Series) -> pd.Series:
    """Trimmed text; empty strings become missing."""
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def number_series(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")


def require(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """The frame with every named column (missing ones as nulls), so an empty table still works."""
    out = frame.copy()
    for column in columns:
        if column not in out.columns:
            out[column] = pd.NA
    return out


def typed_frame(frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """The named columns as "text" (object), "day" (``date``) or numbers; rows without a text
    or day value are dropped. How the DuckDB-based families hand frames to DuckDB."""
    frame = require(frame, list(columns))
    out = pd.DataFrame(
        {
            name: text_series(frame[name])
            if kind == "text"
            else day_series(frame[name]).dt.date
            if kind == "day"
            else number_series(frame[name])
            for name, kind in columns.items()
        }
    )
    texts = [n for n, k in columns.items() if k == "text"]
    days = [n for n, k in columns.items() if k == "day"]
    return out.dropna(subset=texts + days).astype({n: object for n in texts})


def daily_usage(usage_daily: pd.DataFrame) -> pd.DataFrame:
    """usage_daily (tenant_id, metric, usage_date, quantity, events) typed for DuckDB; a
    missing quantity is 0 and, without an event count, a day with usage is one event."""
    usage = typed_frame(
        usage_daily,
        {
            "tenant_id": "text",
            "metric": "text",
            "usage_date": "day",
            "quantity": "number",
            "events": "number",
        },
    )
    usage["events"] = usage["events"].fillna((usage["quantity"].fillna(0) != 0).astype(float))
    usage["quantity"] = usage["quantity"].fillna(0.0)
    return usage


def monthly_sum(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """tenant_id, period, metric and ``column`` summed over repeated keys (usage_monthly's
    quantity, billing_records' billed_quantity); a missing figure counts as 0."""
    frame = require(frame, ["tenant_id", "metric", "period", column])
    frame = pd.DataFrame(
        {
            "tenant_id": text_series(frame["tenant_id"]),
            "metric": text_series(frame["metric"]),
            "period": text_series(frame["period"]),
            column: number_series(frame[column]).fillna(0.0),
        }
    ).dropna(subset=["tenant_id", "metric", "period"])
    return frame.groupby(["tenant_id", "period", "metric"])[column].sum().reset_index()


def monthly_events(
    usage_daily: pd.DataFrame, *dimensions: str, through: pd.Timestamp | None = None
) -> pd.DataFrame:
    """A per-day events mart (tenant_activity_daily; feature_ or region_usage_daily by their
    dimension) summed per month: tenant_id, the dimensions, period, events. Days after
    ``through`` are left out."""
    keys = ["tenant_id", *dimensions]
    frame = require(usage_daily, [*keys, "usage_date", "events"])
    days = day_series(frame["usage_date"])
    frame = pd.DataFrame(
        {
            **{key: text_series(frame[key]) for key in keys},
            "period": days.dt.strftime("%Y-%m").astype("string"),
            "events": number_series(frame["events"]).fillna(0.0),
        }
    )
    if through is not None:
        frame = frame[(days <= through).to_numpy()]
    frame = frame.dropna(subset=[*keys, "period"])
    return frame.groupby([*keys, "period"])["events"].sum().reset_index()


def fmt_number(value: float) -> str:
    """Customer-facing number: thousands separators, decimals only when there are some.
    Never 'inf' or 'nan': a figure that is not a finite number is 'unknown'."""
    if pd.isna(value) or not math.isfinite(float(value)):
        return "unknown"
    number = float(value)
    if number.is_integer():
        return f"{int(number):,}"
    return f"{number:,.2f}".rstrip("0").rstrip(".")


def join_names(names: Iterable[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [str(n) for n in names]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def check_results(frame: pd.DataFrame) -> pd.DataFrame:
    """The CHECK_RESULTS layout, sorted so that runs are reproducible.

    A result whose observed or allowed figure is not a finite number is never emitted:
    inputs are bounded (``MAX_QUANTITY``) so that no sum overflows, and this is the last
    guard that no infinity or NaN reaches a finding, a statement or a message."""
    if frame.empty:
        return empty_frame(CHECK_RESULTS)
    figures = frame[["observed", "allowed"]].apply(number_series)
    frame = frame[np.isfinite(figures.to_numpy()).all(axis=1)]
    ordered = frame.sort_values(["tenant_id", "check", "subject", "period"], kind="stable")
    return conform(ordered, CHECK_RESULTS)


def flagged(frame: pd.DataFrame, checks: Mapping[str, pd.Series]) -> pd.DataFrame:
    """The rows that a check's mask marks, with that check's name in ``check`` (the later
    check wins where two mark a row)."""
    check = pd.Series(pd.NA, index=frame.index, dtype="string")
    for name, mask in checks.items():
        check[mask] = name
    out = frame.assign(check=check)
    return out[out["check"].notna()].copy()


def count_by_check(results: pd.DataFrame, checks: Iterable[str]) -> Mapping[str, int]:
    counts = results["check"].value_counts() if len(results) else pd.Series(dtype="int64")
    return {check: int(counts.get(check, 0)) for check in checks}


def latest_deployments(deployment_configs: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The latest observation per (tenant, deployment) made by the end of the as-of day.

    Columns: tenant_id, deployment, region, enabled_features, quota_limits, observed_at,
    enforcement_feed_version (optional in the input: absent, nothing is reported).
    """
    frame = require(
        deployment_configs,
        ["tenant_id", "deployment", "region", "enabled_features", "quota_limits", "observed_at"],
    )
    feed_version = (
        frame["enforcement_feed_version"]
        if "enforcement_feed_version" in frame
        else pd.Series(pd.NA, index=frame.index)
    )
    out = pd.DataFrame(
        {
            "tenant_id": text_series(frame["tenant_id"]),
            "deployment": text_series(frame["deployment"]).fillna(""),
            "region": text_series(frame["region"]),
            "enabled_features": frame["enabled_features"].astype(object),
            "quota_limits": frame["quota_limits"].astype(object),
            "observed_at": time_series(frame["observed_at"]),
            "enforcement_feed_version": text_series(feed_version),
        }
    )
    cutoff = as_day(as_of) + pd.Timedelta(days=1)
    out = out[out["tenant_id"].notna() & (out["observed_at"] < cutoff)]
    out = out.sort_values(["tenant_id", "deployment", "observed_at"], kind="stable")
    return out.drop_duplicates(["tenant_id", "deployment"], keep="last").reset_index(drop=True)
