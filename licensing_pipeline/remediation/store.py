"""Tickets in the licensing repository: load, apply changes (with history), look up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.remediation.tables import (
    LIVE_TICKET_STATUSES,
    alert_outbox,
    remediation_tickets,
    ticket_history,
)
from licensing_pipeline.remediation.tickets import TicketChange
from licensing_pipeline.repository.tables import finding_runs

TICKET_COLUMNS = [c.name for c in remediation_tickets.columns]
# The PostgreSQL advisory lock that serialises remediation passes (any fixed 64-bit number).
SYNC_LOCK_KEY = 7_212_069_110_117_376


def lock_for_sync(con: sa.Connection) -> None:
    """Make a concurrent pass wait until this transaction ends, so it plans against what this
    one wrote: without it, two passes that read the same tickets both resolve them and write
    every history line twice."""
    if con.dialect.name == "postgresql":
        con.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SYNC_LOCK_KEY})
        return
    # SQLite: a write statement, even one that changes nothing, takes the database's write
    # lock until the transaction ends.
    con.execute(
        sa.update(remediation_tickets)
        .where(sa.false())
        .values(ticket_id=remediation_tickets.c.ticket_id)
    )


def load_tickets(con: sa.Connection | sa.Engine) -> pd.DataFrame:
    statement = sa.select(remediation_tickets).order_by(remediation_tickets.c.ticket_id)
    if isinstance(con, sa.Engine):
        with con.connect() as connection:
            rows = connection.execute(statement).mappings().all()
    else:
        rows = con.execute(statement).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=TICKET_COLUMNS)


def ticket_records(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as con:
        statement = sa.select(remediation_tickets).order_by(remediation_tickets.c.ticket_id)
        return [dict(r) for r in con.execute(statement).mappings()]


def apply_changes(con: sa.Connection, changes: Sequence[TicketChange], *, now: datetime) -> None:
    """Write the changes and one history line each, inside the caller's transaction."""
    ids: dict[str, int] = {}
    for change in changes:
        ticket_id = change.ticket_id if change.ticket_id is not None else ids.get(change.finding_id)
        if ticket_id is None:
            values = {"sink_status": "disabled", "sink_attempts": 0, **change.values}
            result = con.execute(sa.insert(remediation_tickets).values(**values))
            key = result.inserted_primary_key
            ticket_id = int(key[0]) if key is not None else _ticket_id(con, change.finding_id)
            ids[change.finding_id] = ticket_id
        elif change.values:
            con.execute(
                sa.update(remediation_tickets)
                .where(remediation_tickets.c.ticket_id == ticket_id)
                .values(**change.values)
            )
        con.execute(
            sa.insert(ticket_history).values(
                ticket_id=ticket_id,
                at=now,
                actor=change.actor,
                event=change.event,
                from_status=change.from_status,
                to_status=change.to_status,
                note=change.note,
            )
        )


def _ticket_id(con: sa.Connection, finding_id: str) -> int:
    return int(
        con.execute(
            sa.select(remediation_tickets.c.ticket_id).where(
                remediation_tickets.c.finding_id == finding_id
            )
        ).scalar_one()
    )


def find_ticket(engine: sa.Engine, reference: str) -> dict[str, Any] | None:
    """A ticket by its number, or by its finding_id."""
    reference = reference.strip().lstrip("#")
    condition = remediation_tickets.c.finding_id == reference
    if reference.isdigit():
        condition = sa.or_(condition, remediation_tickets.c.ticket_id == int(reference))
    with engine.connect() as con:
        row = con.execute(sa.select(remediation_tickets).where(condition)).mappings().first()
    return dict(row) if row else None


def history_of(engine: sa.Engine, ticket_id: int) -> list[dict[str, Any]]:
    return _rows_of_ticket(engine, ticket_history, ticket_id, ticket_history.c.history_id)


def alerts_of(engine: sa.Engine, ticket_id: int) -> list[dict[str, Any]]:
    return _rows_of_ticket(engine, alert_outbox, ticket_id, alert_outbox.c.alert_id)


def _rows_of_ticket(
    engine: sa.Engine, table: sa.Table, ticket_id: int, order: sa.Column[Any]
) -> list[dict[str, Any]]:
    """One ticket's rows of ``table``, oldest first."""
    with engine.connect() as con:
        rows = con.execute(
            sa.select(table).where(table.c.ticket_id == ticket_id).order_by(order)
        ).mappings()
        return [dict(r) for r in rows]


def latest_night(engine: sa.Engine) -> str | None:
    """The as-of day of the latest findings run: the night a digest belongs to."""
    with engine.connect() as con:
        value = con.execute(
            sa.select(finding_runs.c.as_of)
            .order_by(finding_runs.c.finished_at.desc(), finding_runs.c.run_id.desc())
            .limit(1)
        ).scalar()
    return pd.Timestamp(value).date().isoformat() if value is not None else None


