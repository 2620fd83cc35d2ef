"""Entitlement resolution: what each tenant may use in each month.

Every check family compares usage or configuration against one row of
``effective_entitlements`` per (tenant, period), so the contract rules live here only:
the contract in force on the period's last day (on as-of for the current period) decides;
features are plan ∪ add-ons; quotas are plan + add-ons, then the contract's overrides.
"""

from __future__ import annotations

import calendar
import json
import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from licensing_pipeline.compliance.common import as_day, day_series, require, text_series
from licensing_pipeline.contract.catalog import Catalog
from licensing_pipeline.contract.schemas import EFFECTIVE_ENTITLEMENTS, conform, empty_frame

# --- small helpers used by every family -------------------------------------------------


def period_of(day: date | pd.Timestamp) -> str:
    """The calendar month (UTC) a day belongs to, as 'YYYY-MM'."""
    return f"{day.year:04d}-{day.month:02d}"


def last_day(period: str) -> date:
    """The last calendar day of a 'YYYY-MM' period."""
    year, month = (int(part) for part in str(period).split("-")[:2])
    return date(year, month, calendar.monthrange(year, month)[1])


def _json(text: Any) -> Any:
    if text is None or (not isinstance(text, str | bytes) and pd.isna(text)):
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def parse_features(text: Any) -> tuple[str, ...]:
    """A JSON list of feature names (``features``, ``enabled_features``); bad text is empty."""
    value = _json(text)
    if not isinstance(value, list):
        return ()
    return tuple(sorted({str(v).strip() for v in value if v is not None and str(v).strip()}))


def parse_quotas(text: Any) -> dict[str, float]:
    """A JSON object {metric: limit} (``quotas``, ``quota_limits``); non-numbers are dropped."""
    value = _json(text)
    if not isinstance(value, dict):
        return {}
    out: dict[str, float] = {}
    for metric, limit in value.items():
        if isinstance(limit, bool) or not isinstance(limit, int | float) or math.isnan(limit):
            continue
        out[str(metric)] = float(limit)
    return out


def dump_quotas(quotas: dict[str, float]) -> str:
    """JSON text with whole numbers written as integers, so it reads like the contract."""
    return json.dumps(
        {k: int(v) if float(v).is_integer() else v for k, v in quotas.items()}, sort_keys=True
    )


def entitled_quotas(entitlements: pd.DataFrame) -> pd.DataFrame:
    """Long form of the entitled periods' quotas: tenant_id, period, metric, limit."""
    entitled = entitled_only(entitlements)
    rows = [
        (tenant, period, metric, limit)
        for tenant, period, text in entitled[["tenant_id", "period", "quotas"]].itertuples(
            index=False
        )
        for metric, limit in parse_quotas(text).items()
    ]
    frame = pd.DataFrame(rows, columns=["tenant_id", "period", "metric", "limit"])
    return frame.astype({"tenant_id": "string", "period": "string", "metric": "string"}).astype(
        {"limit": "float64"}
    )


def entitled_features(entitlements: pd.DataFrame) -> pd.DataFrame:
    """Long form of the entitled periods' features: tenant_id, period, feature."""
    entitled = entitled_only(entitlements)
    rows = [
        (tenant, period, feature)
        for tenant, period, text in entitled[["tenant_id", "period", "features"]].itertuples(
            index=False
        )
        for feature in parse_features(text)
    ]
    frame = pd.DataFrame(rows, columns=["tenant_id", "period", "feature"])
    return frame.astype("string")


def normalise_entitlements(entitlements: pd.DataFrame) -> pd.DataFrame:
    """The table as read back from the warehouse (object dtypes) in the schema's dtypes."""
    return conform(entitlements, EFFECTIVE_ENTITLEMENTS)


def enforcement_for(entitlements: pd.DataFrame, keys: pd.DataFrame) -> pd.Series:
    """The contract's enforcement for each (tenant_id, period) row of ``keys``; <NA> if none."""
    frame = normalise_entitlements(entitlements).drop_duplicates(["tenant_id", "period"])
    lookup = frame.set_index(["tenant_id", "period"])["enforcement"]
    index = pd.MultiIndex.from_arrays(
        [keys["tenant_id"].astype("string"), keys["period"].astype("string")]
    )
    return pd.Series(lookup.reindex(index).to_numpy(), index=keys.index, dtype="string")


def entitled_only(entitlements: pd.DataFrame) -> pd.DataFrame:
    """Periods with an active contract in force: the only ones quota/feature/billing checks see."""
    frame = normalise_entitlements(entitlements)
    return frame[frame["entitled"].fillna(False).astype(bool)].reset_index(drop=True)


# --- resolution ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What a contract grants, as the JSON texts of effective_entitlements."""

    features: str
    quotas: str


def split_addons(text: Any) -> list[str]:
    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return []
    return [name.strip() for name in str(text).split(";") if name.strip()]


