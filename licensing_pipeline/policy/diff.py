"""What a new bundle would change: a dry run on the latest data before rollout."""

from __future__ import annotations

import dataclasses

import pandas as pd

from licensing_pipeline.contract.schemas import POLICY_EVALUATIONS, conform
from licensing_pipeline.policy.bundle import PolicyBundle, Rule

COMPARED = ["severity", "action", "status", "rule_id"]
DIFF_COLUMNS = [
    "finding_id",
    "tenant_id",
    "check",
    "subject",
    "period",
    "status",
    "old_severity",
    "new_severity",
    "old_action",
    "new_action",
    "old_rule_id",
    "new_rule_id",
    "details",
]


def evaluation_diff(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Findings whose severity or action differs between two evaluations of the same results.

    Both frames are ``POLICY_EVALUATIONS`` of the same check results; a finding whose rule
    changed but whose severity and action did not is not listed.
    """
    old = conform(old, POLICY_EVALUATIONS)
    new = conform(new, POLICY_EVALUATIONS)
    keep = ["finding_id", *COMPARED]
    both = new.merge(old[keep], on="finding_id", how="inner", suffixes=("", "_old"))
    changed = both[
        (both["severity"] != both["severity_old"]) | (both["action"] != both["action_old"])
    ]
    out = pd.DataFrame(
        {
            "finding_id": changed["finding_id"],
            "tenant_id": changed["tenant_id"],
            "check": changed["check"],
            "subject": changed["subject"],
            "period": changed["period"],
            "status": changed["status"],
            "old_severity": changed["severity_old"],
            "new_severity": changed["severity"],
            "old_action": changed["action_old"],
            "new_action": changed["action"],
            "old_rule_id": changed["rule_id_old"],
            "new_rule_id": changed["rule_id"],
            "details": changed["details"],
        },
        columns=DIFF_COLUMNS,
    )
    return out.sort_values(["tenant_id", "check", "subject", "period"], ignore_index=True)


def _plain(rule: Rule) -> Rule:
    return dataclasses.replace(rule, file="", line=None)


def bundle_changes(old: PolicyBundle, new: PolicyBundle) -> list[str]:
    """The bundle-level differences, one line each (rules by id, thresholds, version)."""
    lines = []
    if old.version != new.version:
        lines.append(f"version {old.version} -> {new.version}")
    if old.content_hash == new.content_hash:
        lines.append("the two bundles have the same content")
        return lines
    old_rules = {r.id: _plain(r) for r in old.rules}
    new_rules = {r.id: _plain(r) for r in new.rules}
    for rule_id in sorted(new_rules.keys() - old_rules.keys()):
        lines.append(f"rule added: {rule_id}")
    for rule_id in sorted(old_rules.keys() - new_rules.keys()):
        lines.append(f"rule removed: {rule_id}")
    for rule_id in sorted(old_rules.keys() & new_rules.keys()):
        if old_rules[rule_id] != new_rules[rule_id]:
            before, after = old_rules[rule_id], new_rules[rule_id]
            fields = [
                f.name
                for f in dataclasses.fields(Rule)
                if getattr(before, f.name) != getattr(after, f.name)
            ]
            lines.append(f"rule changed: {rule_id} ({', '.join(fields)})")
    if _plain(old.fallback) != _plain(new.fallback):
        lines.append(
            f"fallback {old.fallback.severity}/{old.fallback.action} -> "
            f"{new.fallback.severity}/{new.fallback.action}"
        )
    thresholds = []
    if old.near_limit_ratio != new.near_limit_ratio:
        thresholds.append(f"near_limit_ratio {old.near_limit_ratio:g} -> {new.near_limit_ratio:g}")
    if old.billing_tolerance != new.billing_tolerance:
        thresholds.append(
            f"billing_tolerance {old.billing_tolerance:g} -> {new.billing_tolerance:g}"
        )
    if old.anomaly != new.anomaly:
        thresholds.append("anomaly thresholds")
    if thresholds:
        lines.append(
            "thresholds changed (" + "; ".join(thresholds) + "): they change which findings "
            "exist, which the next run shows; this diff compares decisions on today's findings"
        )
    return lines
