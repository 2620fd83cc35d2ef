"""The alert outbox: exactly-once Slack alerts across re-ticks, retries and concurrent runs.

An alert is inserted under its unique key (kind, ref, period) in the same transaction as
the change that caused it; inserting the same key again does nothing. A poster claims a
row (pending/failed → sending) before posting and marks it sent after, so two posters
never post the same row. A claim older than ``STALE_CLAIM`` (the poster died between
posting and recording) is retried: after a crash at that exact point an alert may be
posted twice, never lost.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from licensing_pipeline.remediation.messages import Message
from licensing_pipeline.remediation.slack import NO_TOKEN, PostResult, SlackAlerts
from licensing_pipeline.remediation.tables import alert_outbox

STALE_CLAIM = timedelta(minutes=10)
RETRYABLE = ("pending", "failed")
OPERATOR_TOKEN_REJECTED = "slack_token_rejected"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class OutboxAlert:
    """One alert to post once: its key is (kind, ref, period)."""

    kind: str
    ref: str
    period: str
    channel: str
    message: Message
    ticket_id: int | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}|{self.ref}|{self.period}"


def enqueue(
    con: sa.Connection, alerts: Iterable[OutboxAlert], *, now: datetime | None = None
) -> int:
    """Insert alerts whose key is new; return how many were new. Idempotent."""
    now = now or utcnow()
    rows = [
        {
            "alert_key": a.key,
            "kind": a.kind,
            "ref": a.ref,
            "period": a.period,
            "ticket_id": a.ticket_id,
            "channel": a.channel,
            "payload": json.dumps(a.message, ensure_ascii=False, sort_keys=True),
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for a in {a.key: a for a in alerts}.values()
    ]
    if not rows:
        return 0
    dialect = con.dialect.name
    inserted = 0
    if dialect in ("sqlite", "postgresql"):
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        for row in rows:
            statement = (
                insert(alert_outbox)
                .values(**row)
                .on_conflict_do_nothing(index_elements=["alert_key"])
            )
            inserted += con.execute(statement).rowcount or 0
        return inserted
    known: set[str] = set(
        con.execute(
            sa.select(alert_outbox.c.alert_key).where(
                alert_outbox.c.alert_key.in_([r["alert_key"] for r in rows])
            )
        ).scalars()
    )
    fresh = [r for r in rows if r["alert_key"] not in known]
    if fresh:
        con.execute(sa.insert(alert_outbox), fresh)
    return len(fresh)


@dataclass
class FlushReport:
    sent: int = 0
    failed: int = 0
    not_sent: int = 0
    waiting: int = 0  # left pending because posting stopped
    fallbacks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    auth_error: str | None = None
    operator_alert_raised: bool = False

    def merge(self, other: FlushReport) -> FlushReport:
        return FlushReport(
            sent=self.sent + other.sent,
            failed=self.failed + other.failed,
            not_sent=self.not_sent + other.not_sent,
            waiting=max(self.waiting, other.waiting),
            fallbacks=[*self.fallbacks, *other.fallbacks],
            errors=[*self.errors, *other.errors],
            auth_error=self.auth_error or other.auth_error,
            operator_alert_raised=self.operator_alert_raised or other.operator_alert_raised,
        )


def _scope(keys: Sequence[str] | None) -> Any:
    return alert_outbox.c.alert_key.in_(list(keys)) if keys is not None else sa.true()


def _claimable(now: datetime) -> Any:
    return sa.or_(
        alert_outbox.c.status.in_(RETRYABLE),
        sa.and_(alert_outbox.c.status == "sending", alert_outbox.c.claimed_at < now - STALE_CLAIM),
    )


def _postable(kinds_excluded: Iterable[str] = ("operator",)) -> Any:
    return alert_outbox.c.kind.not_in(list(kinds_excluded))


def raised_token_alert(engine: sa.Engine, fingerprint: str) -> dict[str, Any] | None:
    with engine.connect() as con:
        row = (
            con.execute(
                sa.select(alert_outbox).where(
                    alert_outbox.c.kind == "operator",
                    alert_outbox.c.ref == OPERATOR_TOKEN_REJECTED,
                    alert_outbox.c.period == fingerprint,
                    alert_outbox.c.status == "raised",
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def _raise_token_alert(
    engine: sa.Engine, fingerprint: str, error: str, waiting: int, now: datetime
) -> bool:
    text = (
        f"Slack rejected SLACK_BOT_TOKEN ({error}): alert posting has stopped. "
        f"{waiting} alert(s) wait in the outbox and will be posted once a valid token is "
        "configured (check the token and the chat:write scope, then restart the code location)."
    )
    with engine.begin() as con:
        new = enqueue(
            con,
            [
                OutboxAlert(
                    kind="operator",
                    ref=OPERATOR_TOKEN_REJECTED,
                    period=fingerprint,
                    channel="",
                    message={"text": text, "blocks": []},
                )
            ],
            now=now,
        )
        con.execute(
            sa.update(alert_outbox)
            .where(
                alert_outbox.c.alert_key == f"operator|{OPERATOR_TOKEN_REJECTED}|{fingerprint}",
                alert_outbox.c.status != "raised",
            )
            .values(status="raised", last_error=text, updated_at=now)
        )
    return new > 0


def _clear_token_alerts(engine: sa.Engine, now: datetime) -> None:
    with engine.begin() as con:
        con.execute(
            sa.update(alert_outbox)
            .where(
                alert_outbox.c.kind == "operator",
                alert_outbox.c.ref == OPERATOR_TOKEN_REJECTED,
                alert_outbox.c.status == "raised",
            )
            .values(status="cleared", updated_at=now)
        )


def _count_waiting(engine: sa.Engine, keys: Sequence[str] | None) -> int:
    with engine.connect() as con:
        return int(
            con.execute(
                sa.select(sa.func.count())
                .select_from(alert_outbox)
                .where(_postable(), alert_outbox.c.status.in_(RETRYABLE), _scope(keys))
            ).scalar_one()
        )


def flush(
    engine: sa.Engine,
    slack: SlackAlerts,
    *,
    keys: Sequence[str] | None = None,
    now: datetime | None = None,
    limit: int = 500,
) -> FlushReport:
    """Post what is pending (or failed, or stale), oldest first; only ``keys`` if given."""
    now = now or utcnow()
    report = FlushReport()
    if not slack.configured:
        with engine.begin() as con:
            recorded = con.execute(
                sa.update(alert_outbox)
                .where(_postable(), alert_outbox.c.status.in_(RETRYABLE), _scope(keys))
                .values(status="not_sent", last_error=NO_TOKEN, updated_at=now)
            )
        report.not_sent = int(recorded.rowcount or 0)
        return report
    fingerprint = str(slack.fingerprint())
    if raised_token_alert(engine, fingerprint):
        report.auth_error = "Slack rejected this SLACK_BOT_TOKEN before: not posting with it"
        report.waiting = _count_waiting(engine, keys)
        return report

    with engine.connect() as con:
        candidates = con.execute(
            sa.select(alert_outbox.c.alert_id, alert_outbox.c.alert_key)
            .where(_postable(), _claimable(now), _scope(keys))
            .order_by(alert_outbox.c.alert_id)
            .limit(limit)
        ).all()
    for alert_id, alert_key in candidates:
        with engine.begin() as con:
            claimed = con.execute(
                sa.update(alert_outbox)
                .where(alert_outbox.c.alert_id == alert_id, _claimable(now))
                .values(
                    status="sending",
                    claimed_at=now,
                    attempts=alert_outbox.c.attempts + 1,
                    updated_at=now,
                )
            ).rowcount
            if not claimed:
                continue  # another poster has it
            row = (
                con.execute(sa.select(alert_outbox).where(alert_outbox.c.alert_id == alert_id))
                .mappings()
                .one()
            )
        result = slack.post(row["channel"] or None, json.loads(row["payload"]))
        done = utcnow()
        with engine.begin() as con:
            if result.ok:
                con.execute(
                    sa.update(alert_outbox)
                    .where(alert_outbox.c.alert_id == alert_id)
                    .values(
                        status="sent",
                        posted_channel=result.channel,
                        slack_ts=result.ts,
                        sent_at=done,
                        last_error=result.note,
                        updated_at=done,
                    )
                )
            else:
                con.execute(
                    sa.update(alert_outbox)
                    .where(alert_outbox.c.alert_id == alert_id)
                    .values(
                        status="pending" if result.auth_failed else "failed",
                        last_error=_failure(result),
                        updated_at=done,
                    )
                )
        if result.ok:
            report.sent += 1
            if result.note:
                report.fallbacks.append(f"{alert_key}: {result.note}")
            continue
        if result.auth_failed:
            report.auth_error = str(result.error)
            report.waiting = _count_waiting(engine, keys)
            report.operator_alert_raised = _raise_token_alert(
                engine, fingerprint, str(result.error), report.waiting, done
            )
            return report
        report.failed += 1
        report.errors.append(f"{alert_key} → {result.channel}: {_failure(result)}")
    if report.sent:
        _clear_token_alerts(engine, now)
    return report


def _failure(result: PostResult) -> str:
    if result.fell_back_from:
        return (
            f"{result.fell_back_from}: {result.fallback_reason}; "
            f"default channel {result.channel}: {result.error}"
        )
    return str(result.error)


def post_now(engine: sa.Engine, slack: SlackAlerts, alerts: Sequence[OutboxAlert]) -> FlushReport:
    """Record ``alerts`` and post just them (sensors and the CLI use this)."""
    with engine.begin() as con:
        enqueue(con, alerts)
    return flush(engine, slack, keys=[a.key for a in alerts])


def outbox_rows(engine: sa.Engine, *, kind: str | None = None) -> list[dict[str, Any]]:
    statement = sa.select(alert_outbox).order_by(alert_outbox.c.alert_id)
    if kind:
        statement = statement.where(alert_outbox.c.kind == kind)
    with engine.connect() as con:
        return [dict(r) for r in con.execute(statement).mappings()]
