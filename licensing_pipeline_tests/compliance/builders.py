"""Small hand-built inputs for the compliance tests: one catalog, frame builders with defaults."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from typing import Any

import duckdb
import pandas as pd

from licensing_pipeline.contract.catalog import Catalog, Metric, Package
from licensing_pipeline.contract.schemas import (
    CONTRACTS,
    DEPLOYMENT_CONFIGS,
    EFFECTIVE_ENTITLEMENTS,
    RESIDENCY_CONFIGS,
    TENANTS,
    conform,
    empty_frame,
)

CATALOG = Catalog(
    version="2026-10-01",
    regions={"us-east-1": "US", "eu-west-1": "EU", "eu-central-1": "EU", "uk-south-1": "UK"},
    features=("api_access", "sso", "audit_log", "reports_export", "advanced_analytics"),
    metrics={
        "api_calls": Metric("api_calls", "api.request", "COUNT"),
        "seats": Metric("seats", "auth.login", "UNIQUE_COUNT", "user_id"),
        "storage_gb": Metric("storage_gb", "storage.reported", "MAX", "gb"),
    },
    plans={
        "starter": Package(
            "starter", ("api_access",), {"api_calls": 100000.0, "seats": 5.0, "storage_gb": 10.0}
        ),
        # pro leaves storage_gb unlimited
        "pro": Package(
            "pro", ("api_access", "sso", "reports_export"), {"api_calls": 1e6, "seats": 50.0}
        ),
    },
    addons={
        "seats_pack_10": Package("seats_pack_10", (), {"seats": 10.0}),
        "analytics": Package("analytics", ("advanced_analytics",), {}),
        "storage_pack": Package("storage_pack", (), {"storage_gb": 100.0}),
    },
)


def via_duckdb(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as the warehouse IO manager hands it back: object text, datetime64[us]."""
    con = duckdb.connect()
    try:
        con.register("f", frame)
        return con.execute("SELECT * FROM f").df()
    finally:
        con.close()


def tenants(*ids: str, segment: str = "smb") -> pd.DataFrame:
    rows = [{"tenant_id": t, "name": t.upper(), "segment": segment} for t in ids]
    return conform(pd.DataFrame(rows), TENANTS) if rows else empty_frame(TENANTS)


def contract(
    tenant_id: str,
    start: str,
    end: str | None = None,
    *,
    contract_id: str | None = None,
    plan: str = "starter",
    addons: str = "",
    overrides: dict[str, Any] | None = None,
    status: str = "active",
    enforcement: str = "hard",
) -> dict[str, Any]:
    return {
        "contract_id": contract_id or f"c-{tenant_id}-{start}",
        "tenant_id": tenant_id,
        "plan": plan,
        "addons": addons,
        "quota_overrides": json.dumps(overrides or {}),
        "start_date": pd.Timestamp(start),
        "end_date": pd.Timestamp(end) if end else pd.NaT,
        "status": status,
        "enforcement": enforcement,
    }


def contracts(*rows: dict[str, Any]) -> pd.DataFrame:
    return conform(pd.DataFrame(list(rows)), CONTRACTS) if rows else empty_frame(CONTRACTS)


def activity(rows: Iterable[tuple[str, str, int]]) -> pd.DataFrame:
    """tenant_activity_daily from (tenant, day, events)."""
    frame = pd.DataFrame(list(rows), columns=["tenant_id", "usage_date", "events"])
    frame["usage_date"] = pd.to_datetime(frame["usage_date"], format="ISO8601").dt.date
    return frame


def entitlement(
    tenant_id: str,
    period: str,
    *,
    features: Iterable[str] = ("api_access",),
    quotas: dict[str, float] | None = None,
    status: str = "active",
    enforcement: str | None = "hard",
    plan: str | None = "starter",
    contract_id: str | None = None,
    resolved_on: str | None = None,
) -> dict[str, Any]:
    """One effective_entitlements row, written by hand so a family is tested on its own."""
    in_force = status in ("active", "paused", "cancelled")
    return {
        "tenant_id": tenant_id,
        "period": period,
        "resolved_on": pd.Timestamp(resolved_on or f"{period}-28"),
        "contract_id": (contract_id or f"c-{tenant_id}") if in_force else None,
        "contract_status": status,
        "entitled": status == "active",
        "enforcement": enforcement if in_force else None,
        "plan": plan if in_force else None,
        "addons": "",
        "segment": "smb",
        "features": json.dumps(sorted(features) if in_force else []),
        "quotas": json.dumps(
            (quotas if quotas is not None else {"api_calls": 100000}) if in_force else {}
        ),
    }


def entitlements(*rows: dict[str, Any]) -> pd.DataFrame:
    return (
        conform(pd.DataFrame(list(rows)), EFFECTIVE_ENTITLEMENTS)
        if rows
        else empty_frame(EFFECTIVE_ENTITLEMENTS)
    )


def residency(**allowed: str) -> pd.DataFrame:
    rows = [{"tenant_id": t, "allowed_jurisdictions": a} for t, a in allowed.items()]
    return (
        conform(pd.DataFrame(rows), RESIDENCY_CONFIGS) if rows else empty_frame(RESIDENCY_CONFIGS)
    )


def deployment(
    tenant_id: str,
    observed_at: str,
    *,
    deployment: str = "prod",
    region: str = "eu-west-1",
    features: Iterable[str] = ("api_access",),
    limits: dict[str, float] | None = None,
    feed_version: str | None = None,
) -> dict[str, Any]:
    return {
        "enforcement_feed_version": feed_version,
        "tenant_id": tenant_id,
        "deployment": deployment,
        "region": region,
        "enabled_features": json.dumps(list(features)),
        "quota_limits": json.dumps(limits or {}),
        "observed_at": pd.Timestamp(observed_at),
    }


def deployments(*rows: dict[str, Any]) -> pd.DataFrame:
    return (
        conform(pd.DataFrame(list(rows)), DEPLOYMENT_CONFIGS)
        if rows
        else empty_frame(DEPLOYMENT_CONFIGS)
    )


def day(text: str) -> date:
    return date.fromisoformat(text)


def keyed(results: pd.DataFrame) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Results by (tenant, check, subject, period), for compact assertions."""
    return {
        (r["tenant_id"], r["check"], r["subject"], r["period"]): r
        for r in results.to_dict("records")
    }


def only_result(results: pd.DataFrame, key: tuple[str, str, str, str]) -> pd.Series:
    """The one result there is, after asserting that its (tenant, check, subject, period) is key."""
    assert list(keyed(results)) == [key]
    return results.iloc[0]