# --- the external ticket system ---------------------------------------------------------------


def _exportable(stale_before: datetime) -> Any:
    return sa.and_(
        remediation_tickets.c.status.in_(LIVE_TICKET_STATUSES),
        remediation_tickets.c.external_id.is_(None),
        sa.or_(
            remediation_tickets.c.sink_status.in_(("pending", "failed", "disabled")),
            sa.and_(
                remediation_tickets.c.sink_status == "syncing",
                remediation_tickets.c.updated_at < stale_before,
            ),
        ),
    )


def tickets_to_export(engine: sa.Engine, *, stale_before: datetime) -> list[dict[str, Any]]:
    """Live tickets with no external issue yet (never sent, failed, or a stale claim)."""
    with engine.connect() as con:
        rows = con.execute(
            sa.select(remediation_tickets)
            .where(_exportable(stale_before))
            .order_by(remediation_tickets.c.ticket_id)
        ).mappings()
        return [dict(r) for r in rows]


def claim_export(
    engine: sa.Engine, ticket_id: int, *, now: datetime, stale_before: datetime
) -> bool:
    """Mark the ticket as being exported; False if another run got there first."""
    with engine.begin() as con:
        result = con.execute(
            sa.update(remediation_tickets)
            .where(remediation_tickets.c.ticket_id == ticket_id, _exportable(stale_before))
            .values(
                sink_status="syncing",
                sink_attempts=remediation_tickets.c.sink_attempts + 1,
                updated_at=now,
            )
        )
        return bool(result.rowcount)


def record_export(
    engine: sa.Engine,
    ticket_id: int,
    *,
    now: datetime,
    external_id: str | None,
    external_url: str | None,
    error: str | None,
    target: str,
    status: str,
) -> None:
    """``status``: the ticket's status the created issue shows."""
    ok = external_id is not None
    with engine.begin() as con:
        con.execute(
            sa.update(remediation_tickets)
            .where(remediation_tickets.c.ticket_id == ticket_id)
            .values(
                sink_status="synced" if ok else "failed",
                external_id=external_id,
                external_url=external_url,
                sink_error=None if ok else error,
                sink_reported_status=status if ok else None,
                updated_at=now,
            )
        )
        con.execute(
            sa.insert(ticket_history).values(
                ticket_id=ticket_id,
                at=now,
                actor="licensing-pipeline",
                event="exported" if ok else "export_failed",
                note=(f"{target}: {external_id}" if ok else f"{target}: {error}"),
            )
        )


def tickets_to_update(engine: sa.Engine) -> list[dict[str, Any]]:
    """Exported tickets whose status changed since the ticket system was last told."""
    t = remediation_tickets.c
    with engine.connect() as con:
        rows = con.execute(
            sa.select(remediation_tickets)
            .where(
                t.external_id.is_not(None),
                t.sink_status == "synced",
                t.sink_reported_status.is_distinct_from(t.status),
            )
            .order_by(t.ticket_id)
        ).mappings()
        return [dict(r) for r in rows]


def claim_update(engine: sa.Engine, ticket: dict[str, Any], *, now: datetime) -> bool:
    """Record ``ticket``'s status as told before telling it, so two runs cannot both post
    the same change; False if the ticket moved on or another run claimed it."""
    t = remediation_tickets.c
    with engine.begin() as con:
        result = con.execute(
            sa.update(remediation_tickets)
            .where(
                t.ticket_id == ticket["ticket_id"],
                t.status == ticket["status"],
                t.sink_reported_status.is_not_distinct_from(ticket["sink_reported_status"]),
            )
            .values(sink_reported_status=ticket["status"], updated_at=now)
        )
        return bool(result.rowcount)


def record_update(
    engine: sa.Engine, ticket: dict[str, Any], *, now: datetime, error: str | None, target: str
) -> None:
    """After the call: on failure the claim is given back, so the next run tells it again."""
    t = remediation_tickets.c
    told, before = ticket["status"], ticket["sink_reported_status"]
    with engine.begin() as con:
        con.execute(
            sa.update(remediation_tickets)
            .where(t.ticket_id == ticket["ticket_id"], t.sink_reported_status == told)
            .values(
                sink_error=error,
                updated_at=now,
                **({"sink_reported_status": before} if error else {}),
            )
        )
        con.execute(
            sa.insert(ticket_history).values(
                ticket_id=ticket["ticket_id"],
                at=now,
                actor="licensing-pipeline",
                event="update_failed" if error else "updated_externally",
                note=f"{target}: {error}" if error else f"{target}: now {told}",
            )
        )
