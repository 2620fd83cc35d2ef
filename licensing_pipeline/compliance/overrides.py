"""The override layer: approved change requests layered on the contract export's entitlements.

A change is in force on a row's ``resolved_on`` day when ``effective_from`` <= day and
(``effective_until`` is empty or day <= ``effective_until``), the same day the contract is
looked up on. Each kind acts on one subject (the plan, one add-on, one feature, one metric's
quota, the contract status); on one subject the later request (higher ``request_id``) wins,
and only the winners shape the row (``applied_changes``). Applied in one step per row, so
nothing applies half-way: the plan and add-ons first (features and quotas re-derived from
the catalog, then the contract's own ``quota_overrides``), then feature grants and revokes,
then quota overrides, then the contract status.

Loops run over changes and over distinct (contract, changes) combinations, never over the
tenant-month grid: changes are few, tenant-months can be millions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from licensing_pipeline.compliance.common import day_series, fmt_number, text_series
from licensing_pipeline.compliance.entitlements import dump_quotas, grant, parse_quotas
from licensing_pipeline.contract.catalog import Catalog
from licensing_pipeline.contract.schemas import POLICY_EXCEPTIONS, conform
from licensing_pipeline.governance.change_kinds import change_label

# The kinds that change an entitlement row; region_allow, exception and policy_version act
# elsewhere (residency, policy exceptions, the bundle).
ENTITLEMENT_KINDS = (
    "plan_change",
    "addon_add",
    "addon_remove",
    "feature_grant",
    "feature_revoke",
    "quota_override",
    "contract_status",
)
NONE = "[]"
# An approved exception with no end date never expires (exceptions.csv needs a date: the
# latest day the pipeline represents).
OPEN_ENDED = pd.Timestamp.max.floor("D")


def _payload(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str | bytes) else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _subject(kind: str, payload: Mapping[str, Any]) -> str:
    """What a change acts on: two changes with one subject compete, the later wins."""
    if kind == "plan_change":
        return "plan"
    if kind == "contract_status":
        return "status"
    if kind in ("addon_add", "addon_remove"):
        return f"addon:{payload.get('addon')}"
    if kind in ("feature_grant", "feature_revoke"):
        return f"feature:{payload.get('feature')}"
    if kind == "quota_override":
        return f"quota:{payload.get('metric')}"
    return f"{kind}:{json.dumps(dict(payload), sort_keys=True)}"


def normalise_changes(changes: pd.DataFrame | None, kinds: Iterable[str]) -> pd.DataFrame:
    """Approved changes of ``kinds`` (``change_kinds.approved_changes``' columns, or as read back
    from the warehouse), with day timestamps, the parsed payload and the subject."""
    columns = ["request_id", "kind", "tenant_id", "payload", "effective_from", "effective_until"]
    frame = changes if changes is not None else pd.DataFrame(columns=columns)
    frame = frame[frame["kind"].isin(list(kinds))].copy()
    frame["request_id"] = pd.to_numeric(frame["request_id"]).astype("int64")
    frame["tenant_id"] = text_series(frame["tenant_id"].astype("string"))
    frame["effective_from"] = day_series(frame["effective_from"])
    frame["effective_until"] = day_series(frame["effective_until"])
    frame["parsed"] = [_payload(p) for p in frame["payload"]]
    frame["subject"] = [
        _subject(str(k), p) for k, p in frame[["kind", "parsed"]].itertuples(index=False)
    ]
    return frame.sort_values("request_id", kind="stable").reset_index(drop=True)


def in_force(frame: pd.DataFrame, day_column: str) -> pd.Series:
    """Rows of a (row × change) frame whose change is in force on ``day_column``."""
    day = frame[day_column]
    return (frame["effective_from"] <= day) & (
        frame["effective_until"].isna() | (day <= frame["effective_until"])
    )


@dataclass(frozen=True)
class Layered:
    plan: Any
    addons: str | None
    features: str
    quotas: str
    status: Any


def layer(
    catalog: Catalog,
    plan: Any,
    addons: str,
    contract_overrides: Any,
    status: Any,
    changes: Iterable[tuple[str, Mapping[str, Any]]],
) -> Layered:
    """One row's entitlement with ``changes`` (kind, payload; the winners, oldest first) applied."""
    changes = list(changes)
    names = [a for a in addons.split(";") if a] if isinstance(addons, str) else []
    for kind, payload in changes:
        if kind == "plan_change":
            plan = payload.get("plan")
        elif kind == "addon_add" and payload.get("addon") not in names:
            names.append(str(payload.get("addon")))
        elif kind == "addon_remove":
            names = [n for n in names if n != payload.get("addon")]
    joined = ";".join(names)
    granted = grant(catalog, plan, joined, contract_overrides)
    features = set(json.loads(granted.features))
    quotas = parse_quotas(granted.quotas)
    for kind, payload in changes:
        if kind == "feature_grant":
            features.add(str(payload.get("feature")))
        elif kind == "feature_revoke":
            features.discard(str(payload.get("feature")))
        elif kind == "quota_override":
            metric, limit = str(payload.get("metric")), payload.get("limit")
            if limit is None:
                quotas.pop(metric, None)
            else:
                quotas[metric] = float(limit)
        elif kind == "contract_status":
            status = payload.get("status")
    return Layered(plan, joined or None, json.dumps(sorted(features)), dump_quotas(quotas), status)


