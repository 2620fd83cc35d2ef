"""The non-usage exports: billing, deployment configs and policy exceptions.

Billing is derived from measured usage (exactly, so only seeded differences are
findings); deployments mirror entitlements except where drift is seeded.
"""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

from licensing_pipeline.contract import schemas
from licensing_pipeline.contract.catalog import Catalog
from licensing_pipeline.demo.expected import (
    UsageAggregates,
    entitlement_on,
    resolution_day,
)
from licensing_pipeline.demo.plan import (
    BILLED_METRICS,
    CLEAN,
    CONFIG_EXTRA,
    CONFIG_MISSING,
    CONFIG_QUOTA,
    CURRENCIES,
    EXPIRED,
    OUTDATED_FEED_VERSION,
    OVERBILLED,
    REGIONS,
    RESIDENCY_DEPLOYMENT,
    SUFFIXES,
    UNBILLED,
    UNIT_PRICES,
    WAIVED,
    Calendar,
    DemoTenant,
    last_active,
)


def billing_records(
    tenants: list[DemoTenant], usage: UsageAggregates, cal: Calendar, catalog: Catalog
) -> pd.DataFrame:
    """Every closed, entitled month invoiced at the measured quantity, but for the seeds.

    One clean tenant's api_calls come as two lines (the invoice and a true-up) that add up.
    """
    monthly = {
        (r.tenant_id, r.metric, r.period): float(r.quantity)
        for r in usage.monthly.itertuples(index=False)
    }
    rows: list[dict[str, Any]] = []
    P = cal.last_closed
    split_done = False
    for t in tenants:
        currency = CURRENCIES[REGIONS[t.home]]
        for k, period in enumerate(cal.periods):
            if not cal.closed[k]:
                continue
            ent = entitlement_on(
                t.tenant_id, t.contracts, resolution_day(period, cal.as_of), catalog
            )
            if not ent.entitled:
                continue
            invoice = f"INV-{period.replace('-', '')}-{t.tenant_id[2:]}"
            for metric in BILLED_METRICS:
                measured = monthly.get((t.tenant_id, metric, period), 0.0)
                if measured <= 0:
                    continue
                billed = measured
                if t.role == UNBILLED and k == P and metric == "api_calls":
                    billed = float(math.floor(0.72 * measured))
                if t.role == OVERBILLED and k == P and metric == "seats":
                    billed = measured + 3
                lines = [billed]
                if t.role == CLEAN and metric == "api_calls" and not split_done and billed >= 10:
                    true_up = float(math.floor(billed * 0.1))
                    lines = [billed - true_up, true_up]  # a true-up line for the same month
                    split_done = True
                for quantity in lines:
                    rows.append(
                        {
                            "invoice_id": invoice,
                            "tenant_id": t.tenant_id,
                            "period": period,
                            "metric": metric,
                            "billed_quantity": quantity,
                            "amount": round(quantity * UNIT_PRICES[metric], 2),
                            "currency": currency,
                        }
                    )
    return pd.DataFrame(rows, columns=list(schemas.BILLING_RECORDS))


