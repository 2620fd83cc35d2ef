"""Data residency: usage processed, or deployments running, outside the allowed jurisdictions."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from licensing_pipeline.compliance.common import (
    as_day,
    check_results,
    day_series,
    fmt_number,
    join_names,
    latest_deployments,
    monthly_events,
    require,
    text_series,
)
from licensing_pipeline.compliance.entitlements import enforcement_for, period_of
from licensing_pipeline.compliance.overrides import covered_by_allowances
from licensing_pipeline.contract.catalog import Catalog

CHECKS = ("residency_violation",)
ANY = "ANY"


def allowed_jurisdictions(residency_configs: pd.DataFrame) -> pd.DataFrame:
    """Restricted tenants only, one row per allowed jurisdiction: tenant_id, jurisdiction.

    A tenant with no row, a blank row or ``ANY`` in any of its rows is unrestricted.
    """
    frame = require(residency_configs, ["tenant_id", "allowed_jurisdictions"])
    frame = pd.DataFrame(
        {
            "tenant_id": text_series(frame["tenant_id"]),
            "jurisdiction": text_series(frame["allowed_jurisdictions"]).str.upper().str.split(";"),
        }
    ).dropna()
    long = frame.explode("jurisdiction")
    long["jurisdiction"] = text_series(long["jurisdiction"])
    long = long.dropna()
    unrestricted = long.loc[long["jurisdiction"] == ANY, "tenant_id"]
    long = long[~long["tenant_id"].isin(unrestricted)]
    return long.drop_duplicates().reset_index(drop=True).astype("string")


def _violations(located: pd.DataFrame, catalog: Catalog, allowed: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``located`` (tenant_id, region, ...) of restricted tenants in a disallowed region."""
    located = located[located["tenant_id"].isin(allowed["tenant_id"])].copy()
    regions = {name: str(j).strip().upper() for name, j in catalog.regions.items()}
    located["jurisdiction"] = located["region"].map(regions).astype("string")
    matched = located.merge(
        allowed.assign(_allowed=True), on=["tenant_id", "jurisdiction"], how="left"
    )
    return matched[matched["_allowed"].isna()].drop(columns="_allowed")


def _explain(
    region: str,
    jurisdiction: Any,
    events: float,
    period: str,
    deployments: Any,
    allowed: str,
) -> str:
    where = (
        f"{region} ({jurisdiction})"
        if not pd.isna(jurisdiction)
        else f"{region} (a region with no known jurisdiction)"
    )
    names = list(deployments) if isinstance(deployments, list) else []
    running = (
        f"deployment{'s' if len(names) > 1 else ''} {join_names(names)} "
        f"run{'' if len(names) > 1 else 's'}"
    )
    rule = f"but your data may only be processed in {allowed}"
    if events > 0:
        used = f"{fmt_number(events)} usage event{'s' if events != 1 else ''} in {period}"
        also = f", where {running} too" if names else ""
        return f"{used} {'was' if events == 1 else 'were'} processed in {where}{also}, {rule}."
    return f"D{running[1:]} in {where}, {rule}."


def residency_compliance(
    catalog: Catalog,
    residency_configs: pd.DataFrame,
    region_usage_daily: pd.DataFrame,
    deployment_configs: pd.DataFrame,
    as_of: date,
    entitlements: pd.DataFrame | None = None,
    changes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """residency_violation per (tenant, region, month).

    Checked whether or not a contract is in force: residency is a legal duty, not a
    product entitlement. Usage gives one result per month; the latest deployment
    observations are reported for as-of's month, merged with that month's usage so one
    region is one finding. observed = events (or, with no usage, the deployments there).
    ``entitlements`` only supplies the contract's enforcement. An approved ``region_allow``
    in ``changes`` allows its region for the tenant on the days it is in force: usage on
    those days, and deployments there on as-of, are not violations.
    """
    allowed = allowed_jurisdictions(residency_configs)
    if allowed.empty:
        return check_results(pd.DataFrame())
    as_of_day = as_day(as_of)

    daily = require(region_usage_daily, ["tenant_id", "region", "usage_date", "events"])
    daily = daily[~covered_by_allowances(daily, day_series(daily["usage_date"]), changes)]
    usage = monthly_events(daily, "region", through=as_of_day)
    usage = _violations(usage[usage["events"] > 0], catalog, allowed)

    running = latest_deployments(deployment_configs, as_of).dropna(subset=["region"])
    running = running[
        ~covered_by_allowances(running, pd.Series(as_of_day, index=running.index), changes)
    ]
    running = _violations(running, catalog, allowed)
    running = (
        running.sort_values("deployment")
        .groupby(["tenant_id", "region", "jurisdiction"], dropna=False)["deployment"]
        .agg(list)
        .reset_index()
        .assign(period=period_of(as_of_day))
    )

    found = usage.merge(running, on=["tenant_id", "region", "jurisdiction", "period"], how="outer")
    if found.empty:
        return check_results(found)
    found["events"] = found["events"].fillna(0.0)
    found["check"] = "residency_violation"
    found["subject"] = found["region"]
    found["observed"] = [
        events if events > 0 else float(len(deps))
        for events, deps in found[["events", "deployment"]].itertuples(index=False)
    ]
    found["allowed"] = 0.0
    found["enforcement"] = (
        enforcement_for(entitlements, found) if entitlements is not None else pd.NA
    )
    allowed_text = allowed.groupby("tenant_id")["jurisdiction"].agg(
        lambda js: " or ".join(sorted(js))
    )
    found["details"] = [
        _explain(region, jurisdiction, events, period, deps, allowed_text[tenant])
        for tenant, region, jurisdiction, events, period, deps in found[
            ["tenant_id", "region", "jurisdiction", "events", "period", "deployment"]
        ].itertuples(index=False)
    ]
    return check_results(found)
