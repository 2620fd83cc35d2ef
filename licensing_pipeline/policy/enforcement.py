"""The enforcement feed: the current action per tenant and capability, as a flagd flag file
the product loads without redeploying, and a JSON Lines log of every change.

A capability is what the product can switch per tenant: ``account`` (everything),
``feature.<name>``, ``metric.<name>`` (a metered quota) and ``region.<name>``. Each is one
flagd flag whose string variants are the action ladder plus ``none``; targeting picks the
variant by ``targetingKey`` = tenant_id. Only breaches of the current period (as-of's month,
or as-of's day for daily checks) that are open (not waived) drive the product: past months
stay findings to follow up, they do not throttle today.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from licensing_pipeline.contract.schemas import (
    ACTIONS,
    ENFORCEMENT_ACTIONS,
    POLICY_EVALUATIONS,
    SEVERITIES,
    conform,
    empty_frame,
)
from licensing_pipeline.file_modes import (
    PRIVATE_FILE,
    SHARED_FILE,
    folder_mode,
    make_folders,
    set_mode,
)

NO_ACTION = "none"
VARIANTS = (NO_ACTION, *ACTIONS)
FLAGD_SCHEMA = "https://flagd.dev/schema/v0/flags.json"
FLAG_SET_ID = "licensing-enforcement"
FLAGS_FILE = "flags.flagd.json"
CHANGES_FILE = "changes.jsonl"
ACCOUNT = "account"

# check -> the kind of capability its subject names (None: the whole account)
CAPABILITY_KIND: dict[str, str | None] = {
    "quota_exceeded": "metric",
    "quota_near_limit": "metric",
    "config_quota_mismatch": "metric",
    "config_policy_outdated": None,
    "unbilled_usage": "metric",
    "overbilled_usage": "metric",
    "usage_anomaly": "metric",
    "feature_not_entitled": "feature",
    "config_feature_not_entitled": "feature",
    "config_feature_missing": "feature",
    "residency_violation": "region",
    "inactive_contract_usage": None,
}
CATALOG_KINDS = ("feature", "metric", "region")


def capability_of(check: pd.Series, subject: pd.Series) -> pd.Series:
    kind = check.map(CAPABILITY_KIND)
    named = kind.astype("string") + "." + subject.astype("string")
    return named.where(kind.notna(), ACCOUNT).astype("string")


def catalog_capabilities(catalog: pd.DataFrame) -> list[str]:
    """Every capability the catalog defines, plus ``account``: the flag set stays stable."""
    if catalog.empty or "kind" not in catalog:
        return [ACCOUNT]
    rows = catalog[catalog["kind"].isin(CATALOG_KINDS)]
    return sorted({ACCOUNT, *(f"{k}.{n}" for k, n in zip(rows["kind"], rows["name"], strict=True))})


def current_enforcement(evaluations: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The strongest action per (tenant, capability) among open breaches of the current period.

    Ties go to the higher severity, then the check and subject in name order, so the same
    findings always give the same row.
    """
    found = conform(evaluations, POLICY_EVALUATIONS)
    current = {as_of.strftime("%Y-%m"), as_of.isoformat()}
    live = found[(found["status"] == "open") & found["period"].isin(current)].copy()
    if live.empty:
        return empty_frame(ENFORCEMENT_ACTIONS)
    live["capability"] = capability_of(live["check"], live["subject"])
    live["_action"] = live["action"].map(ACTIONS.index)
    live["_severity"] = live["severity"].map(SEVERITIES.index)
    live = live.sort_values(
        ["tenant_id", "capability", "_action", "_severity", "check", "subject"],
        ascending=[True, True, False, False, True, True],
    ).drop_duplicates(["tenant_id", "capability"])
    live["as_of"] = pd.Timestamp(as_of)
    return conform(live, ENFORCEMENT_ACTIONS).sort_values(
        ["tenant_id", "capability"], ignore_index=True
    )


def enforcement_changes(
    previous: pd.DataFrame, current: pd.DataFrame, *, policy_version: str, policy_hash: str
) -> pd.DataFrame:
    """Rows whose action differs from the previous state (``none`` where there is no row).

    A lifted action (now ``none``) is recorded under the bundle that lifted it.
    """
    key = ["tenant_id", "capability"]
    keep = ["action", "severity", "check", "finding_id", "rule_id", "policy_version"]
    keep += ["policy_hash", "details"]
    before = (
        previous[[*key, "action"]].rename(columns={"action": "previous_action"})
        if len(previous)
        else pd.DataFrame(columns=[*key, "previous_action"])
    )
    now = current[[*key, *keep]] if len(current) else pd.DataFrame(columns=[*key, *keep])
    both = before.astype({k: "string" for k in key}).merge(
        now.astype({k: "string" for k in key}), on=key, how="outer"
    )
    both["previous_action"] = both["previous_action"].fillna(NO_ACTION)
    both["action"] = both["action"].fillna(NO_ACTION)
    changed = both[both["previous_action"] != both["action"]].copy()
    changed["details"] = changed["details"].fillna("")
    changed["policy_version"] = changed["policy_version"].fillna(policy_version)
    changed["policy_hash"] = changed["policy_hash"].fillna(policy_hash)
    return changed.sort_values(key, ignore_index=True)[[*key, "previous_action", *keep]]


