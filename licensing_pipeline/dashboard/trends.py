"""The dashboard's figures over time, from the repository's tables: open findings per run by
check and by severity, revenue leakage, tickets opened and closed, time to remediation, the
data-quality pass rate and the tenants most at risk. Pure: frames in, frames out."""

from __future__ import annotations

import pandas as pd

from licensing_pipeline.contract.schemas import SEVERITIES
from licensing_pipeline.quality.report import trend
from licensing_pipeline.remediation.suggestions import billed_unit_prices, unit_price

# Risk of a tenant: its open findings weighted by severity (a critical one counts as three
# warnings, a warning as three notices).
RISK_WEIGHTS = {"critical": 9, "warning": 3, "info": 1}
TOP_RISK = 10
_BY_WEIGHT = tuple(reversed(SEVERITIES))


def run_labels(runs: pd.DataFrame) -> list[str]:
    """Each run's as-of day, with its finishing time where two runs share the day."""
    days = [str(d)[:10] for d in runs["as_of"]]
    return [
        f"{day} {str(at)[11:16]}" if days.count(day) > 1 else day
        for day, at in zip(days, runs["finished_at"], strict=True)
    ]


def open_over_runs(history: pd.DataFrame, runs: pd.DataFrame, by: str) -> pd.DataFrame:
    """Open findings after each run (``runs``: finding_runs rows, oldest first) counted by
    ``by`` (check or severity): each finding as its latest finding_history row by then says.
    A row belongs to its run (two runs can finish in the same second); rows of runs before
    those shown count from the start."""
    position = {run_id: i for i, run_id in enumerate(runs["run_id"])}
    history = history.assign(_run=history["run_id"].map(position).fillna(-1)).sort_values(
        "history_id"
    )
    counts = []
    for i in range(len(runs)):
        state = history[history["_run"] <= i].groupby("finding_id").last()
        counts.append(state[state["status"] == "open"][by].value_counts())
    frame = pd.DataFrame(counts).fillna(0).astype(int)
    frame.index = run_labels(runs)
    order = _BY_WEIGHT if by == "severity" else sorted(frame.columns)
    return frame.reindex(columns=[c for c in order if c in frame.columns])


def leakage(findings: pd.DataFrame, billing_records: pd.DataFrame) -> pd.DataFrame:
    """Revenue not billed: each open unbilled_usage finding's usage above the billed quantity
    (observed - allowed) at the billed unit price (the month's own, else the latest billed
    for the tenant and metric). ``amount`` is empty where the metric was never priced."""
    rows = findings[(findings["check"] == "unbilled_usage") & (findings["status"] == "open")]
    prices = billed_unit_prices(billing_records)
    out = []
    for f in rows.itertuples():
        price = unit_price(prices, str(f.tenant_id), str(f.subject), str(f.period))
        quantity = float(f.observed) - float(f.allowed)
        out.append(
            {
                "tenant_id": str(f.tenant_id),
                "period": str(f.period),
                "metric": str(f.subject),
                "unbilled_quantity": quantity,
                "unit_price": price[0] if price else None,
                "currency": price[1] if price else None,
                "amount": round(quantity * price[0], 2) if price else None,
            }
        )
    columns = ["tenant_id", "period", "metric", "unbilled_quantity", "unit_price", "currency"]
    return pd.DataFrame(out, columns=[*columns, "amount"])


def leakage_by_month(unbilled: pd.DataFrame) -> pd.DataFrame:
    """The priced leakage per month (rows) and currency (columns)."""
    priced = unbilled.dropna(subset=["amount"])
    if priced.empty:
        return pd.DataFrame()
    return priced.pivot_table(
        index="period", columns="currency", values="amount", aggfunc="sum", fill_value=0.0
    ).sort_index()


def tickets_by_day(tickets: pd.DataFrame) -> pd.DataFrame:
    """Tickets opened and closed on each day (UTC) that saw either."""
    opened = pd.to_datetime(tickets["opened_at"]).dt.strftime("%Y-%m-%d").value_counts()
    closed = pd.to_datetime(tickets["closed_at"].dropna()).dt.strftime("%Y-%m-%d").value_counts()
    frame = pd.DataFrame({"opened": opened, "closed": closed}).fillna(0).astype(int)
    return frame.sort_index()


def remediation_days(tickets: pd.DataFrame) -> pd.DataFrame:
    """Median days from opening to closing of the closed tickets, by severity."""
    closed = tickets.dropna(subset=["closed_at"])
    days = (
        pd.to_datetime(closed["closed_at"]) - pd.to_datetime(closed["opened_at"])
    ).dt.total_seconds() / 86400
    median = days.groupby(closed["severity"]).median()
    return pd.DataFrame(
        {"median days": [float(median[s]) for s in _BY_WEIGHT if s in median.index]},
        index=[s for s in _BY_WEIGHT if s in median.index],
    )


def pass_rate(report: pd.DataFrame) -> pd.DataFrame:
    """The share of data-quality checks that passed, per run (oldest first), in percent."""
    counts = trend(report).iloc[::-1]
    total = counts[["pass", "warn", "fail"]].sum(axis=1)
    rate = (100 * counts["pass"] / total.where(total > 0)).round(1)
    labels = [str(d)[:10] for d in counts["as_of"]]
    return pd.DataFrame({"pass rate": rate.to_numpy()}, index=labels)


def tenant_risk(findings: pd.DataFrame, top: int = TOP_RISK) -> pd.DataFrame:
    """The ``top`` tenants by risk (open findings weighted by ``RISK_WEIGHTS``), highest
    first; ties by tenant id."""
    live = findings[findings["status"] == "open"]
    risk = live["severity"].map(RISK_WEIGHTS).groupby(live["tenant_id"]).sum()
    frame = pd.DataFrame({"tenant_id": risk.index.astype(str), "risk": risk.to_numpy()})
    frame = frame.sort_values(["risk", "tenant_id"], ascending=[False, True]).head(top)
    return frame.set_index("tenant_id")


def dashboard_trends(
    *,
    history: pd.DataFrame,
    runs: pd.DataFrame,
    findings: pd.DataFrame,
    billing_records: pd.DataFrame,
    tickets: pd.DataFrame,
    quality_report: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    """Every figure the dashboard charts, by name (``runs``: finding_runs rows, oldest first)."""
    unbilled = leakage(findings, billing_records)
    return {
        "open_by_check": open_over_runs(history, runs, "check"),
        "open_by_severity": open_over_runs(history, runs, "severity"),
        "unbilled": unbilled,
        "leakage_by_month": leakage_by_month(unbilled),
        "tickets_by_day": tickets_by_day(tickets),
        "remediation_days": remediation_days(tickets),
        "pass_rate": pass_rate(quality_report),
        "tenant_risk": tenant_risk(findings),
    }
