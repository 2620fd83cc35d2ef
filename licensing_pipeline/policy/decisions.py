"""Deciding severity, action and waivers for check results (pure functions over frames).

For every check result: the facts the rules look at (enforcement, segment, jurisdiction,
ratio, consecutive periods), the rule that fires (highest priority among the matching
ones, else the bundle's fallback), the action after grace and escalation, and whether an
exception waives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from licensing_pipeline.compliance.fingerprint import KEY, fingerprints
from licensing_pipeline.contract.schemas import (
    ACTIONS,
    CHECK_RESULTS,
    POLICY_EVALUATIONS,
    TENANTS,
    conform,
    empty_frame,
)
from licensing_pipeline.policy.bundle import (
    FALLBACK_RULE_ID,
    NO_CONTRACT,
    Facts,
    PolicyBundle,
    Rule,
)

SERIES_KEY = ["tenant_id", "check", "subject"]
# A finding's history counts toward a streak unless it was resolved (no longer found).
STREAK_STATUSES = ("open", "waived")


# --- facts --------------------------------------------------------------------------------


def period_ordinal(periods: pd.Series) -> pd.DataFrame:
    """(granularity, ordinal) per period: months 'YYYY-MM' and days 'YYYY-MM-DD' count apart."""
    text = periods.astype("string").fillna("")
    out = pd.DataFrame(index=periods.index)
    out["granularity"] = np.where(text.str.len() == 10, "day", "month")
    months = pd.to_datetime(text.where(text.str.len() == 7) + "-01", errors="coerce")
    days = pd.to_datetime(text.where(text.str.len() == 10), errors="coerce")
    month_ordinal = months.dt.year * 12 + months.dt.month - 1
    day_ordinal = (days - pd.Timestamp("1970-01-01")).dt.days
    out["ordinal"] = month_ordinal.fillna(day_ordinal).astype("Int64")
    return out


def consecutive_periods(current: pd.DataFrame, history: pd.DataFrame | None) -> pd.Series:
    """How many consecutive periods, ending with each current row's, the breach has lasted.

    A breach is a (tenant, check, subject) found in a period: tonight (``current``) or in
    the repository's history (open or waived findings of earlier runs). The first period of
    a breach counts 1; a gap of one period starts over.
    """
    if current.empty:
        return pd.Series(pd.array([], dtype="Int64"), index=current.index)
    columns = [*SERIES_KEY, "period"]
    frames = [current[columns].astype("string")]
    if history is not None and len(history):
        earlier = history[history["status"].isin(STREAK_STATUSES)]
        frames.append(earlier[columns].astype("string"))
    seen = pd.concat(frames, ignore_index=True).drop_duplicates()
    seen = pd.concat([seen, period_ordinal(seen["period"])], axis=1).dropna(subset=["ordinal"])
    group = [*SERIES_KEY, "granularity"]
    seen = seen.sort_values([*group, "ordinal"], ignore_index=True)
    same_series = (seen[group] == seen[group].shift()).all(axis=1).to_numpy(dtype=bool)
    ordinal = seen["ordinal"].astype("int64").to_numpy()
    step = np.diff(ordinal, prepend=ordinal[:1] - 2) if len(ordinal) else ordinal
    starts = ~(same_series & (step == 1))
    seen["run"] = np.cumsum(starts)
    seen["streak"] = seen.groupby("run").cumcount() + 1
    counted = (
        current[columns]
        .astype("string")
        .merge(seen[[*columns, "streak"]], on=columns, how="left")["streak"]
    )
    return pd.Series(counted.fillna(1).astype("Int64").to_numpy(), index=current.index)


def ratio_of(observed: pd.Series, allowed: pd.Series) -> pd.Series:
    """observed / allowed; inf when allowed is 0 and observed > 0, 0 when both are 0."""
    obs = observed.astype("float64")
    alw = allowed.astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = obs / alw
    ratio = ratio.where(~((alw == 0) & (obs > 0)), np.inf)
    ratio = ratio.where(~((alw == 0) & (obs == 0)), 0.0)
    return ratio


def tenant_facts(tenants: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    """tenant_id → segment (lower case) and jurisdiction of its home region (upper case)."""
    tenants = tenants if len(tenants) else empty_frame(TENANTS)
    out = tenants[["tenant_id", "segment", "home_region"]].astype("string").copy()
    out = out.drop_duplicates("tenant_id")
    regions = (
        catalog.loc[catalog["kind"] == "region", ["name", "jurisdiction"]].astype("string")
        if len(catalog) and "kind" in catalog
        else pd.DataFrame({"name": [], "jurisdiction": []}, dtype="string")
    )
    out = out.merge(regions, left_on="home_region", right_on="name", how="left")
    out["segment"] = out["segment"].str.strip().str.lower().replace("", pd.NA)
    out["jurisdiction"] = out["jurisdiction"].str.strip().str.upper().replace("", pd.NA)
    return out[["tenant_id", "segment", "jurisdiction"]]


# --- rules --------------------------------------------------------------------------------


def rule_mask(rule: Rule, facts: pd.DataFrame) -> np.ndarray:
    """Which rows the rule matches; ``facts`` has check, enforcement, segment, jurisdiction,
    ratio, consecutive_periods (as built by ``evaluate_policy``)."""
    mask = np.array(facts["check"].isin(rule.checks), dtype=bool)
    if rule.enforcement is not None:
        enforcement = facts["enforcement"].fillna(NO_CONTRACT)
        mask = mask & np.array(enforcement.isin(rule.enforcement), dtype=bool)
    if rule.segments is not None:
        segment = facts["segment"].fillna("").str.lower()
        mask = mask & np.array(segment.isin(rule.segments), dtype=bool)
    if rule.jurisdictions is not None:
        jurisdiction = facts["jurisdiction"].fillna("").str.upper()
        mask = mask & np.array(jurisdiction.isin(rule.jurisdictions), dtype=bool)
    for name, bounds in (("ratio", rule.ratio), ("consecutive_periods", rule.consecutive_periods)):
        if bounds is None:
            continue
        values = np.array(facts[name].astype("float64"), dtype="float64")
        inside = ~np.isnan(values)
        if bounds.at_least is not None:
            inside &= values >= bounds.at_least
        if bounds.below is not None:
            inside &= values < bounds.below
        mask = mask & inside
    return mask


def fire_rules(facts: pd.DataFrame, bundle: PolicyBundle) -> pd.Series:
    """The id of the rule that fires per row: highest priority among matches, else fallback."""
    if facts.empty or not bundle.rules:
        return pd.Series(FALLBACK_RULE_ID, index=facts.index, dtype="string")
    matches = np.column_stack([rule_mask(rule, facts) for rule in bundle.rules])
    priorities = np.array([rule.priority for rule in bundle.rules], dtype="float64")
    scores = np.where(matches, priorities, -np.inf)
    best = scores.argmax(axis=1)  # the first of equal priorities (validation forbids ties)
    ids = np.array([rule.id for rule in bundle.rules], dtype=object)[best]
    ids = np.where(matches.any(axis=1), ids, FALLBACK_RULE_ID)
    return pd.Series(ids, index=facts.index, dtype="string")


def graduate(
    rule_action: pd.Series,
    streak: pd.Series,
    grace: pd.Series,
    every: pd.Series,
    cap: pd.Series,
) -> pd.DataFrame:
    """Action after grace and escalation, one step up the ladder per ``every`` periods.

    Within the first ``grace`` periods of a breach the action is ``notify``. After it, the
    rule's action applies and, when ``every`` > 0, rises one step per ``every`` further
    consecutive periods, never above ``cap`` (nor below the rule's own action).
    """
    base = rule_action.map(ACTIONS.index).astype("int64").to_numpy()
    top = cap.map(ACTIONS.index).astype("int64").to_numpy()
    periods = streak.astype("int64").to_numpy()
    grace_n = grace.astype("int64").to_numpy()
    every_n = every.astype("int64").to_numpy()
    past_grace = periods - grace_n
    in_grace = (grace_n > 0) & (past_grace <= 0)
    steps = np.where(every_n > 0, (past_grace - 1) // np.maximum(every_n, 1), 0)
    steps = np.clip(steps, 0, None)
    escalated = np.maximum(base, np.minimum(base + steps, top))
    final = np.where(in_grace, ACTIONS.index("notify"), escalated)
    return pd.DataFrame(
        {
            "action": pd.array([ACTIONS[i] for i in final], dtype="string"),
            "escalation_steps": pd.array(np.where(in_grace, 0, escalated - base), dtype="Int64"),
            "in_grace": pd.array(in_grace, dtype="boolean"),
        },
        index=rule_action.index,
    )


# --- exceptions ---------------------------------------------------------------------------


def usable_exceptions(exceptions: pd.DataFrame) -> pd.DataFrame:
    """Exceptions that can waive anything: a named approver and an expiry date."""
    if exceptions.empty:
        return exceptions
    approver = exceptions["approved_by"].astype("string").fillna("").str.strip()
    return exceptions[(approver != "") & exceptions["expires_on"].notna()]


def matching_exceptions(findings: pd.DataFrame, exceptions: pd.DataFrame, as_of: date) -> pd.Series:
    """The id of the exception that covers each finding on as-of (<NA>: none).

    An exception matches tenant and check; its subject matches exactly, or any subject when
    empty or ``*``. It applies while as-of is on or before ``expires_on`` (so it stops on
    the day after), and only with a named approver. An exact subject wins over a wildcard,
    then the latest expiry.
    """
    none = pd.Series(pd.NA, index=findings.index, dtype="string")
    exceptions = usable_exceptions(exceptions)
    if findings.empty or exceptions.empty:
        return none
    valid = exceptions[
        pd.to_datetime(exceptions["expires_on"]).dt.normalize() >= pd.Timestamp(as_of)
    ].copy()
    valid["subject"] = valid["subject"].astype("string").fillna("").str.strip()
    valid["wildcard"] = valid["subject"].isin(["", "*"])
    keyed = findings[["tenant_id", "check", "subject"]].astype(str).reset_index()
    keep = ["exception_id", "expires_on", "wildcard"]
    exact = keyed.merge(
        valid.loc[~valid["wildcard"], ["tenant_id", "check", "subject", *keep]].astype(
            {"tenant_id": str, "check": str, "subject": str}
        ),
        on=["tenant_id", "check", "subject"],
    )
    wildcard = keyed.merge(
        valid.loc[valid["wildcard"], ["tenant_id", "check", *keep]].astype(
            {"tenant_id": str, "check": str}
        ),
        on=["tenant_id", "check"],
    )
    both = pd.concat([exact, wildcard], ignore_index=True)
    if both.empty:
        return none
    best = both.sort_values(
        ["index", "wildcard", "expires_on", "exception_id"], ascending=[True, True, False, True]
    ).drop_duplicates("index")
    out = none.copy()
    out.loc[best["index"].to_numpy()] = best["exception_id"].astype("string").to_numpy()
    return out


def waived_mask(findings: pd.DataFrame, exceptions: pd.DataFrame, as_of: date) -> pd.Series:
    """True where an exception covers the finding on as-of (see ``matching_exceptions``)."""
    return matching_exceptions(findings, exceptions, as_of).notna()


# --- evaluation ---------------------------------------------------------------------------


def combine_results(check_results: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The check families' results as one CHECK_RESULTS frame, one row per finding key."""
    frames = [conform(f, CHECK_RESULTS) for f in check_results if len(f)]
    if not frames:
        return empty_frame(CHECK_RESULTS)
    results = pd.concat(frames, ignore_index=True)
    return results.drop_duplicates(subset=KEY, keep="first").reset_index(drop=True)


def _reason(
    rule: Rule, bundle: PolicyBundle, streak: int, in_grace: bool, steps: int, exception: object
) -> str:
    """Internal text: which rule fired and what changed its action. Never shown to customers."""
    if rule.id == FALLBACK_RULE_ID:
        text = f"no rule matched; fallback of policy {bundle.version}"
    else:
        met = ", ".join(f"{name} {value}" for name, value in rule.conditions())
        text = f"rule {rule.id} (priority {rule.priority}; {met})"
    text += f"; period {int(streak)} of the breach"
    if bool(in_grace):
        text += f", within {rule.grace_periods} grace period(s): notify instead of {rule.action}"
    elif int(steps):
        text += (
            f", escalated {int(steps)} step(s) from {rule.action} "
            f"(every {rule.escalate_every}, up to {rule.escalate_up_to})"
        )
    if not pd.isna(exception):
        text += f"; waived by exception {exception}"
    return text


def evaluate_policy(
    results: pd.DataFrame,
    bundle: PolicyBundle,
    *,
    exceptions: pd.DataFrame,
    as_of: date,
    tenants: pd.DataFrame | None = None,
    catalog: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    catalog_version: str = "",
) -> pd.DataFrame:
    """Every check result with its decision: a ``POLICY_EVALUATIONS`` frame.

    ``results`` are CHECK_RESULTS rows (one per tenant, check, subject, period);
    ``history`` the repository's finding records, for consecutive periods.
    """
    if results.empty:
        return empty_frame(POLICY_EVALUATIONS)
    out = results.reset_index(drop=True).copy()
    facts = tenant_facts(
        tenants if tenants is not None else empty_frame(TENANTS),
        catalog if catalog is not None else pd.DataFrame(),
    )
    out = out.merge(facts, on="tenant_id", how="left")
    out["ratio"] = ratio_of(out["observed"], out["allowed"])
    out["consecutive_periods"] = consecutive_periods(out, history)
    out["rule_id"] = fire_rules(out, bundle)
    rules = {rule_id: bundle.rule(rule_id) for rule_id in out["rule_id"].unique()}
    chosen = out["rule_id"].map(rules)
    out["severity"] = chosen.map(lambda r: r.severity).astype("string")
    out["rule_action"] = chosen.map(lambda r: r.action).astype("string")
    graduated = graduate(
        out["rule_action"],
        out["consecutive_periods"],
        chosen.map(lambda r: r.grace_periods),
        chosen.map(lambda r: r.escalate_every),
        chosen.map(lambda r: r.escalate_up_to),
    )
    out[["action", "escalation_steps", "in_grace"]] = graduated
    out["exception_id"] = matching_exceptions(out, exceptions, as_of)
    out["status"] = np.where(out["exception_id"].notna(), "waived", "open")
    out["policy_version"] = bundle.version
    out["policy_hash"] = bundle.content_hash
    out["catalog_version"] = catalog_version
    out["as_of"] = pd.Timestamp(as_of)
    out["finding_id"] = fingerprints(out)
    out["reason"] = [
        _reason(rules[rule_id], bundle, streak, grace, steps, exception)
        for rule_id, streak, grace, steps, exception in out[
            ["rule_id", "consecutive_periods", "in_grace", "escalation_steps", "exception_id"]
        ].itertuples(index=False)
    ]
    return conform(out, POLICY_EVALUATIONS)


def decide_severity_and_action(results: pd.DataFrame, bundle: PolicyBundle) -> pd.DataFrame:
    """``results`` with ``severity`` and ``action`` (no history, exceptions or tenant facts)."""
    decided = evaluate_policy(results, bundle, exceptions=pd.DataFrame(), as_of=date.today())
    out = results.reset_index(drop=True).copy()
    out["severity"] = decided["severity"].to_numpy()
    out["action"] = decided["action"].to_numpy()
    return out


# --- explaining ---------------------------------------------------------------------------


def facts_of(evaluation: pd.Series) -> Facts:
    enforcement = evaluation.get("enforcement")
    segment = evaluation.get("segment")
    jurisdiction = evaluation.get("jurisdiction")
    ratio = evaluation.get("ratio")
    return Facts(
        check=str(evaluation["check"]),
        enforcement=None if pd.isna(enforcement) else str(enforcement),
        segment=None if pd.isna(segment) else str(segment),
        jurisdiction=None if pd.isna(jurisdiction) else str(jurisdiction),
        ratio=float(ratio) if ratio is not None and not pd.isna(ratio) else float("nan"),
        consecutive_periods=int(evaluation.get("consecutive_periods") or 1),
    )


def explain(evaluation: pd.Series, bundle: PolicyBundle) -> list[str]:
    """Lines for a person: the facts, each rule of the check and whether it matched."""
    facts = facts_of(evaluation)
    ratio = (
        "n/a"
        if np.isnan(facts.ratio)
        else ("inf" if np.isinf(facts.ratio) else f"{facts.ratio:.4g}")
    )
    lines = [
        f"facts: enforcement={facts.enforcement or NO_CONTRACT}, "
        f"segment={facts.segment or '-'}, jurisdiction={facts.jurisdiction or '-'}, "
        f"ratio={ratio}, consecutive_periods={facts.consecutive_periods}",
    ]
    if facts.check == "usage_anomaly":
        settings = ", ".join(f"{k}={v:g}" for k, v in vars(bundle.anomaly).items())
        lines.append(f"anomaly thresholds of policy {bundle.version}: {settings}")
    fired = bundle.decide_facts(facts)
    candidates = [r for r in bundle.rules if facts.check in r.checks]
    if not candidates:
        lines.append(f"no rule of policy {bundle.version} names {facts.check}")
    for rule in candidates:
        failed = rule.failed_conditions(facts)
        mark = "FIRED " if rule.id == fired.id else ("matched" if not failed else "skipped")
        conditions = "; ".join(f"{name}: {text}" for name, text in rule.conditions())
        why = f"priority {rule.priority}" if not failed else "fails " + ", ".join(failed)
        lines.append(
            f"  [{mark}] {rule.id} ({rule.where}) {rule.severity}/{rule.action} — {conditions} — {why}"
        )
    if fired.id == FALLBACK_RULE_ID:
        lines.append(
            f"  [FIRED ] fallback ({fired.where}) {fired.severity}/{fired.action} — no rule matched"
        )
    return lines
