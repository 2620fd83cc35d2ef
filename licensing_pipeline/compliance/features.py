"""Feature compliance: usage events of features the tenant's contract does not include."""

from __future__ import annotations

import pandas as pd

from licensing_pipeline.compliance.common import check_results, fmt_number, monthly_events
from licensing_pipeline.compliance.entitlements import entitled_features, entitled_only
from licensing_pipeline.compliance.overrides import describe, source_change

CHECKS = ("feature_not_entitled",)


def _since(applied: object, feature: str, changes: pd.DataFrame | None) -> str:
    """' since change #3 (feature revoke approved by ...)' when a revoke withdrew it (a plan
    or add-on change need not be why a feature is missing: those are not named)."""
    source = source_change(applied, changes, "feature_revoke", "feature", feature)
    if source is None or source["kind"] != "feature_revoke":
        return ""
    return f" since {describe(source)}"


def feature_compliance(
    entitlements: pd.DataFrame,
    feature_usage_daily: pd.DataFrame,
    changes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """feature_not_entitled per (tenant, month, feature) used without being granted.

    Only entitled periods count: usage with no active contract is reported once, as
    inactive_contract_usage, rather than once per feature. ``changes`` (the approved changes)
    name the change that withdrew a feature in the details.
    """
    entitled = entitled_only(entitlements)
    usage = monthly_events(feature_usage_daily, "feature").merge(
        entitled[["tenant_id", "period", "plan", "enforcement", "applied_changes"]],
        on=["tenant_id", "period"],
    )
    granted = entitled_features(entitlements).assign(_granted=True)
    usage = usage.merge(granted, on=["tenant_id", "period", "feature"], how="left")
    found = usage[usage["_granted"].isna() & (usage["events"] > 0)].copy()
    if found.empty:
        return check_results(found)
    found["check"] = "feature_not_entitled"
    found["subject"] = found["feature"]
    found["observed"] = found["events"]
    found["allowed"] = 0.0
    found["details"] = [
        f"{feature} was used in {fmt_number(events)} "
        f"event{'s' if events != 1 else ''} in {period}, "
        f"but it is not included in your plan ({plan}) or add-ons"
        f"{_since(applied, feature, changes)}."
        for feature, events, period, plan, applied in found[
            ["feature", "events", "period", "plan", "applied_changes"]
        ].itertuples(index=False)
    ]
    return check_results(found)
