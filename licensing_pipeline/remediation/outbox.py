"""The alert outbox: exactly-once Slack alerts across re-ticks, retries and concurrent runs.

An alert is inserted under its unique key (kind, ref, period) in the same transaction as
the change that caused it; inserting the same key again does nothing. A poster claims a
row (pending/failed/unconfirmed → sending) before posting and marks it sent after, so two
posters never post the same row.

A post whose answer is lost (a timeout, a cut connection, a 5xx) may have reached the
channel. So each attempt is recorded before it is sent (``unconfirmed_since``, the channel)
and carries the alert's ``delivery_key`` in the message metadata; before that alert is
posted again, the channel's history since the attempt is searched for the key, and a
message found there is recorded as the delivery. The same covers a poster that died
mid-post (its claim goes stale after ``STALE_CLAIM``). If Slack will not show the history
(scopes, membership), the alert is posted again and the report says it may appear twice.

A pass never sleeps. It stops at the first 429 (and holds Slack until its Retry-After, for
every pass), at the first request Slack leaves unanswered or cannot be reached, at a
rejected token, and starts no alert after ``PASS_SECONDS``; the rest waits for the next pass.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from licensing_pipeline.remediation.messages import Message
from licensing_pipeline.remediation.slack import (
    HISTORY_SCOPES,
    NO_TOKEN,
    OUT_OF_TIME,
    Failure,
    PostResult,
    SlackAlerts,
)
from licensing_pipeline.remediation.tables import alert_outbox, delivery_holds

STALE_CLAIM = timedelta(minutes=10)
RETRYABLE = ("pending", "failed")
CLAIMABLE = (*RETRYABLE, "unconfirmed")
OPERATOR_TOKEN_REJECTED = "slack_token_rejected"
# No alert is started after this many seconds; each request gives up after the client's
# timeout (10 s), and an alert is at most two posts: a pass returns within about 50 s, inside
# the 60 s Dagster gives a sensor tick.
PASS_SECONDS = 30.0
# How far before a lost attempt its message is looked for (the clocks of this host and Slack).
LOOKUP_MARGIN = timedelta(minutes=2)
SLACK = "slack"  # the destination a 429 holds


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
    waiting: int = 0  # left queued because the pass stopped (see ``stopped``)
    unanswered: int = 0  # Slack's answer was lost: looked for in the channel next pass
    already_posted: int = 0  # found in the channel: an earlier attempt had gone through
    held_until: datetime | None = None  # Slack asked to wait (429) until then (UTC)
    stopped: str | None = None  # why the pass ended before the queue did
    fallbacks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # posted again, may appear twice
    auth_error: str | None = None
    operator_alert_raised: bool = False

    def summary(self) -> str:
        """One line of counts, for sensor ticks, logs and ``alerts flush``."""
        counted = [
            (self.already_posted, "found already posted"),
            (self.failed, "failed (retried next pass)"),
            (self.unanswered, "unanswered (looked for in Slack before a retry)"),
            (len(self.warnings), "posted again unchecked (may appear twice)"),
            (self.not_sent, "not sent: no token"),
        ]
        parts = [f"{self.sent} posted", *(f"{n} {what}" for n, what in counted if n)]
        if self.auth_error:
            parts.append(f"Slack token rejected: {self.auth_error}")
        if self.waiting:
            parts.append(f"{self.waiting} waiting" + (f": {self.stopped}" if self.stopped else ""))
        return ", ".join(parts)


def _scope(keys: Sequence[str] | None) -> Any:
    return alert_outbox.c.alert_key.in_(list(keys)) if keys is not None else sa.true()


def _claimable(now: datetime, statuses: Sequence[str] = CLAIMABLE) -> Any:
    return sa.or_(
        alert_outbox.c.status.in_(statuses),
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
                .where(_postable(), alert_outbox.c.status.in_(CLAIMABLE), _scope(keys))
            ).scalar_one()
        )


def held_until(engine: sa.Engine, destination: str = SLACK) -> datetime | None:
    with engine.connect() as con:
        value = con.execute(
            sa.select(delivery_holds.c.not_before).where(
                delivery_holds.c.destination == destination
            )
        ).scalar()
    return value if isinstance(value, datetime) else None


def _hold(engine: sa.Engine, not_before: datetime, reason: str) -> None:
    values = {"not_before": not_before, "reason": reason, "updated_at": utcnow()}
    with engine.begin() as con:
        updated = con.execute(
            sa.update(delivery_holds).where(delivery_holds.c.destination == SLACK).values(**values)
        ).rowcount
        if not updated:
            con.execute(sa.insert(delivery_holds).values(destination=SLACK, **values))


def _update(engine: sa.Engine, alert_id: int, **values: Any) -> None:
    with engine.begin() as con:
        con.execute(
            sa.update(alert_outbox)
            .where(alert_outbox.c.alert_id == alert_id)
            .values(updated_at=utcnow(), **values)
        )


def _claim(engine: sa.Engine, alert_id: int, now: datetime) -> dict[str, Any] | None:
    """The row, now ours ("sending"), with a delivery key; None if another poster has it."""
    with engine.begin() as con:
        claimed = con.execute(
            sa.update(alert_outbox)
            .where(alert_outbox.c.alert_id == alert_id, _claimable(now))
            .values(
                status="sending",
                claimed_at=now,
                attempts=alert_outbox.c.attempts + 1,
                delivery_key=sa.func.coalesce(alert_outbox.c.delivery_key, uuid.uuid4().hex),
                updated_at=now,
            )
        ).rowcount
        if not claimed:
            return None
        row = con.execute(sa.select(alert_outbox).where(alert_outbox.c.alert_id == alert_id))
        return dict(row.mappings().one())


def flush(
    engine: sa.Engine,
    slack: SlackAlerts,
    *,
    keys: Sequence[str] | None = None,
    now: datetime | None = None,
    limit: int = 500,
    budget_seconds: float = PASS_SECONDS,
    retry_failed: bool = True,
) -> FlushReport:
    """Post what is pending (or failed, unconfirmed, stale), oldest first; only ``keys`` if
    given. One pass, bounded as the module says. Without ``retry_failed``, alerts Slack
    refused wait for a pass that retries them (a remediation run, ``alerts flush``)."""
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
    hold = held_until(engine)
    if hold is not None and hold > now:
        report.held_until = hold
        report.stopped = f"Slack asked to wait until {hold:%Y-%m-%d %H:%M:%S} UTC"
        report.waiting = _count_waiting(engine, keys)
        return report

    deadline = time.monotonic() + budget_seconds
    statuses = CLAIMABLE if retry_failed else ("pending", "unconfirmed")
    with engine.connect() as con:
        alert_ids: list[int] = list(
            con.execute(
                sa.select(alert_outbox.c.alert_id)
                .where(_postable(), _claimable(now, statuses), _scope(keys))
                .order_by(alert_outbox.c.alert_id)
                .limit(limit)
            ).scalars()
        )
    for index, alert_id in enumerate(alert_ids):
        if index and time.monotonic() >= deadline:
            report.stopped = OUT_OF_TIME
            break
        row = _claim(engine, alert_id, now)
        if row is None:
            continue  # another poster has it
        stop = _deliver(engine, slack, row, report, deadline)
        if stop is not None:
            _stop(engine, report, stop, fingerprint, keys)
            break
    if report.stopped:
        report.waiting = _count_waiting(engine, keys)
    if (report.sent or report.already_posted) and not report.auth_error:
        _clear_token_alerts(engine, now)
    return report


def _deliver(
    engine: sa.Engine, slack: SlackAlerts, row: dict[str, Any], report: FlushReport, deadline: float
) -> Failure | None:
    """Deliver one claimed alert and record the outcome; a Failure stops the pass."""
    alert_id, key = int(row["alert_id"]), str(row["alert_key"])
    caution = None
    since = row["unconfirmed_since"]
    if since is not None:  # an earlier attempt may have gone through
        where = str(row["posted_channel"] or row["channel"] or slack.default_channel)
        lookup = slack.find_posted(
            where,
            str(row["delivery_key"]),
            oldest=since - LOOKUP_MARGIN,
            latest=row["searched_before"]
            or since + timedelta(seconds=slack.timeout_seconds) + LOOKUP_MARGIN,
            deadline=deadline,
        )
        if lookup.ts is not None:
            _update(
                engine,
                alert_id,
                status="sent",
                posted_channel=where,
                slack_ts=lookup.ts,
                sent_at=utcnow(),
                unconfirmed_since=None,
                searched_before=None,
                last_error="Slack's answer was lost; found in the channel, not posted again",
            )
            report.already_posted += 1
            return None
        if not (lookup.absent or lookup.cannot_check):  # cut short: go on from here next pass
            failure = lookup.failure or Failure("no answer", unanswered=True)
            _update(
                engine,
                alert_id,
                status="unconfirmed",
                searched_before=lookup.read_to or row["searched_before"],
                last_error=f"could not look in {where} yet: {failure.error}",
            )
            if failure.error != OUT_OF_TIME:
                report.errors.append(f"{key} → {where}: could not check: {failure.error}")
            return failure
        if time.monotonic() >= deadline:  # the look took the time: post next pass
            if lookup.absent:
                _update(engine, alert_id, status="pending", unconfirmed_since=None)
            else:
                _update(engine, alert_id, status="unconfirmed")
            return Failure(OUT_OF_TIME)
        if lookup.cannot_check:
            reason = lookup.failure.error if lookup.failure else "unknown"
            caution = (
                f"could not look in {where} for an earlier post whose answer was lost "
                f"({reason}; the bot needs {HISTORY_SCOPES} and to be in the channel): "
                "posted again, it may appear twice"
            )
            report.warnings.append(f"{key}: {caution}")

    def record_attempt(channel: str) -> None:
        _update(
            engine,
            alert_id,
            posted_channel=channel,
            unconfirmed_since=utcnow(),
            searched_before=None,
        )

    result = slack.post(
        row["channel"] or None,
        json.loads(row["payload"]),
        delivery_key=str(row["delivery_key"]),
        before_send=record_attempt,
    )
    if result.ok:
        _update(
            engine,
            alert_id,
            status="sent",
            posted_channel=result.channel,
            slack_ts=result.ts,
            sent_at=utcnow(),
            unconfirmed_since=None,
            last_error="; ".join(n for n in (result.note, caution) if n) or None,
        )
        report.sent += 1
        if result.note:
            report.fallbacks.append(f"{key}: {result.note}")
        return None
    if result.unanswered:
        _update(
            engine,
            alert_id,
            status="unconfirmed",
            last_error=f"no answer from Slack ({result.error}): looked for in "
            f"{result.channel} before it is posted again",
        )
        report.unanswered += 1
        report.errors.append(f"{key} → {result.channel}: no answer ({result.error})")
        return Failure(str(result.error), unanswered=True)
    held = result.auth_failed or result.retry_after is not None
    _update(
        engine,
        alert_id,
        # not posted, through no fault of the message: any pass takes it up again
        status="pending" if held or result.unreachable else "failed",
        posted_channel=None,
        unconfirmed_since=None,
        last_error=_failure(result),
    )
    if held:
        return Failure(
            str(result.error), retry_after=result.retry_after, auth_failed=result.auth_failed
        )
    report.failed += 1
    report.errors.append(f"{key} → {result.channel}: {_failure(result)}")
    return Failure(str(result.error), unreachable=True) if result.unreachable else None


def _stop(
    engine: sa.Engine,
    report: FlushReport,
    failure: Failure,
    fingerprint: str,
    keys: Sequence[str] | None,
) -> None:
    if failure.retry_after is not None:
        report.held_until = utcnow() + timedelta(seconds=failure.retry_after)
        report.stopped = f"Slack asked to wait until {report.held_until:%Y-%m-%d %H:%M:%S} UTC"
        _hold(engine, report.held_until, f"429 with Retry-After: {failure.retry_after:g}")
    elif failure.auth_failed:
        report.auth_error = failure.error
        report.stopped = "Slack rejected the token"
        report.waiting = _count_waiting(engine, keys)
        report.operator_alert_raised = _raise_token_alert(
            engine, fingerprint, failure.error, report.waiting, utcnow()
        )
    elif failure.unreachable:
        report.stopped = f"Slack could not be reached ({failure.error})"
    elif failure.error == OUT_OF_TIME:
        report.stopped = OUT_OF_TIME
    else:
        report.stopped = f"Slack did not answer ({failure.error})"


def _failure(result: PostResult) -> str:
    if result.fell_back_from:
        return (
            f"{result.fell_back_from}: {result.fallback_reason}; "
            f"default channel {result.channel}: {result.error}"
        )
    return str(result.error)


def queued(engine: sa.Engine, *, now: datetime | None = None) -> dict[str, int]:
    """What a pass would take up, by status (a claim only once stale)."""
    now = now or utcnow()
    with engine.connect() as con:
        rows = con.execute(
            sa.select(alert_outbox.c.status, sa.func.count().label("n"))
            .where(_postable(), _claimable(now))
            .group_by(alert_outbox.c.status)
        ).all()
    return {str(row.status): int(row.n) for row in rows}


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