def grant(catalog: Catalog, plan: Any, addons: Any, overrides: Any) -> Grant:
    """What one contract grants.

    An add-on's quota adds to the plan's limit for that metric (a metric the plan does not
    limit starts from 0, so an add-on can introduce a metered allowance). Overrides then
    replace the limit per metric; JSON ``null`` makes it unlimited. Unknown plan or add-on
    names grant nothing (the sources validate them against the catalog).
    """
    package = catalog.plans.get(str(plan)) if isinstance(plan, str) else None
    features = set(package.features) if package else set()
    quotas = dict(package.quotas) if package else {}
    for name in split_addons(addons):
        addon = catalog.addons.get(name)
        if addon is None:
            continue
        features.update(addon.features)
        for metric, extra in addon.quotas.items():
            quotas[metric] = quotas.get(metric, 0.0) + extra
    raw = _json(overrides)
    if isinstance(raw, dict):
        for metric, limit in raw.items():
            if limit is None:
                quotas.pop(str(metric), None)
            elif not isinstance(limit, bool) and isinstance(limit, int | float):
                quotas[str(metric)] = float(limit)
    return Grant(features=json.dumps(sorted(features)), quotas=dump_quotas(quotas))


def _month_index(days: pd.Series) -> pd.Series:
    return days.dt.year * 12 + days.dt.month - 1


def _normalise_contracts(contracts: pd.DataFrame) -> pd.DataFrame:
    frame = contracts.copy()
    for column in ("contract_id", "tenant_id", "plan", "addons", "quota_overrides"):
        frame[column] = text_series(frame[column]) if column in frame else pd.NA
    for column in ("status", "enforcement"):
        frame[column] = text_series(frame[column]).str.lower() if column in frame else pd.NA
    for column in ("start_date", "end_date"):
        frame[column] = (
            day_series(frame[column]) if column in frame else pd.Series(pd.NaT, index=frame.index)
        )
    return frame[frame["tenant_id"].notna() & frame["start_date"].notna()].reset_index(drop=True)


