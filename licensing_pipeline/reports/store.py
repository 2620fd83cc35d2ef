"""The success metrics in the repository: one row per month, family, dimension and metric."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.remediation.tables import ticket_history
from licensing_pipeline.reports.tables import success_metrics

KEY = ["period", "family", "dimension", "metric"]


def metric_rows(
    movements: pd.DataFrame, response: pd.DataFrame, leak: pd.DataFrame
) -> pd.DataFrame:
    """The three tables in long form (period, family, dimension, metric, value)."""
    parts = []
    for family, frame, dimension in (
        ("contracts", movements, None),
        ("incident_response", response, "severity"),
        ("leakage", leak, "currency"),
    ):
        if frame.empty:
            continue
        ids = ["period", dimension] if dimension else ["period"]
        long = frame.melt(id_vars=ids, var_name="metric", value_name="value")
        long["dimension"] = long[dimension].astype(str) if dimension else ""
        parts.append(long.assign(family=family)[[*KEY, "value"]])
    if not parts:
        return pd.DataFrame(columns=[*KEY, "value"])
    out = pd.concat(parts, ignore_index=True)
    out["value"] = pd.to_numeric(out["value"]).astype(float)
    return out


def save_success_metrics(
    con: sa.Connection, rows: pd.DataFrame, as_of: date, computed_at: datetime
) -> int:
    """Replace the figures of the months in ``rows``; other months keep theirs."""
    periods = sorted(set(rows["period"].astype(str)))
    if not periods:
        return 0
    con.execute(sa.delete(success_metrics).where(success_metrics.c.period.in_(periods)))
    records = [
        {
            **{k: str(r[k]) for k in KEY},
            "value": None if pd.isna(r["value"]) else float(r["value"]),
            "as_of": as_of,
            "computed_at": computed_at,
        }
        for r in rows.to_dict("records")
    ]
    con.execute(sa.insert(success_metrics), records)
    return len(records)


def load_success_metrics(con: sa.Connection) -> pd.DataFrame:
    rows = con.execute(sa.select(success_metrics).order_by(*success_metrics.primary_key)).mappings()
    return pd.DataFrame([dict(r) for r in rows], columns=list(success_metrics.c.keys()))


def load_ticket_history(con: sa.Connection) -> pd.DataFrame:
    """Every ticket's status changes (ticket_id, at, to_status), oldest first."""
    columns = [ticket_history.c.ticket_id, ticket_history.c.at, ticket_history.c.to_status]
    rows = con.execute(sa.select(*columns).order_by(ticket_history.c.at)).all()
    return pd.DataFrame(rows, columns=["ticket_id", "at", "to_status"])