def apply_changes(
    catalog: Catalog, rows: pd.DataFrame, changes: pd.DataFrame | None
) -> pd.DataFrame:
    """``rows`` (resolution's tenant-month frame: tenant_id, resolved_on, plan, addons,
    quota_overrides, contract_status, features, quotas) with the changes in force layered on,
    and ``applied_changes`` (JSON list of the request ids that shaped each row)."""
    out = rows.reset_index(drop=True)
    out["applied_changes"] = NONE
    changes = normalise_changes(changes, ENTITLEMENT_KINDS)
    if changes.empty or out.empty:
        return out
    keys = out[["tenant_id", "resolved_on"]].assign(_row=np.arange(len(out)))
    pairs = keys.merge(
        changes[["request_id", "tenant_id", "effective_from", "effective_until", "subject"]],
        on="tenant_id",
    )
    pairs = pairs[in_force(pairs, "resolved_on")]
    winners = pairs.sort_values("request_id", kind="stable").drop_duplicates(
        ["_row", "subject"], keep="last"
    )
    if winners.empty:
        return out
    # Per affected row (bounded by changes × months), then per distinct combination.
    applied = (
        winners.sort_values(["_row", "request_id"])
        .groupby("_row")["request_id"]
        .agg(lambda ids: json.dumps([int(i) for i in ids]))
    )
    affected = out.iloc[applied.index.to_numpy()].assign(applied_changes=applied.to_numpy())
    terms = ["plan", "addons", "quota_overrides", "contract_status", "applied_changes"]
    combo = affected.groupby(terms, dropna=False, sort=False).ngroup().to_numpy()
    by_id = changes.set_index("request_id")
    layered: dict[int, Layered] = {}
    for key, plan, addons, overrides, status, ids in (
        affected[terms].assign(_combo=combo).drop_duplicates("_combo")[["_combo", *terms]]
    ).itertuples(index=False):
        chosen = by_id.loc[json.loads(ids)]
        layered[key] = layer(
            catalog,
            None if pd.isna(plan) else plan,
            "" if pd.isna(addons) else str(addons),
            None if pd.isna(overrides) else overrides,
            status,
            zip(chosen["kind"], chosen["parsed"], strict=True),
        )
    new = pd.DataFrame([vars(layered[key]) for key in combo], index=affected.index)
    new = new.rename(columns={"status": "contract_status"}).assign(
        applied_changes=affected["applied_changes"]
    )
    for column in new.columns:
        out[column] = out[column].astype(object)
        out.loc[affected.index, column] = new[column]
    out["entitled"] = out["contract_status"] == "active"
    return out


def covered_by_allowances(
    frame: pd.DataFrame, days: pd.Series, changes: pd.DataFrame | None
) -> np.ndarray:
    """True where an approved ``region_allow`` covers the row's tenant_id and region on its day
    (``days``, aligned with ``frame``)."""
    allowances = normalise_changes(changes, ["region_allow"])
    mask = np.zeros(len(frame), dtype=bool)
    if allowances.empty or frame.empty:
        return mask
    allowances["region"] = [str(p.get("region")) for p in allowances["parsed"]]
    keys = pd.DataFrame(
        {
            "tenant_id": text_series(frame["tenant_id"].astype("string")).to_numpy(),
            "region": text_series(frame["region"].astype("string")).to_numpy(),
            "day": days.to_numpy(),
            "_row": np.arange(len(frame)),
        }
    )
    keys["region"] = keys["region"].astype(object)
    pairs = keys.merge(
        allowances[["tenant_id", "region", "effective_from", "effective_until"]].astype(
            {"region": object}
        ),
        on=["tenant_id", "region"],
    )
    mask[pairs.loc[in_force(pairs, "day"), "_row"].to_numpy()] = True
    return mask