def resolve_entitlements(
    catalog: Catalog,
    tenants: pd.DataFrame,
    contracts: pd.DataFrame,
    activity: pd.DataFrame,
    as_of: date,
    changes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One EFFECTIVE_ENTITLEMENTS row per tenant and month, up to as-of's month.

    Tenants are those in ``tenants`` ∪ ``contracts`` ∪ usage (``activity`` is
    tenant_activity_daily). Months run from the tenant's first usage or contract start,
    whichever is earlier (as-of's month at the latest), to as-of's month. ``changes``
    (approved change requests) are layered on the contract's terms (``overrides.py``).
    """
    # Imported here: the override layer builds on this module's grant.
    from licensing_pipeline.compliance.overrides import apply_changes

    as_of_day = as_day(as_of)
    as_of_index = as_of_day.year * 12 + as_of_day.month - 1

    contracts = _normalise_contracts(contracts)
    tenants = require(tenants, ["tenant_id", "segment"])
    tenants["tenant_id"] = text_series(tenants["tenant_id"])
    tenants["segment"] = text_series(tenants["segment"])
    tenants = tenants[tenants["tenant_id"].notna()].drop_duplicates("tenant_id")
    activity = require(activity, ["tenant_id", "usage_date"])
    activity["tenant_id"] = text_series(activity["tenant_id"])
    activity["usage_date"] = day_series(activity["usage_date"])
    activity = activity[activity["tenant_id"].notna() & (activity["usage_date"] <= as_of_day)]

    starts = pd.concat(
        [
            activity[["tenant_id", "usage_date"]].rename(columns={"usage_date": "day"}),
            contracts[["tenant_id", "start_date"]].rename(columns={"start_date": "day"}),
        ],
        ignore_index=True,
    )
    first = starts.groupby("tenant_id")["day"].min()
    ids = pd.Index(tenants["tenant_id"]).union(first.index)
    if len(ids) == 0:
        return empty_frame(EFFECTIVE_ENTITLEMENTS)

    # The tenant × month grid, built with repeat/cumcount rather than a loop per tenant.
    first_index = (
        _month_index(first.reindex(ids)).fillna(as_of_index).clip(upper=as_of_index).astype(int)
    )
    months = as_of_index - first_index.to_numpy() + 1
    grid = pd.DataFrame({"tenant_id": np.repeat(ids.to_numpy(), months)})
    grid["month"] = np.repeat(first_index.to_numpy(), months) + grid.groupby("tenant_id").cumcount()
    years, month0 = np.divmod(grid["month"].to_numpy(), 12)
    month_start = pd.to_datetime({"year": years, "month": month0 + 1, "day": 1})
    grid["period"] = month_start.dt.strftime("%Y-%m")
    month_end = month_start + pd.offsets.MonthEnd(0)
    grid["resolved_on"] = month_end.where(grid["month"] != as_of_index, as_of_day)
    grid = grid.drop(columns="month")

    grants = [
        grant(catalog, plan, addons, overrides)
        for plan, addons, overrides in contracts[["plan", "addons", "quota_overrides"]].itertuples(
            index=False
        )
    ]
    contracts["features"] = pd.Series(
        [g.features for g in grants], index=contracts.index, dtype=object
    )
    contracts["quotas"] = pd.Series([g.quotas for g in grants], index=contracts.index, dtype=object)

    candidates = grid.merge(contracts, on="tenant_id", how="inner")
    in_force = (candidates["start_date"] <= candidates["resolved_on"]) & (
        candidates["end_date"].isna() | (candidates["end_date"] >= candidates["resolved_on"])
    )
    candidates = candidates[in_force].assign(
        _inactive=lambda f: f["status"] != "active", _in_force=True
    )
    chosen = candidates.sort_values(
        ["tenant_id", "period", "_inactive", "start_date", "contract_id"],
        ascending=[True, True, True, False, True],
        kind="stable",
    ).drop_duplicates(["tenant_id", "period"], keep="first")
    contract_columns = ["contract_id", "plan", "addons", "quota_overrides", "status", "enforcement"]
    out = grid.merge(
        chosen[["tenant_id", "period", *contract_columns, "features", "quotas", "_in_force"]],
        on=["tenant_id", "period"],
        how="left",
    )

    in_force_rows = out["_in_force"].notna().to_numpy()
    has_contracts = out["tenant_id"].isin(contracts["tenant_id"])
    out["contract_status"] = out["status"].where(
        in_force_rows, np.where(has_contracts, "expired", "none")
    )
    out["entitled"] = out["contract_status"] == "active"

    out.loc[~in_force_rows, "features"] = "[]"
    out.loc[~in_force_rows, "quotas"] = "{}"
    out["addons"] = out["addons"].map(lambda a: ";".join(split_addons(a)), na_action="ignore")
    out["segment"] = out["tenant_id"].map(tenants.set_index("tenant_id")["segment"])
    out = apply_changes(catalog, out, changes)
    out = out.sort_values(["tenant_id", "period"], kind="stable")
    return conform(out, EFFECTIVE_ENTITLEMENTS)


def _terms_on(contracts: pd.DataFrame, days: pd.DataFrame) -> pd.DataFrame:
    """The terms in force on each (tenant_id, day) of ``days``, chosen as resolution chooses."""
    candidates = days.merge(contracts, on="tenant_id", how="inner")
    in_force = (candidates["start_date"] <= candidates["day"]) & (
        candidates["end_date"].isna() | (candidates["end_date"] >= candidates["day"])
    )
    chosen = (
        candidates[in_force]
        .assign(_inactive=lambda f: f["status"] != "active")
        .sort_values(
            ["tenant_id", "day", "_inactive", "start_date", "contract_id"],
            ascending=[True, True, True, False, True],
            kind="stable",
        )
        .drop_duplicates(["tenant_id", "day"], keep="first")
    )
    terms = ["status", "plan", "addons", "quota_overrides"]
    out = days.merge(chosen[["tenant_id", "day", *terms]], on=["tenant_id", "day"], how="left")
    out["addons"] = out["addons"].map(lambda a: ";".join(sorted(split_addons(a))))
    out["quota_overrides"] = out["quota_overrides"].map(
        lambda text: json.dumps(_json(text) or {}, sort_keys=True)
    )
    return out[terms].astype("string").fillna("")


def entitlement_changes(contracts: pd.DataFrame) -> pd.DataFrame:
    """The days a tenant's entitlement changed: tenant_id, day, before, after.

    A contract starting or ending is a change only when the terms in force (status, plan,
    add-ons, overrides) differ from the day before: a renewal on the same terms is none.
    """
    frame = _normalise_contracts(contracts)
    ends = frame.dropna(subset=["end_date"])
    days = (
        pd.concat(
            [
                frame[["tenant_id", "start_date"]].rename(columns={"start_date": "day"}),
                ends[["tenant_id"]].assign(day=ends["end_date"] + pd.Timedelta(days=1)),
            ],
            ignore_index=True,
        )
        .drop_duplicates()
        .sort_values(["tenant_id", "day"], ignore_index=True)
    )
    after = _terms_on(frame, days)
    before = _terms_on(frame, days.assign(day=days["day"] - pd.Timedelta(days=1)))
    changed = (after != before).any(axis=1).to_numpy()

    def label(terms: pd.DataFrame) -> pd.Series:
        text = terms["status"] + " " + terms["plan"] + " " + terms["addons"]
        return text.str.strip().replace("", "no contract")

    out = days.assign(before=label(before), after=label(after))[changed]
    return out.reset_index(drop=True)
