"""Billing reconciliation: measured monthly usage against what was invoiced."""

from __future__ import annotations

from datetime import date

import pandas as pd

from licensing_pipeline.compliance.common import (
    as_day,
    check_results,
    flagged,
    fmt_number,
    monthly_sum,
)
from licensing_pipeline.compliance.entitlements import entitled_only, last_day

CHECKS = ("unbilled_usage", "overbilled_usage")
_KEY = ["tenant_id", "period", "metric"]


def _beyond(value: pd.Series, reference: pd.Series, tolerance: float) -> pd.Series:
    """value > reference × (1 + tolerance), with float fuzz at the boundary counted as within."""
    bound = reference * (1.0 + tolerance)
    return value > bound + 1e-9 * bound.abs().clip(lower=1.0)


def billing_reconciliation(
    entitlements: pd.DataFrame,
    usage_monthly: pd.DataFrame,
    billing_records: pd.DataFrame,
    as_of: date,
    tolerance: float = 0.01,
) -> pd.DataFrame:
    """unbilled_usage / overbilled_usage per (tenant, closed month, billed metric).

    Covers the metrics that appear in the billing file, closed months (last day on or
    before as-of) from the file's earliest month on, and tenants entitled in that month:
    a billing file that starts in March says nothing about February. A missing record
    where there was usage is billed 0, hence unbilled.
    """
    billed = monthly_sum(billing_records, "billed_quantity").rename(
        columns={"billed_quantity": "billed"}
    )
    if billed.empty:
        return check_results(billed)
    as_of_day = as_day(as_of).date()
    entitled = entitled_only(entitlements)
    periods = pd.Series(entitled["period"].unique(), dtype="string")
    closed = periods[[p >= billed["period"].min() and last_day(p) <= as_of_day for p in periods]]
    scope = entitled.loc[entitled["period"].isin(closed), ["tenant_id", "period", "enforcement"]]
    metrics = pd.DataFrame({"metric": sorted(billed["metric"].unique())}, dtype="string")
    grid = scope.merge(metrics, how="cross")
    grid = grid.merge(monthly_sum(usage_monthly, "quantity"), on=_KEY, how="left").merge(
        billed, on=_KEY, how="left"
    )
    grid["measured"] = grid["quantity"].fillna(0.0)
    grid["billed"] = grid["billed"].fillna(0.0)
    found = flagged(
        grid,
        {
            "unbilled_usage": _beyond(grid["measured"], grid["billed"], tolerance),
            "overbilled_usage": _beyond(grid["billed"], grid["measured"], tolerance),
        },
    )
    if found.empty:
        return check_results(found)
    found["subject"] = found["metric"]
    found["observed"] = found["measured"]
    found["allowed"] = found["billed"]
    found["details"] = [
        (
            f"{metric} usage of {fmt_number(measured)} in {period} has not been billed."
            if billed_qty == 0
            else f"{metric} usage of {fmt_number(measured)} in {period} is above the "
            f"{fmt_number(billed_qty)} billed for it."
        )
        if check == "unbilled_usage"
        else f"The {fmt_number(billed_qty)} {metric} billed for {period} is above the "
        f"{fmt_number(measured)} measured."
        for check, metric, period, measured, billed_qty in found[
            ["check", "metric", "period", "measured", "billed"]
        ].itertuples(index=False)
    ]
    return check_results(found)
