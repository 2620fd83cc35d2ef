"""Contract status: usage in a month with no active contract in force."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from licensing_pipeline.compliance.common import (
    as_day,
    check_results,
    fmt_number,
    monthly_events,
)
from licensing_pipeline.compliance.entitlements import normalise_entitlements

CHECKS = ("inactive_contract_usage",)


def _explain(status: str, contract_id: Any, events: float, period: str, day: Any) -> str:
    verb = "was" if events == 1 else "were"
    used = (
        f"{fmt_number(events)} usage event{'s' if events != 1 else ''} in {period} {verb} recorded"
    )
    if status in ("paused", "cancelled"):
        return f"{used} while contract {contract_id} was {status}."
    if status == "expired":
        on = f" on {pd.Timestamp(day).date()}" if not pd.isna(day) else ""
        return f"{used} after your contracts had ended (expired): none was in force{on}."
    return f"{used} but there is no contract on file for this account (none)."


def contract_status_compliance(
    entitlements: pd.DataFrame, activity: pd.DataFrame, as_of: date | None = None
) -> pd.DataFrame:
    """inactive_contract_usage per (tenant, month) with usage and no active contract in force.

    ``activity`` is tenant_activity_daily (every event, whatever its type). A tenant the
    entitlements do not know has no contract at all, which is reported as ``none``; days
    after ``as_of`` (when given) are outside the run.
    """
    usage = monthly_events(activity, through=as_day(as_of) if as_of is not None else None)
    known = normalise_entitlements(entitlements).drop_duplicates(["tenant_id", "period"])
    usage = usage.merge(
        known[
            [
                "tenant_id",
                "period",
                "contract_id",
                "contract_status",
                "entitled",
                "enforcement",
                "resolved_on",
            ]
        ],
        on=["tenant_id", "period"],
        how="left",
    )
    usage["contract_status"] = usage["contract_status"].fillna("none")
    found = usage[~usage["entitled"].fillna(False).astype(bool) & (usage["events"] > 0)].copy()
    if found.empty:
        return check_results(found)
    found["check"] = "inactive_contract_usage"
    found["subject"] = "contract"
    found["observed"] = found["events"]
    found["allowed"] = 0.0
    found["details"] = [
        _explain(str(status), contract_id, events, period, day)
        for status, contract_id, events, period, day in found[
            ["contract_status", "contract_id", "events", "period", "resolved_on"]
        ].itertuples(index=False)
    ]
    return check_results(found)
