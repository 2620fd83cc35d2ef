"""Small hand-written findings and tenants for the remediation tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from licensing_pipeline.compliance.findings import finding_fingerprint
from licensing_pipeline.contract.schemas import COMPLIANCE_FINDINGS, TENANTS, conform, empty_frame

DETECTED = datetime(2026, 11, 20, 2, 0, 0)


def finding(
    tenant_id: str = "t-1",
    check: str = "residency_violation",
    subject: str = "us-east-1",
    period: str = "2026-11",
    *,
    severity: str = "critical",
    action: str = "suspend",
    status: str = "open",
    observed: float = 12.0,
    allowed: float = 0.0,
    details: str = "Usage processed in us-east-1 (US); the contract allows EU only.",
) -> dict[str, Any]:
    return {
        "finding_id": finding_fingerprint(tenant_id, check, subject, period),
        "tenant_id": tenant_id,
        "check": check,
        "subject": subject,
        "period": period,
        "observed": observed,
        "allowed": allowed,
        "severity": severity,
        "action": action,
        "status": status,
        "policy_version": "2026.11.0",
        "catalog_version": "2026-10-01",
        "first_detected_at": DETECTED,
        "last_detected_at": DETECTED,
        "details": details,
    }


def findings(*rows: dict[str, Any]) -> pd.DataFrame:
    if not rows:
        return empty_frame(COMPLIANCE_FINDINGS)
    return conform(pd.DataFrame(list(rows)), COMPLIANCE_FINDINGS)


def tenants(*rows: dict[str, Any]) -> pd.DataFrame:
    if not rows:
        return empty_frame(TENANTS)
    return conform(pd.DataFrame(list(rows)), TENANTS)


def tenant(
    tenant_id: str = "t-1",
    *,
    segment: str = "enterprise",
    owner: str = "ana@example.com",
    channel: str = "#acme-compliance",
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "name": f"Tenant {tenant_id}",
        "home_region": "eu-west-1",
        "segment": segment,
        "compliance_owner": owner,
        "slack_channel": channel,
    }


def quota_warning(tenant_id: str = "t-1", period: str = "2026-11") -> dict[str, Any]:
    return finding(
        tenant_id,
        "quota_exceeded",
        "api_calls",
        period,
        severity="warning",
        action="warn",
        observed=120_500.0,
        allowed=100_000.0,
        details="api_calls 120,500 above the soft limit 100,000.",
    )
