"""Which alerts a ticket sync calls for (pure): the outbox makes each one happen once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from licensing_pipeline.remediation import messages
from licensing_pipeline.remediation.outbox import OutboxAlert
from licensing_pipeline.remediation.tables import LIVE_TICKET_STATUSES
from licensing_pipeline.remediation.tickets import TicketChange

RESOLUTION_SEVERITIES = ("critical", "warning")


def cycle_period(ticket: Mapping[str, Any]) -> str:
    """Finding alerts are once per opening of the ticket: a recurrence alerts again."""
    return f"cycle-{int(ticket['cycle'])}"


def critical_alerts(tickets: Sequence[Mapping[str, Any]], *, dagster_url: str) -> list[OutboxAlert]:
    return [
        _ticket_alert("critical", t, messages.critical_alert(t, dagster_url=dagster_url))
        for t in tickets
        if t["status"] in LIVE_TICKET_STATUSES and t["severity"] == "critical"
    ]


def warning_digests(
    tickets: Sequence[Mapping[str, Any]], *, night: str, dagster_url: str
) -> list[OutboxAlert]:
    by_channel: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for t in tickets:
        if t["status"] in LIVE_TICKET_STATUSES and t["severity"] == "warning":
            by_channel[str(t["channel"])].append(t)
    return [
        OutboxAlert(
            kind="digest",
            ref=channel,
            period=night,
            channel=channel,
            message=messages.warning_digest(
                channel, channel_tickets, night=night, dagster_url=dagster_url
            ),
        )
        for channel, channel_tickets in sorted(by_channel.items())
    ]


def resolution_alert(ticket: Mapping[str, Any], *, dagster_url: str) -> OutboxAlert:
    message = messages.resolution_notice(ticket, dagster_url=dagster_url)
    return _ticket_alert("resolved", ticket, message)


def escalation_alert(ticket: Mapping[str, Any], *, today: date, dagster_url: str) -> OutboxAlert:
    message = messages.escalation_alert(ticket, today=today, dagster_url=dagster_url)
    return _ticket_alert("escalation", ticket, message, channel="escalation_channel")


def _ticket_alert(
    kind: str, ticket: Mapping[str, Any], message: messages.Message, *, channel: str = "channel"
) -> OutboxAlert:
    """An alert about one ticket, once per opening, to the channel in its column ``channel``."""
    return OutboxAlert(
        kind=kind,
        ref=str(ticket["finding_id"]),
        period=cycle_period(ticket),
        channel=str(ticket[channel]),
        message=message,
        ticket_id=int(ticket["ticket_id"]),
    )


def plan_alerts(
    tickets: Sequence[Mapping[str, Any]],
    changes: Sequence[TicketChange],
    *,
    night: str,
    today: date,
    dagster_url: str,
    resolution_severities: Sequence[str] = RESOLUTION_SEVERITIES,
) -> list[OutboxAlert]:
    """Alerts for the tickets as they are after ``changes`` were applied.

    Critical alerts and digests are planned for every live ticket on every sync: their
    keys make the repeats no-ops, and a lost or crashed sync cannot lose one.
    """
    by_finding = {str(t["finding_id"]): t for t in tickets}
    alerts = critical_alerts(tickets, dagster_url=dagster_url)
    alerts += warning_digests(tickets, night=night, dagster_url=dagster_url)
    for change in changes:
        ticket = by_finding.get(change.finding_id)
        if ticket is None:
            continue
        if change.event in ("resolved", "wont_fix"):
            if ticket["severity"] in resolution_severities:
                alerts.append(resolution_alert(ticket, dagster_url=dagster_url))
        elif change.event == "escalated":
            alerts.append(escalation_alert(ticket, today=today, dagster_url=dagster_url))
    return alerts