def change_days(changes: pd.DataFrame | None) -> pd.DataFrame:
    """tenant_id, day: the days an approved change began or stopped shaping a tenant's
    entitlement (a usage shift then is explained, like one on a contract change)."""
    frame = normalise_changes(changes, ENTITLEMENT_KINDS)
    ends = frame.dropna(subset=["effective_until"])
    return pd.concat(
        [
            frame[["tenant_id"]].assign(day=frame["effective_from"]),
            ends[["tenant_id"]].assign(day=ends["effective_until"] + pd.Timedelta(days=1)),
        ],
        ignore_index=True,
    )


def change_exceptions(changes: pd.DataFrame | None, as_of: date) -> pd.DataFrame:
    """Approved ``exception`` changes in force by ``as_of`` as waivers in the layout of
    exceptions.csv: id ``change #N``, approved by the approver, expiring on
    ``effective_until``."""
    frame = normalise_changes(changes, ["exception"])
    frame = frame[frame["effective_from"] <= pd.Timestamp(as_of)]
    out = pd.DataFrame(
        {
            "exception_id": [change_label(i) for i in frame["request_id"]],
            "tenant_id": frame["tenant_id"].to_numpy(),
            "check": [p.get("check") for p in frame["parsed"]],
            "subject": [p.get("subject") or "" for p in frame["parsed"]],
            "approved_by": frame["decided_by"].to_numpy(),
            "expires_on": frame["effective_until"].fillna(OPEN_ENDED).to_numpy(),
            "reason": frame["reason"].to_numpy(),
        }
    )
    return conform(out, POLICY_EXCEPTIONS)


# --- people's wording ---------------------------------------------------------------------


def describe(change: Mapping[str, Any]) -> str:
    """'change #7 (quota override approved by carol on 2026-12-07)'."""
    decided = pd.Timestamp(change["decided_at"]) if pd.notna(change.get("decided_at")) else None
    when = f" on {decided:%Y-%m-%d}" if decided is not None else ""
    kind = str(change["kind"]).replace("_", " ")
    return f"{change_label(change['request_id'])} ({kind} approved by {change['decided_by']}{when})"


def what(change: Mapping[str, Any]) -> str:
    """The change's payload for people: 'api_calls limit 200,000', 'plan pro'."""
    payload = _payload(change["payload"])
    if change["kind"] == "quota_override":
        limit = payload.get("limit")
        shown = "unlimited" if limit is None else fmt_number(float(limit))
        return f"{payload.get('metric')} limit {shown}"
    return ", ".join(f"{k} {v}" for k, v in sorted(payload.items()))


def applied_ids(text: Any) -> list[int]:
    """The request ids of an ``applied_changes`` cell (bad or missing text: none)."""
    try:
        value = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        return []
    return [int(v) for v in value] if isinstance(value, list) else []


def source_change(
    applied: Any, changes: pd.DataFrame | None, kind: str, field: str, value: str
) -> Mapping[str, Any] | None:
    """The change that decided ``value`` on a row (``applied``: its ``applied_changes``): the
    latest ``kind`` naming it in ``field``, else the latest plan or add-on change (they
    re-derive features and quotas); None when the contract alone decided."""
    ids = applied_ids(applied)
    if not ids or changes is None or changes.empty:
        return None
    chosen = changes[changes["request_id"].astype("int64").isin(ids)]
    direct = chosen[chosen["kind"] == kind]
    direct = direct[[_payload(p).get(field) == value for p in direct["payload"]]]
    derived = chosen[chosen["kind"].isin(["plan_change", "addon_add", "addon_remove"])]
    for found in (direct, derived):
        if len(found):
            return dict(found.sort_values("request_id").iloc[-1])
    return None


def override_layer(
    entitlements: pd.DataFrame, changes: pd.DataFrame, tenant_id: str, periods: Iterable[str]
) -> list[str]:
    """Lines for ``policy explain``: the changes that shaped the tenant's entitlement in each
    of ``periods`` (YYYY-MM, or a day of one), or that the contract export alone decided."""
    months = sorted({str(p)[:7] for p in periods})
    rows = entitlements[
        (entitlements["tenant_id"] == tenant_id) & entitlements["period"].isin(months)
    ]
    by_id = {int(c["request_id"]): c for c in changes.to_dict("records")}
    lines = []
    for period, applied in rows[["period", "applied_changes"]].itertuples(index=False):
        shaped = [by_id[i] for i in applied_ids(applied) if i in by_id]
        if not shaped:
            lines.append(f"{period}: none (the contract export alone decided)")
        for c in shaped:
            until = _iso_day(c["effective_until"]) or "open-ended"
            lines.append(
                f"{period}: {describe(c)}: {what(c)}, "
                f"from {_iso_day(c['effective_from'])} until {until}"
            )
    return lines


def _iso_day(value: Any) -> str | None:
    return None if pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d}"
