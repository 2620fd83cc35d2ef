"""Config drift: what running deployments enforce versus what the contract grants on as-of."""

from __future__ import annotations

from datetime import date

import pandas as pd

from licensing_pipeline.compliance.common import (
    as_day,
    check_results,
    fmt_number,
    join_names,
    latest_deployments,
)
from licensing_pipeline.compliance.entitlements import (
    entitled_only,
    parse_features,
    parse_quotas,
    period_of,
)

CHECKS = (
    "config_feature_not_entitled",
    "config_feature_missing",
    "config_quota_mismatch",
    "config_policy_outdated",
)
POLICY_SUBJECT = "policy_version"
_KEY = ["tenant_id", "check", "subject"]


def _deployments(names: list[str], start: bool = False) -> str:
    word = "Deployment" if start else "deployment"
    return f"{word}{'s' if len(names) > 1 else ''} {join_names(names)}"


def _feature_results(joined: pd.DataFrame) -> pd.DataFrame:
    """One row per (tenant, feature) that some deployment enables without, or lacks with, a grant."""
    rows = []
    for tenant, deployment, enabled_text, granted_text, plan in joined[
        ["tenant_id", "deployment", "enabled_features", "features", "plan"]
    ].itertuples(index=False):
        enabled, granted = set(parse_features(enabled_text)), set(parse_features(granted_text))
        rows += [
            (tenant, "config_feature_not_entitled", f, deployment, plan) for f in enabled - granted
        ]
        rows += [(tenant, "config_feature_missing", f, deployment, plan) for f in granted - enabled]
    frame = pd.DataFrame(rows, columns=[*_KEY, "deployment", "plan"])
    if frame.empty:
        return frame
    grouped = (
        frame.sort_values("deployment")
        .groupby([*_KEY, "plan"], dropna=False)["deployment"]
        .agg(list)
        .reset_index()
    )
    not_entitled = grouped["check"] == "config_feature_not_entitled"
    grouped["observed"] = not_entitled.map({True: 1.0, False: 0.0})
    grouped["allowed"] = 1.0 - grouped["observed"]
    grouped["details"] = [
        (
            f"{_deployments(names, start=True)} enable{'' if len(names) > 1 else 's'} "
            f"{feature}, which is not included in your plan ({plan}) or add-ons."
        )
        if check == "config_feature_not_entitled"
        else f"{feature} is included in your contract but not enabled in {_deployments(names)}."
        for check, feature, names, plan in grouped[
            ["check", "subject", "deployment", "plan"]
        ].itertuples(index=False)
    ]
    return grouped


def _quota_results(joined: pd.DataFrame) -> pd.DataFrame:
    """One row per (tenant, metric) that some deployment limits differently from the contract."""
    rows = []
    for tenant, deployment, limits_text, quotas_text in joined[
        ["tenant_id", "deployment", "quota_limits", "quotas"]
    ].itertuples(index=False):
        entitled = parse_quotas(quotas_text)
        for metric, limit in parse_quotas(limits_text).items():
            # A metric the contract leaves unlimited has nothing to drift from.
            if metric in entitled and abs(limit - entitled[metric]) > 1e-9 * max(1.0, abs(limit)):
                rows.append((tenant, metric, deployment, limit, entitled[metric]))
    frame = pd.DataFrame(rows, columns=["tenant_id", "subject", "deployment", "limit", "allowed"])
    if frame.empty:
        return frame
    frame["_gap"] = (frame["limit"] - frame["allowed"]).abs()
    frame = frame.sort_values(["tenant_id", "subject", "deployment"])
    out = []
    for key, group in frame.groupby(["tenant_id", "subject"], sort=False):
        tenant, metric = (str(part) for part in key)
        worst = group.sort_values(["_gap", "limit"], ascending=False, kind="stable").iloc[0]
        allowed = float(group["allowed"].iloc[0])
        if len(group) == 1:
            details = (
                f"Deployment {worst['deployment']} limits {metric} to {fmt_number(worst['limit'])} "
                f"instead of the {fmt_number(allowed)} in your contract."
            )
        else:
            named = [
                f"{d} ({fmt_number(lim)})"
                for d, lim in zip(group["deployment"], group["limit"], strict=True)
            ]
            details = (
                f"{_deployments(named, start=True)} limit {metric} to other than "
                f"the {fmt_number(allowed)} in your contract."
            )
        out.append((tenant, metric, float(worst["limit"]), allowed, details))
    result = pd.DataFrame(out, columns=["tenant_id", "subject", "observed", "allowed", "details"])
    return result.assign(check="config_quota_mismatch")


def _feed_results(joined: pd.DataFrame, feed_version: str) -> pd.DataFrame:
    """One row per tenant some of whose deployments enforce another feed version than the
    one this run publishes; a deployment that does not report its version is not one."""
    reported = joined[joined["enforcement_feed_version"].notna()]
    outdated = reported[reported["enforcement_feed_version"] != feed_version]
    out = []
    for tenant, group in outdated.sort_values("deployment").groupby("tenant_id", sort=True):
        named = [
            f"{d} ({v})"
            for d, v in zip(group["deployment"], group["enforcement_feed_version"], strict=True)
        ]
        verb = "enforce" if len(named) > 1 else "enforces"
        details = (
            f"{_deployments(named, start=True)} {verb} enforcement feed version(s) other "
            f"than the current {feed_version}."
        )
        out.append((str(tenant), float(len(named)), details))
    frame = pd.DataFrame(out, columns=["tenant_id", "observed", "details"])
    return frame.assign(check="config_policy_outdated", subject=POLICY_SUBJECT, allowed=0.0)


def config_drift(
    entitlements: pd.DataFrame,
    deployment_configs: pd.DataFrame,
    as_of: date,
    feed_version: str | None = None,
) -> pd.DataFrame:
    """config_feature_not_entitled / config_feature_missing / config_quota_mismatch /
    config_policy_outdated.

    The latest observation per (tenant, deployment) up to the end of the as-of day is
    compared with the entitlement on as-of, for tenants entitled then, and with
    ``feed_version``, the enforcement feed version this run publishes (the policy version).
    Several deployments with the same problem make one result (the finding is the tenant's),
    naming them all; for a quota, observed is the limit furthest from the contract's; for the
    feed, observed is the number of deployments on another version (allowed: 0).
    """
    period = period_of(as_day(as_of))
    entitled = entitled_only(entitlements)
    entitled = entitled[entitled["period"] == period]
    deployments = latest_deployments(deployment_configs, as_of)
    joined = deployments.merge(
        entitled[["tenant_id", "features", "quotas", "plan", "enforcement"]], on="tenant_id"
    )
    if joined.empty:
        return check_results(joined)
    parts = [_feature_results(joined), _quota_results(joined)]
    if feed_version is not None:
        parts.append(_feed_results(joined, feed_version))
    found = pd.concat(parts, ignore_index=True)
    if found.empty:
        return check_results(found)
    found["period"] = period
    enforcement = entitled.drop_duplicates("tenant_id").set_index("tenant_id")["enforcement"]
    found["enforcement"] = found["tenant_id"].map(enforcement)
    return check_results(found)
