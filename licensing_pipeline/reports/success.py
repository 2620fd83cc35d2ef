"""Success metrics of issue 19, per month: contract movements, incident response and revenue
leakage. Pure functions over the exports and the repository's rows; the asset stores them."""

from __future__ import annotations

from datetime import date

import pandas as pd

from licensing_pipeline.contract.catalog import Catalog, Package
from licensing_pipeline.remediation.suggestions import billed_unit_prices, unit_price

MOVEMENT_COLUMNS = [
    "period",
    "ended",
    "renewals",
    "renewal_rate",
    "upgrades",
    "downgrades",
    "pauses",
    "cancellations",
]
RESPONSE_COLUMNS = [
    "period",
    "severity",
    "incidents",
    "acknowledged",
    "resolved",
    "ack_median_hours",
    "ack_p90_hours",
    "resolve_median_hours",
    "resolve_p90_hours",
]
LEAKAGE_COLUMNS = [
    "period",
    "currency",
    "findings",
    "unpriced",
    "found_amount",
    "recovered_amount",
]


def _compared(before: Package, after: Package) -> float:
    """> 0 when ``after`` is the bigger plan: by price when both have one in the same
    currency, else by quota size: a plan that includes the other and more is bigger, else the
    one with fewer limited metrics (a missing limit is none), else the larger total of limits."""
    if before.price and after.price and before.price.currency == after.price.currency:
        return after.price.amount - before.price.amount
    if after.includes(before) != before.includes(after):
        return 1.0 if after.includes(before) else -1.0
    unlimited = len(before.quotas) - len(after.quotas)
    if unlimited:
        return float(unlimited)
    return sum(after.quotas.values()) - sum(before.quotas.values())


def _plan_move(catalog: Catalog, before: str, after: str) -> str | None:
    old, new = catalog.plans.get(before), catalog.plans.get(after)
    if old is None or new is None:
        return None
    size = _compared(old, new)
    return "upgrades" if size > 0 else "downgrades" if size < 0 else None


def contract_movements(contracts: pd.DataFrame, catalog: Catalog, as_of: date) -> pd.DataFrame:
    """Per month: contracts ended, renewals and renewal rate, upgrades, downgrades, pauses
    and cancellations (months up to ``as_of``).

    Each tenant's contracts are read in start order. An active contract followed by an active
    one of the same tenant starting the day after it ends is a renewal when the plan stays
    (counted in the month the first ended), an upgrade or downgrade when it changes (in the
    month the second starts). A paused or cancelled contract is a pause or cancellation in
    the month it starts, unless it follows one of its own kind. Ended: active contracts whose
    end fell in the month and was not a plan change; renewal rate = renewals / ended.
    """
    events: list[tuple[pd.Timestamp, str]] = []
    frame = contracts.assign(
        start_date=pd.to_datetime(contracts["start_date"]),
        end_date=pd.to_datetime(contracts["end_date"]),
    ).sort_values(["tenant_id", "start_date", "contract_id"])
    for _, group in frame.groupby("tenant_id", sort=False):
        rows = group.to_dict("records")
        replaced: set[int] = set()  # rows that ended by a plan change
        for i, row in enumerate(rows):
            before = rows[i - 1] if i else None
            status, start = str(row["status"]), row["start_date"]
            follows = before is not None and start == before["end_date"] + pd.Timedelta(days=1)
            prior = str(before["status"]) if before is not None and follows else None
            if status in ("paused", "cancelled") and prior != status:
                events.append((start, "pauses" if status == "paused" else "cancellations"))
            if before is None or prior != "active" or status != "active":
                continue
            if before["plan"] == row["plan"]:
                events.append((before["end_date"], "renewals"))
                continue
            replaced.add(i - 1)
            move = _plan_move(catalog, str(before["plan"]), str(row["plan"]))
            if move:
                events.append((start, move))
        events += [
            (row["end_date"], "ended")
            for i, row in enumerate(rows)
            if row["status"] == "active" and not pd.isna(row["end_date"]) and i not in replaced
        ]
    counts = pd.DataFrame(
        [(day.strftime("%Y-%m"), kind) for day, kind in events if day <= pd.Timestamp(as_of)],
        columns=["period", "kind"],
    )
    if counts.empty:
        return pd.DataFrame(columns=MOVEMENT_COLUMNS)
    out = (
        pd.crosstab(counts["period"], counts["kind"])
        .reindex(columns=MOVEMENT_COLUMNS[1:], fill_value=0)
        .rename_axis(index="period", columns=None)
        .reset_index()
    )
    out["renewal_rate"] = (out["renewals"] / out["ended"].where(out["ended"] > 0)).round(4)
    return out[MOVEMENT_COLUMNS].sort_values("period", ignore_index=True)


