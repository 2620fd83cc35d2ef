"""Small bundles, check results and exceptions for the policy tests."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from licensing_pipeline.contract.schemas import (
    CHECK_RESULTS,
    POLICY_EXCEPTIONS,
    TENANTS,
    conform,
    empty_frame,
)
from licensing_pipeline.policy.bundle import PolicyBundle, load_policy
from licensing_pipeline.policy.decisions import evaluate_policy
from licensing_pipeline.settings import DEFAULT_POLICY_PATH

AS_OF = date(2026, 11, 20)
DEFAULT = load_policy(DEFAULT_POLICY_PATH)

HEADER = """\
version: "test-1"
fallback: {severity: warning, action: notify}
rules:
"""


def bundle_text(rules: str, header: str = HEADER) -> str:
    """A bundle whose rules are the given YAML list items (indented by two spaces)."""
    return header + rules


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def bundle(tmp_path: Path, rules: str, header: str = HEADER) -> PolicyBundle:
    return load_policy(write(tmp_path, bundle_text(rules, header)))


def result(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "tenant_id": "t-1",
        "check": "quota_exceeded",
        "subject": "api_calls",
        "period": "2026-11",
        "observed": 120.0,
        "allowed": 100.0,
        "enforcement": "hard",
        "details": "api_calls usage of 120 in 2026-11 is above the 100 included in your plan.",
    }
    row.update(overrides)
    return row


def results(*rows: dict[str, Any]) -> pd.DataFrame:
    return conform(pd.DataFrame(list(rows)), CHECK_RESULTS) if rows else empty_frame(CHECK_RESULTS)


def months(start: str, count: int, **overrides: Any) -> list[dict[str, Any]]:
    """One result per month for ``count`` consecutive months from ``start`` (YYYY-MM)."""
    first = pd.Period(start, freq="M")
    return [result(period=str(first + i), **overrides) for i in range(count)]


def exceptions(*rows: dict[str, Any]) -> pd.DataFrame:
    if not rows:
        return empty_frame(POLICY_EXCEPTIONS)
    base = {
        "exception_id": "EX-1",
        "tenant_id": "t-1",
        "check": "quota_exceeded",
        "subject": "api_calls",
        "approved_by": "cfo@vendor.example.com",
        "expires_on": "2026-11-30",
        "reason": "migration",
    }
    return conform(pd.DataFrame([{**base, **r} for r in rows]), POLICY_EXCEPTIONS)


def evaluate(frame: pd.DataFrame, policy: PolicyBundle = DEFAULT, **kwargs: Any) -> pd.DataFrame:
    """The policy's decisions on ``frame`` as of AS_OF, with no exceptions unless given."""
    kwargs.setdefault("exceptions", exceptions())
    kwargs.setdefault("as_of", AS_OF)
    return evaluate_policy(frame, policy, **kwargs)


def tenants(rows: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """tenant_id -> (segment, home_region)."""
    frame = pd.DataFrame(
        [
            {"tenant_id": t, "name": t, "segment": seg, "home_region": region}
            for t, (seg, region) in rows.items()
        ]
    )
    return conform(frame, TENANTS)


CATALOG = pd.DataFrame(
    {
        "kind": ["region", "region", "region", "feature", "feature", "metric"],
        "name": ["us-east-1", "eu-west-1", "uk-south-1", "sso", "audit_log", "api_calls"],
        "jurisdiction": ["US", "EU", "UK", None, None, None],
        "catalog_version": ["2026-10-01"] * 6,
    }
)
