"""Quota consumption: monthly usage against the entitled limit of each metered metric."""

from __future__ import annotations

import pandas as pd

from licensing_pipeline.compliance.common import check_results, flagged, fmt_number, monthly_sum
from licensing_pipeline.compliance.entitlements import (
    enforcement_for,
    entitled_quotas,
    normalise_entitlements,
)
from licensing_pipeline.compliance.forecast import pace_note
from licensing_pipeline.compliance.overrides import describe, source_change

CHECKS = ("quota_exceeded", "quota_near_limit")
_INCLUDED = "included in your plan and add-ons"


def _percent(quantity: float, limit: float) -> int:
    """Whole percent, rounded down (so 99.9 % never reads as 100 %), immune to float fuzz."""
    return int(quantity / limit * 100 + 1e-9)


def _allowance(limit: float, metric: str, applied: object, changes: pd.DataFrame | None) -> str:
    """'the 100,000 included in your plan and add-ons', or the change that set the limit."""
    source = source_change(applied, changes, "quota_override", "metric", metric)
    if source is None:
        return f"the {fmt_number(limit)} {_INCLUDED}"
    return f"the limit of {fmt_number(limit)} from {describe(source)}"


def _pace_notes(found: pd.DataFrame, forecasts: pd.DataFrame | None) -> list[str]:
    """For each found row, " " and its forecast's pace note, or "" without a forecast (a
    closed month, a metric not used lately)."""
    if forecasts is None or forecasts.empty:
        return [""] * len(found)
    columns = ["tenant_id", "period", "metric", "projected_total", "projected_exhaustion_day"]
    keyed = forecasts[columns].astype({"tenant_id": str, "period": str, "metric": str})
    joined = found[["tenant_id", "period", "metric", "limit"]].astype(
        {"tenant_id": str, "period": str, "metric": str}
    )
    joined = joined.merge(keyed.drop_duplicates(columns[:3]), on=columns[:3], how="left")
    return [
        "" if pd.isna(total) else " " + pace_note(total, limit, day)
        for total, limit, day in zip(
            joined["projected_total"],
            joined["limit"],
            joined["projected_exhaustion_day"],
            strict=True,
        )
    ]


def quota_consumption(
    entitlements: pd.DataFrame,
    usage_monthly: pd.DataFrame,
    near_limit_ratio: float = 0.8,
    changes: pd.DataFrame | None = None,
    forecasts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """quota_exceeded above the limit; quota_near_limit from ``near_limit_ratio`` up to the limit.

    Only entitled periods are checked (the rest is inactive_contract_usage), and only
    metrics with a quota: no quota means unlimited. The current month is checked on the
    usage so far, so a customer hears about a breach before the invoice does. ``changes``
    (the approved changes) name the change that set a limit in the details; quota_near_limit
    details add when the limit is reached at the current pace (from ``forecasts``,
    usage_forecasts rows), an early warning that changes no finding.
    """
    limits = entitled_quotas(entitlements)
    usage = monthly_sum(usage_monthly, "quantity").merge(
        limits, on=["tenant_id", "period", "metric"]
    )
    quantity, limit = usage["quantity"], usage["limit"]
    # A relative epsilon keeps "exactly 80 %" inside the band despite binary fractions.
    slack = 1e-9 * limit.abs().clip(lower=1.0)
    exceeded = quantity > limit + slack
    near = ~exceeded & (limit > 0) & (quantity >= limit * near_limit_ratio - slack)
    found = flagged(usage, {"quota_exceeded": exceeded, "quota_near_limit": near})
    if found.empty:
        return check_results(found)

    found["subject"] = found["metric"]
    found["observed"] = found["quantity"]
    found["allowed"] = found["limit"]
    found["enforcement"] = enforcement_for(entitlements, found)
    applied = normalise_entitlements(entitlements).drop_duplicates(["tenant_id", "period"])
    found = found.merge(
        applied[["tenant_id", "period", "applied_changes"]], on=["tenant_id", "period"], how="left"
    )
    paces = _pace_notes(found, forecasts)
    found["details"] = [
        f"{metric} usage of {fmt_number(q)} in {period} is above "
        f"{_allowance(lim, metric, ids, changes)}."
        if check == "quota_exceeded"
        else f"{metric} usage of {fmt_number(q)} in {period} is {_percent(q, lim)}% of "
        f"{_allowance(lim, metric, ids, changes)}.{pace}"
        for check, metric, period, q, lim, ids, pace in zip(
            found["check"],
            found["metric"],
            found["period"],
            found["quantity"],
            found["limit"],
            found["applied_changes"],
            paces,
            strict=True,
        )
    ]
    return check_results(found)