def _targeting(tenants_by_action: Mapping[str, list[str]]) -> dict[str, Any] | None:
    """Nested 3-argument ``if`` (flagd has no if/else-if chain): strongest action outermost."""
    expression: dict[str, Any] | None = None
    for action in ACTIONS:  # weakest first, so the strongest ends up outermost
        tenants = sorted(tenants_by_action.get(action, []))
        if tenants:
            expression = {"if": [{"in": [{"var": "targetingKey"}, tenants]}, action, expression]}
    return expression


def flagd_document(
    actions: pd.DataFrame,
    capabilities: Iterable[str],
    *,
    policy_version: str,
    policy_hash: str,
    as_of: date,
    approved_change: int | None = None,
) -> dict[str, Any]:
    """A flagd flag-definition document: one string flag per capability, default ``none``.

    Its metadata names the policy bundle that produced it (``version``, ``policyHash``: the
    bundle's sha256) and the approved change that put that bundle in force, when there is one.
    """
    names = sorted(set(capabilities) | set(actions["capability"].dropna().astype(str)))
    flags: dict[str, Any] = {}
    for name in names:
        rows = actions[actions["capability"] == name]
        by_action = {
            str(a): list(group["tenant_id"].astype(str))
            for a, group in rows.groupby("action", sort=True)
        }
        flag: dict[str, Any] = {
            "state": "ENABLED",
            "variants": {v: v for v in VARIANTS},
            "defaultVariant": NO_ACTION,
        }
        targeting = _targeting(by_action)
        if targeting is not None:
            flag["targeting"] = targeting
        flag["metadata"] = {"capability": name}
        flags[name] = flag
    metadata: dict[str, Any] = {
        "flagSetId": FLAG_SET_ID,
        "version": policy_version,
        "policyHash": policy_hash,
        "asOf": as_of.isoformat(),
    }
    if approved_change is not None:
        metadata["approvedChange"] = approved_change
    return {"$schema": FLAGD_SCHEMA, "metadata": metadata, "flags": flags}


def write_atomically(path: Path, text: str, mode: int = PRIVATE_FILE) -> bool:
    """Replace ``path`` in one rename (a watcher never reads half a file); False if unchanged.
    The file gets ``mode`` whatever the umask, and missing folders the matching mode."""
    make_folders(path.parent, folder_mode(mode))
    if path.exists() and path.read_text(encoding="utf-8") == text:
        set_mode(path, mode)
        return False
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


def change_lines(changes: pd.DataFrame) -> str:
    """The change log as JSON Lines (no internal rule ids: the product may show these)."""
    if changes.empty:
        return ""
    out = []
    for row in changes.to_dict("records"):
        out.append(
            json.dumps(
                {
                    "seq": int(row["seq"]),
                    "run_id": row["run_id"],
                    "changed_at": pd.Timestamp(row["changed_at"]).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "as_of": pd.Timestamp(row["as_of"]).date().isoformat(),
                    "tenant_id": row["tenant_id"],
                    "capability": row["capability"],
                    "previous": row["previous_action"],
                    "action": row["action"],
                    "severity": row["severity"] if pd.notna(row["severity"]) else None,
                    "check": row["check"] if pd.notna(row["check"]) else None,
                    "finding_id": row["finding_id"] if pd.notna(row["finding_id"]) else None,
                    "policy_version": row["policy_version"],
                    "details": row["details"] or "",
                },
                ensure_ascii=False,
            )
        )
    return "\n".join(out) + "\n"


class EnforcementFeed(dg.ConfigurableResource):
    """Where the flag file and the change log are written (``LICENSING_ENFORCEMENT_DIR``)."""

    directory: str

    @property
    def flags_path(self) -> Path:
        return Path(self.directory).expanduser() / FLAGS_FILE

    @property
    def changes_path(self) -> Path:
        return Path(self.directory).expanduser() / CHANGES_FILE

    def publish(self, document: Mapping[str, Any], changes: pd.DataFrame) -> bool:
        """Write both files; the flag file only when its content changed. True if it did."""
        # Readable by all: the product's flag provider may run as another user.
        changed = write_atomically(
            self.flags_path,
            json.dumps(document, indent=2, ensure_ascii=False) + "\n",
            mode=SHARED_FILE,
        )
        write_atomically(self.changes_path, change_lines(changes), mode=SHARED_FILE)
        return changed
