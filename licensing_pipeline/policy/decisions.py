"""Deciding severity, action and waivers for check results (pure functions)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from licensing_pipeline.policy.bundle import PolicyBundle


def decide_severity_and_action(results: pd.DataFrame, bundle: PolicyBundle) -> pd.DataFrame:
    """Add ``severity`` and ``action``: the first rule matching (check, enforcement) wins."""
    out = results.copy()
    keys = out[["check", "enforcement"]].astype(object).where(out[["check", "enforcement"]].notna())
    decided = {
        (check, enforcement): bundle.decide(check, enforcement)
        for check, enforcement in set(map(tuple, keys.itertuples(index=False, name=None)))
    }
    pairs = list(zip(keys["check"], keys["enforcement"], strict=True))
    out["severity"] = pd.array([decided[p].severity for p in pairs], dtype="string")
    out["action"] = pd.array([decided[p].action for p in pairs], dtype="string")
    return out


def waived_mask(findings: pd.DataFrame, exceptions: pd.DataFrame, as_of: date) -> pd.Series:
    """True where an exception covers the finding on as-of.

    An exception matches tenant and check; its subject matches exactly, or any subject
    when empty or ``*``. It applies while as-of is on or before ``expires_on``.
    """
    if findings.empty or exceptions.empty:
        return pd.Series(False, index=findings.index)
    valid = exceptions[
        pd.to_datetime(exceptions["expires_on"]).dt.normalize() >= pd.Timestamp(as_of)
    ]
    subjects = valid["subject"].fillna("").astype(str)
    keyed = findings[["tenant_id", "check", "subject"]].astype(str).reset_index()
    exact = keyed.merge(
        valid.loc[~subjects.isin(["", "*"]), ["tenant_id", "check", "subject"]].astype(str),
        on=["tenant_id", "check", "subject"],
    )["index"]
    wildcard = keyed.merge(
        valid.loc[subjects.isin(["", "*"]), ["tenant_id", "check"]].astype(str),
        on=["tenant_id", "check"],
    )["index"]
    return pd.Series(findings.index.isin(pd.concat([exact, wildcard])), index=findings.index)
