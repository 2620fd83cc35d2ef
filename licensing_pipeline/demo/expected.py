"""Reference evaluation of a demo dataset: the findings the pipeline must report for it.

The demo generator runs this over the events it generated, so the manifest states exactly
what the brief's semantics make of the data (periods, observed and allowed figures), and
the generator can refuse to write a dataset whose "clean" tenants are not clean. Tests
run it again over the files read back, so the manifest is checked against the bytes.
It works on small per-tenant aggregates; event-scale work is one pass of pandas groupbys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from licensing_pipeline.contract.catalog import Catalog

FINDING_COLUMNS = ["tenant_id", "check", "subject", "period", "observed", "allowed", "status"]


@dataclass(frozen=True)
class Thresholds:
    """The default policy bundle's numbers (``policy/default_policy.yaml``)."""

    near_limit_ratio: float = 0.8
    billing_tolerance: float = 0.01
    baseline_days: int = 28
    seasonal_weeks: int = 8


@dataclass(frozen=True)
class ContractTerms:
    contract_id: str
    tenant_id: str
    plan: str
    addons: tuple[str, ...]
    quota_overrides: dict[str, float]
    start_date: date
    end_date: date | None
    status: str
    enforcement: str

    def in_force(self, day: date) -> bool:
        return self.start_date <= day and (self.end_date is None or day <= self.end_date)


@dataclass(frozen=True)
class Entitlement:
    tenant_id: str
    contract_id: str | None
    contract_status: str  # active | paused | cancelled | expired | none
    features: frozenset[str] = frozenset()
    quotas: Mapping[str, float] = field(default_factory=dict)

    @property
    def entitled(self) -> bool:
        return self.contract_status == "active"


def contracts_from_frame(frame: pd.DataFrame) -> list[ContractTerms]:
    """``contracts.csv`` read with ``dtype=str, keep_default_na=False``."""

    def day(text: str) -> date | None:
        return date.fromisoformat(text) if text else None

    out = []
    for row in frame.itertuples(index=False):
        start = day(str(row.start_date))
        assert start is not None
        out.append(
            ContractTerms(
                contract_id=str(row.contract_id),
                tenant_id=str(row.tenant_id),
                plan=str(row.plan),
                addons=tuple(a for a in str(row.addons).split(";") if a),
                quota_overrides={
                    k: float(v) for k, v in json.loads(str(row.quota_overrides) or "{}").items()
                },
                start_date=start,
                end_date=day(str(row.end_date)),
                status=str(row.status),
                enforcement=str(row.enforcement),
            )
        )
    return out