def deployment_observations(
    tenants: list[DemoTenant], cal: Calendar, catalog: Catalog, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Three observations per deployment, each matching the contract in force that day.

    Only the latest counts: drift is seeded there; one clean tenant had drift in an
    earlier observation (fixed since), another has an observation after as-of (ignored),
    and one names a quota its contract leaves unlimited (not compared).
    """
    rows: list[dict[str, Any]] = []
    fixed_drift = next((t for t in tenants if t.role == CLEAN), None)
    future = next((t for t in reversed(tenants) if t.role == CLEAN), None)
    unlimited_named = next((t for t in tenants if t.role == CLEAN and t.plan == "enterprise"), None)
    for t in tenants:
        last_day = min(t.last_day, cal.n_days - 1)
        current = entitlement_on(t.tenant_id, t.contracts, cal.as_of, catalog)
        if not current.entitled:
            current = last_active(t, catalog)
        deployments = [(f"{t.tenant_id}-prod", t.home)]
        if t.plan == "enterprise":
            if t.role == RESIDENCY_DEPLOYMENT:
                deployments.append((f"{t.tenant_id}-dr", "us-east-1"))
            elif t.secondary:
                deployments.append((f"{t.tenant_id}-dr", t.secondary))
        days = sorted(
            {t.first_day + 2, (t.first_day + last_day) // 2, last_day - int(rng.integers(1, 6))}
        )
        for name, region in deployments:
            for i, day in enumerate(days):
                ent = entitlement_on(t.tenant_id, t.contracts, cal.day(day), catalog)
                ent = ent if ent.entitled else current
                features = set(ent.features)
                quotas = dict(ent.quotas)
                is_latest = i == len(days) - 1
                if is_latest and t.role == CONFIG_EXTRA:
                    features.add("advanced_analytics")
                if is_latest and t.role == CONFIG_MISSING:
                    features.discard("audit_log")
                stale_feed = is_latest and t.role == CONFIG_QUOTA
                if stale_feed:
                    quotas["api_calls"] = quotas["api_calls"] * 1.5
                if t is fixed_drift and i == 1 and len(days) == 3:
                    features.discard(sorted(features)[0])  # drift that was fixed since
                if t.quota_subset:
                    quotas = {m: q for m, q in quotas.items() if m in ("api_calls", "seats")}
                if t is unlimited_named:
                    quotas["exports"] = 1e9  # unlimited in the contract: not compared
                row = _observation(t, name, region, features, quotas, cal, day, i)
                if stale_feed:
                    row["enforcement_feed_version"] = OUTDATED_FEED_VERSION
                rows.append(row)
        if t is future:
            doubled = {m: q * 2 for m, q in current.quotas.items()}
            name, region = deployments[0]
            rows.append(
                _observation(
                    t, name, region, set(current.features), doubled, cal, cal.n_days + 1, 3
                )
            )
    rows.sort(key=lambda r: (r["_utc"], r["tenant_id"], r["deployment"]))
    return rows


def _observation(
    t: DemoTenant,
    name: str,
    region: str,
    features: set[str],
    quotas: dict[str, float],
    cal: Calendar,
    day: int,
    i: int,
) -> dict[str, Any]:
    """One line of deployment_configs.jsonl (``_utc`` is for sorting, not written)."""
    utc = datetime.combine(cal.day(day), time(3, 0)) + timedelta(minutes=t.minute + 7 * i)
    offset = (0, 120, -300)[(t.index + i) % 3]
    local = utc + timedelta(minutes=offset)
    return {
        "tenant_id": t.tenant_id,
        "deployment": name,
        "region": region,
        "enabled_features": sorted(features),
        "quota_limits": {
            m: int(q) if float(q).is_integer() else q for m, q in sorted(quotas.items())
        },
        "observed_at": local.strftime("%Y-%m-%dT%H:%M:%S") + SUFFIXES[offset],
        "_utc": utc,
    }


def policy_exceptions(tenants: list[DemoTenant], cal: Calendar) -> list[dict[str, str]]:
    """One exception still valid on as-of, one expired before it, one matching nothing."""
    by_role = {t.role: t for t in tenants}
    other = next(t for t in tenants if t.role == CLEAN)
    return [
        {
            "exception_id": "EX-101",
            "tenant_id": by_role[WAIVED].tenant_id,
            "check": "quota_exceeded",
            "subject": "storage_gb",
            "approved_by": "cfo@vendor.example.com",
            "expires_on": (cal.as_of + timedelta(days=45)).isoformat(),
            "reason": "Migration in progress; storage cleanup scheduled",
        },
        {
            "exception_id": "EX-102",
            "tenant_id": by_role[EXPIRED].tenant_id,
            "check": "feature_not_entitled",
            "subject": "sso",
            "approved_by": "vp-sales@vendor.example.com",
            "expires_on": (cal.as_of - timedelta(days=20)).isoformat(),
            "reason": "SSO trial during the evaluation",
        },
        {
            "exception_id": "EX-103",
            "tenant_id": other.tenant_id,
            "check": "config_feature_missing",
            "subject": "sandbox",
            "approved_by": "cto@vendor.example.com",
            "expires_on": (cal.as_of + timedelta(days=90)).isoformat(),
            "reason": "Sandbox rollout deferred at the customer's request",
        },
    ]


def deployments_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The observations as ``demo.expected.expected_findings`` reads them."""
    return pd.DataFrame(
        {
            "tenant_id": [r["tenant_id"] for r in rows],
            "deployment": [r["deployment"] for r in rows],
            "region": [r["region"] for r in rows],
            "enabled_features": [r["enabled_features"] for r in rows],
            "quota_limits": [r["quota_limits"] for r in rows],
            "observed_at": pd.to_datetime([r["_utc"] for r in rows]),
            "enforcement_feed_version": [r.get("enforcement_feed_version") for r in rows],
        }
    )