def _hours(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (pd.to_datetime(later) - pd.to_datetime(earlier)).dt.total_seconds() / 3600


def _first_reached(ticket_ids: pd.Series, history: pd.DataFrame, status: str) -> pd.Series:
    """For each of ``ticket_ids``, the first time its history reached ``status`` (NaT if never).

    A reindex, not ``map``: mapping through an empty datetime series (no ticket reached the
    status yet) makes pandas cast it to float, which it refuses."""
    reached = history[history["to_status"] == status]
    first = pd.to_datetime(reached["at"]).groupby(reached["ticket_id"]).min()
    values = first.reindex(ticket_ids.to_numpy()).to_numpy(dtype="datetime64[ns]")
    return pd.Series(values, index=ticket_ids.index)


def incident_response(
    tickets: pd.DataFrame, history: pd.DataFrame, findings: pd.DataFrame
) -> pd.DataFrame:
    """Per month of detection and severity: tickets, how many were acknowledged and resolved,
    and the median and 90th percentile (linear) of the hours from detection (the finding's
    ``first_detected_at``) to the first acknowledgement and to the first resolution in the
    ticket's history (a ticket closed as won't fix is neither; one resolved without an
    acknowledgement has no acknowledgement time)."""
    if tickets.empty:
        return pd.DataFrame(columns=RESPONSE_COLUMNS)
    detected = findings.set_index("finding_id")["first_detected_at"]
    frame = tickets[["ticket_id", "finding_id", "severity"]].copy()
    frame["detected"] = pd.to_datetime(frame["finding_id"].map(detected))
    frame = frame.dropna(subset=["detected"])
    resolved = _first_reached(frame["ticket_id"], history, "resolved")
    acknowledged = _first_reached(frame["ticket_id"], history, "acknowledged")
    frame["ack_hours"] = _hours(acknowledged, frame["detected"])
    frame["resolve_hours"] = _hours(resolved, frame["detected"])
    frame["period"] = frame["detected"].dt.strftime("%Y-%m")
    grouped = frame.groupby(["period", "severity"])
    out = grouped.agg(
        incidents=("ticket_id", "size"),
        acknowledged=("ack_hours", "count"),
        resolved=("resolve_hours", "count"),
        ack_median_hours=("ack_hours", "median"),
        ack_p90_hours=("ack_hours", lambda h: h.quantile(0.9)),
        resolve_median_hours=("resolve_hours", "median"),
        resolve_p90_hours=("resolve_hours", lambda h: h.quantile(0.9)),
    ).reset_index()
    hours = [c for c in RESPONSE_COLUMNS if c.endswith("_hours")]
    out[hours] = out[hours].round(2)
    return out[RESPONSE_COLUMNS].sort_values(["period", "severity"], ignore_index=True)


def leakage(findings: pd.DataFrame, billing: pd.DataFrame) -> pd.DataFrame:
    """Per usage month and currency: unbilled_usage findings, the amount they found (the
    quantity measured beyond what was billed × the billed unit price: the month's own, else
    the latest earlier one) and the part recovered: billed since (the billing records now
    hold more for that tenant, month and metric than the finding saw billed), all of it when
    the finding is resolved (billing caught up). Findings with no unit price on record are
    counted as unpriced, with no amount."""
    unbilled = findings[findings["check"] == "unbilled_usage"]
    if unbilled.empty:
        return pd.DataFrame(columns=LEAKAGE_COLUMNS)
    prices = billed_unit_prices(billing)
    billed_now = (
        billing.assign(billed_quantity=pd.to_numeric(billing["billed_quantity"]))
        .groupby(["tenant_id", "period", "metric"])["billed_quantity"]
        .sum()
        .to_dict()
    )
    rows = []
    for f in unbilled.to_dict("records"):
        tenant, metric, period = str(f["tenant_id"]), str(f["subject"]), str(f["period"])
        observed, allowed = (0.0 if pd.isna(f[k]) else float(f[k]) for k in ("observed", "allowed"))
        missing = max(observed - allowed, 0.0)
        if f["status"] == "resolved":
            recovered = missing
        else:
            later = billed_now.get((tenant, period, metric), 0.0) - allowed
            recovered = min(max(later, 0.0), missing)
        price = unit_price(prices, tenant, metric, period)
        rows.append(
            {
                "period": period,
                "currency": price[1] if price else "",
                "unpriced": price is None,
                "found_amount": missing * price[0] if price else 0.0,
                "recovered_amount": recovered * price[0] if price else 0.0,
            }
        )
    out = (
        pd.DataFrame(rows)
        .groupby(["period", "currency"])
        .agg(
            findings=("unpriced", "size"),
            unpriced=("unpriced", "sum"),
            found_amount=("found_amount", "sum"),
            recovered_amount=("recovered_amount", "sum"),
        )
        .reset_index()
    )
    out[["found_amount", "recovered_amount"]] = out[["found_amount", "recovered_amount"]].round(2)
    return out[LEAKAGE_COLUMNS].sort_values(["period", "currency"], ignore_index=True)