def entitlement_on(
    tenant_id: str, contracts: Sequence[ContractTerms], day: date, catalog: Catalog
) -> Entitlement:
    """The contract in force on ``day``: active first, then the latest start, then the id."""
    mine = [c for c in contracts if c.tenant_id == tenant_id]
    if not mine:
        return Entitlement(tenant_id, None, "none")
    in_force = [c for c in mine if c.in_force(day)]
    if not in_force:
        return Entitlement(tenant_id, None, "expired")
    in_force.sort(key=lambda c: (c.status != "active", -c.start_date.toordinal(), c.contract_id))
    chosen = in_force[0]
    plan = catalog.plans[chosen.plan]
    features = set(plan.features)
    quotas = dict(plan.quotas)
    for name in chosen.addons:
        addon = catalog.addons[name]
        features.update(addon.features)
        for metric, extra in addon.quotas.items():
            quotas[metric] = quotas.get(metric, 0.0) + extra
    quotas.update(chosen.quota_overrides)
    return Entitlement(tenant_id, chosen.contract_id, chosen.status, frozenset(features), quotas)


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def period_last_day(period: str) -> date:
    year, month = int(period[:4]), int(period[5:7])
    first_next = date(year + month // 12, month % 12 + 1, 1)
    return first_next - timedelta(days=1)


def resolution_day(period: str, as_of: date) -> date:
    """A period is judged on its last day, the current one on as-of."""
    return as_of if period == period_of(as_of) else period_last_day(period)


# --- usage aggregates ------------------------------------------------------------------


@dataclass
class UsageAggregates:
    """What the dbt models hold, for events before the end of the as-of day."""

    daily: pd.DataFrame  # tenant_id, metric, usage_date (date), quantity
    monthly: pd.DataFrame  # tenant_id, metric, period, quantity
    activity_daily: pd.DataFrame  # tenant_id, usage_date, events
    features: pd.DataFrame  # tenant_id, feature, period, events
    regions: pd.DataFrame  # tenant_id, region, period, events


def _period_text(months: np.ndarray) -> np.ndarray:
    """datetime64[M] -> 'YYYY-MM'."""
    return np.datetime_as_string(months.astype("datetime64[M]"), unit="M")


def aggregate_usage(events: pd.DataFrame, catalog: Catalog, as_of: date) -> UsageAggregates:
    """Per-tenant daily and monthly usage, as each metric's aggregation defines it.

    ``events`` has one row per distinct event (duplicates already removed): ``tenant_id``,
    ``type``, ``time`` (naive UTC datetime64), ``user_id``, ``feature``, ``region`` and one
    numeric column per catalog ``value_property`` (NaN when absent).
    """
    cutoff = np.datetime64(as_of + timedelta(days=1), "ms")
    times = events["time"].to_numpy().astype("datetime64[ms]")
    keep = times < cutoff
    frame = events.loc[keep].copy()
    frame["usage_date"] = times[keep].astype("datetime64[D]")
    frame["month"] = times[keep].astype("datetime64[M]")
    frame["time"] = times[keep]

    def finish(grouped: pd.Series | pd.DataFrame, name: str) -> pd.DataFrame:
        out = grouped.reset_index()
        out.columns = [*out.columns[:-1], name]
        return out

    daily_parts: list[pd.DataFrame] = []
    monthly_parts: list[pd.DataFrame] = []
    for metric in catalog.metrics.values():
        sub = frame[frame["type"] == metric.event_type]
        for grain, parts in (("usage_date", daily_parts), ("month", monthly_parts)):
            keys = ["tenant_id", grain]
            if metric.aggregation == "COUNT":
                agg = sub.groupby(keys, observed=True).size()
            else:
                prop = str(metric.value_property)
                if metric.aggregation == "UNIQUE_COUNT":
                    agg = sub.groupby(keys, observed=True)[prop].nunique()
                elif metric.aggregation == "SUM":
                    agg = sub.groupby(keys, observed=True)[prop].sum()
                elif metric.aggregation == "MAX":
                    agg = sub.groupby(keys, observed=True)[prop].max()
                else:  # LATEST: the last event by time that carries a value
                    valued = sub[sub[prop].notna()].sort_values("time", kind="stable")
                    agg = valued.groupby(keys, observed=True)[prop].last()
            part = finish(agg, "quantity")
            part["metric"] = metric.name
            parts.append(part)
    daily = pd.concat(daily_parts, ignore_index=True)
    daily["usage_date"] = pd.to_datetime(daily["usage_date"]).dt.date
    monthly = pd.concat(monthly_parts, ignore_index=True)
    monthly["period"] = _period_text(monthly["month"].to_numpy())
    activity = finish(frame.groupby(["tenant_id", "usage_date"], observed=True).size(), "events")
    activity["usage_date"] = pd.to_datetime(activity["usage_date"]).dt.date
    features = finish(
        frame[frame["feature"].notna()]
        .groupby(["tenant_id", "feature", "month"], observed=True)
        .size(),
        "events",
    )
    features["period"] = _period_text(features["month"].to_numpy())
    regions = finish(
        frame[frame["region"].notna()]
        .groupby(["tenant_id", "region", "month"], observed=True)
        .size(),
        "events",
    )
    regions["period"] = _period_text(regions["month"].to_numpy())

    def clean(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        df = df[columns].copy()
        for column in columns:
            if column in ("tenant_id", "metric", "feature", "region", "period"):
                df[column] = df[column].astype(str)
        return df.reset_index(drop=True)

    daily["quantity"] = daily["quantity"].astype(float)
    monthly["quantity"] = monthly["quantity"].astype(float)
    return UsageAggregates(
        daily=clean(daily, ["tenant_id", "metric", "usage_date", "quantity"]),
        monthly=clean(monthly, ["tenant_id", "metric", "period", "quantity"]),
        activity_daily=clean(activity, ["tenant_id", "usage_date", "events"]),
        features=clean(features, ["tenant_id", "feature", "period", "events"]),
        regions=clean(regions, ["tenant_id", "region", "period", "events"]),
    )


# --- findings --------------------------------------------------------------------------

Entitlements = dict[tuple[str, str], Entitlement]  # (tenant_id, period) -> its entitlement
MonthlyUsage = dict[tuple[str, str, str], float]  # (tenant_id, metric, period) -> quantity


def _finding(
    tenant: Any, check: str, subject: Any, period: Any, observed: Any, allowed: Any
) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "check": check,
        "subject": subject,
        "period": period,
        "observed": observed,
        "allowed": allowed,
    }


def _months_between(first: date, last: date) -> list[str]:
    out = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _anomalies(
    usage: UsageAggregates, as_of: date, t: Thresholds, seeded: Iterable[tuple[str, str, date]]
) -> list[dict[str, Any]]:
    """The seeded anomalies (count metrics), each measured against the usual level of its
    weekday: the median of the same weekday over the previous weeks once four exist, else of
    the previous days. Clean traffic is planned never to look anomalous, so nothing else is."""
    rows: list[dict[str, Any]] = []
    for tenant, metric, day in seeded:
        if day > as_of:
            continue
        group = usage.daily[
            (usage.daily["tenant_id"] == tenant) & (usage.daily["metric"] == metric)
        ]
        stamps = pd.to_datetime(group["usage_date"])
        days = pd.date_range(stamps.min(), as_of, freq="D")
        daily = group.set_index(stamps)["quantity"].reindex(days).fillna(0.0).astype(float)
        stamp = pd.Timestamp(day)
        before = daily[daily.index < stamp]
        same_weekday = before[before.index.weekday == stamp.weekday()].tail(t.seasonal_weeks)
        usual = (
            same_weekday.median()
            if len(same_weekday) >= min(4, t.seasonal_weeks)
            else before.tail(t.baseline_days).median()
        )
        observed = float(daily[stamp])
        rows.append(
            _finding(tenant, "usage_anomaly", metric, day.isoformat(), observed, float(usual))
        )
    return rows


def _allowed(residency: Mapping[str, str], tenant: str) -> set[str] | None:
    """Allowed jurisdictions, or None when the tenant is unrestricted."""
    text = residency.get(tenant)
    if text is None or text.strip().upper() == "ANY":
        return None
    return {part.strip().upper() for part in text.split(";") if part.strip()}


def expected_findings(
    *,
    catalog: Catalog,
    tenant_ids: Iterable[str],
    contracts: Sequence[ContractTerms],
    usage: UsageAggregates,
    billing: pd.DataFrame,
    deployments: pd.DataFrame,
    residency: Mapping[str, str],
    exceptions: pd.DataFrame,
    as_of: date,
    seeded_anomalies: Iterable[tuple[str, str, date]] = (),
    thresholds: Thresholds | None = None,
) -> pd.DataFrame:
    """Every finding the brief's semantics produce, with its expected status.

    ``seeded_anomalies``: (tenant_id, metric, day) of the usage anomalies the data was built
    with, the labels a usage_anomaly must match. ``billing``: tenant_id, period, metric, billed_quantity. ``deployments``: tenant_id,
    deployment, region, enabled_features (list), quota_limits (dict), observed_at (naive
    UTC timestamp). ``exceptions``: tenant_id, check, subject, expires_on (date).
    """
    t = thresholds or Thresholds()
    entitlements = _entitlements(catalog, tenant_ids, contracts, usage, as_of)
    monthly: MonthlyUsage = {
        (r.tenant_id, r.metric, r.period): float(r.quantity)
        for r in usage.monthly.itertuples(index=False)
    }
    latest = _latest_deployments(deployments, as_of)
    rows = [
        *_quota_findings(entitlements, monthly, t),
        *_feature_findings(usage, entitlements),
        *_inactive_contract_findings(usage, entitlements),
        *_residency_findings(usage, latest, residency, catalog, as_of),
        *_drift_findings(latest, entitlements, as_of),
        *_feed_findings(latest, entitlements, as_of),
        *_billing_findings(billing, entitlements, monthly, as_of, t),
        *_anomalies(usage, as_of, t, seeded_anomalies),
    ]
    _mark_waived(rows, exceptions, as_of)
    frame = pd.DataFrame(rows, columns=FINDING_COLUMNS)
    return frame.sort_values(["tenant_id", "check", "subject", "period"]).reset_index(drop=True)


def _entitlements(
    catalog: Catalog,
    tenant_ids: Iterable[str],
    contracts: Sequence[ContractTerms],
    usage: UsageAggregates,
    as_of: date,
) -> Entitlements:
    """Every tenant, every month from first usage or contract start to as-of."""
    first_usage = usage.activity_daily.groupby("tenant_id")["usage_date"].min().to_dict()
    everyone = set(tenant_ids) | {c.tenant_id for c in contracts} | set(first_usage)
    entitlements: Entitlements = {}
    for tenant in sorted(everyone):
        starts = [c.start_date for c in contracts if c.tenant_id == tenant]
        if tenant in first_usage:
            starts.append(first_usage[tenant])
        first = min(starts) if starts else as_of
        for period in _months_between(min(first, as_of), as_of):
            day = resolution_day(period, as_of)
            entitlements[(tenant, period)] = entitlement_on(tenant, contracts, day, catalog)
    return entitlements


def _entitled(entitlements: Entitlements, tenant: str, period: str) -> Entitlement | None:
    ent = entitlements.get((tenant, period))
    return ent if ent is not None and ent.entitled else None


def _latest_deployments(deployments: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Each deployment's last observation up to the end of the as-of day."""
    cutoff = pd.Timestamp(as_of + timedelta(days=1))
    return (
        deployments[deployments["observed_at"] < cutoff]
        .sort_values(["tenant_id", "deployment", "observed_at"], kind="stable")
        .groupby(["tenant_id", "deployment"], sort=True)
        .tail(1)
    )


def _quota_findings(
    entitlements: Entitlements, monthly: MonthlyUsage, t: Thresholds
) -> list[dict[str, Any]]:
    rows = []
    for (tenant, period), ent in sorted(entitlements.items()):
        if not ent.entitled:
            continue
        for metric, limit in sorted(ent.quotas.items()):
            used = monthly.get((tenant, metric, period), 0.0)
            check = None
            if used > limit:
                check = "quota_exceeded"
            elif limit > 0 and limit * t.near_limit_ratio <= used:
                check = "quota_near_limit"
            if check:
                rows.append(_finding(tenant, check, metric, period, used, limit))
    return rows


def _feature_findings(usage: UsageAggregates, entitlements: Entitlements) -> list[dict[str, Any]]:
    """Features used without entitlement."""
    return [
        _finding(r.tenant_id, "feature_not_entitled", r.feature, r.period, float(r.events), 0.0)
        for r in usage.features.itertuples(index=False)
        if (grant := _entitled(entitlements, r.tenant_id, r.period)) is not None
        and r.feature not in grant.features
    ]


def _inactive_contract_findings(
    usage: UsageAggregates, entitlements: Entitlements
) -> list[dict[str, Any]]:
    """Usage without an active contract in force."""
    activity = usage.activity_daily.copy()
    activity["period"] = [period_of(d) for d in activity["usage_date"]]
    rows = []
    for (tenant, period), events in (
        activity.groupby(["tenant_id", "period"])["events"].sum().items()
    ):
        status = entitlements.get((str(tenant), str(period)))
        if status is not None and not status.entitled:
            rows.append(
                _finding(tenant, "inactive_contract_usage", "contract", period, float(events), 0.0)
            )
    return rows


def _residency_findings(
    usage: UsageAggregates,
    latest: pd.DataFrame,
    residency: Mapping[str, str],
    catalog: Catalog,
    as_of: date,
) -> list[dict[str, Any]]:
    """Usage regions, then the latest deployments (as-of's period)."""

    def outside(tenant: str, region: str) -> bool:
        allowed = _allowed(residency, tenant)
        return allowed is not None and catalog.jurisdiction(region) not in allowed

    rows = [
        _finding(r.tenant_id, "residency_violation", r.region, r.period, float(r.events), 0.0)
        for r in usage.regions.itertuples(index=False)
        if outside(r.tenant_id, r.region)
    ]
    deployed_regions: dict[tuple[str, str], int] = {}
    for r in latest.itertuples(index=False):
        if outside(r.tenant_id, r.region):
            key = (r.tenant_id, r.region)
            deployed_regions[key] = deployed_regions.get(key, 0) + 1
    as_of_period = period_of(as_of)
    for (tenant, region), count in sorted(deployed_regions.items()):
        rows.append(
            _finding(tenant, "residency_violation", region, as_of_period, float(count), 0.0)
        )
    return rows


def _drift_findings(
    latest: pd.DataFrame, entitlements: Entitlements, as_of: date
) -> list[dict[str, Any]]:
    """Deployed configuration against the entitlement on as-of."""
    as_of_period = period_of(as_of)
    drift: dict[tuple[str, str, str], tuple[float, float]] = {}
    for r in latest.itertuples(index=False):
        grant = _entitled(entitlements, r.tenant_id, as_of_period)
        if grant is None:
            continue
        enabled = set(r.enabled_features)
        for feature in enabled - grant.features:
            drift[(r.tenant_id, "config_feature_not_entitled", feature)] = (1.0, 0.0)
        for feature in grant.features - enabled:
            drift[(r.tenant_id, "config_feature_missing", feature)] = (0.0, 1.0)
        for metric, value in r.quota_limits.items():
            if metric in grant.quotas and float(value) != grant.quotas[metric]:
                drift[(r.tenant_id, "config_quota_mismatch", metric)] = (
                    float(value),
                    grant.quotas[metric],
                )
    return [
        _finding(tenant, check, subject, as_of_period, observed, allowed)
        for (tenant, check, subject), (observed, allowed) in sorted(drift.items())
    ]


def _feed_findings(
    latest: pd.DataFrame, entitlements: Entitlements, as_of: date
) -> list[dict[str, Any]]:
    """Deployments that report another enforcement feed version than the shipped bundle's."""
    from licensing_pipeline.policy.bundle import load_policy
    from licensing_pipeline.settings import DEFAULT_POLICY_PATH

    if "enforcement_feed_version" not in latest:
        return []
    current = load_policy(DEFAULT_POLICY_PATH).version
    as_of_period = period_of(as_of)
    outdated: dict[str, int] = {}
    for tenant, version in zip(
        latest["tenant_id"], latest["enforcement_feed_version"], strict=True
    ):
        entitled = _entitled(entitlements, tenant, as_of_period) is not None
        if entitled and isinstance(version, str) and version and version != current:
            outdated[tenant] = outdated.get(tenant, 0) + 1
    return [
        _finding(tenant, "config_policy_outdated", "policy_version", as_of_period, float(n), 0.0)
        for tenant, n in sorted(outdated.items())
    ]


def _billing_findings(
    billing: pd.DataFrame,
    entitlements: Entitlements,
    monthly: MonthlyUsage,
    as_of: date,
    t: Thresholds,
) -> list[dict[str, Any]]:
    """Reconciliation over closed periods from the earliest billed one."""
    if billing.empty:
        return []
    billed = billing.groupby(["tenant_id", "period", "metric"])["billed_quantity"].sum().to_dict()
    metrics = sorted(set(billing["metric"]))
    earliest = str(billing["period"].min())
    rows = []
    for (tenant, period), ent in sorted(entitlements.items()):
        if not ent.entitled or period < earliest or period_last_day(period) > as_of:
            continue
        for metric in metrics:
            measured = monthly.get((tenant, metric, period), 0.0)
            invoiced = float(billed.get((tenant, period, metric), 0.0))
            check = None
            if measured > invoiced * (1 + t.billing_tolerance):
                check = "unbilled_usage"
            elif invoiced > measured * (1 + t.billing_tolerance):
                check = "overbilled_usage"
            if check:
                rows.append(_finding(tenant, check, metric, period, measured, invoiced))
    return rows


def _mark_waived(rows: list[dict[str, Any]], exceptions: pd.DataFrame, as_of: date) -> None:
    """Waived while as-of is on or before the exception's expires_on; open otherwise."""
    waivers = [
        (str(e.tenant_id), str(e.check), str(e.subject))
        for e in exceptions.itertuples(index=False)
        if as_of <= e.expires_on
    ]
    for row in rows:
        waived = any(
            w[0] == row["tenant_id"] and w[1] == row["check"] and w[2] in ("", "*", row["subject"])
            for w in waivers
        )
        row["status"] = "waived" if waived else "open"
