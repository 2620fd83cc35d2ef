"""Ticket lifecycle, routing and SLA: pure functions from findings to ticket changes.

A ticket follows one finding for life (keyed by ``finding_id``): ``open`` →
``acknowledged`` → ``resolved`` | ``wont_fix``. The pipeline opens it, refreshes it,
resolves it when the finding resolves (or is waived), reopens it when the finding comes
back, and escalates it once per opening when it is overdue. People acknowledge it and
resolve it (or decide ``wont_fix``) from the CLI. Nothing here touches a database.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from licensing_pipeline.contract.errors import ContractError
from licensing_pipeline.remediation.suggestions import Suggestion, with_suggestion
from licensing_pipeline.remediation.tables import LIVE_TICKET_STATUSES

PIPELINE_ACTOR = "licensing-pipeline"
TICKETED_SEVERITIES = ("critical", "warning")
UNASSIGNED = "unassigned"
WILDCARD = "*"


# --- SLA --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sla:
    """Days from opening to due date, per severity (LICENSING_SLA_<SEVERITY>_DAYS)."""

    critical_days: int = 3
    warning_days: int = 14
    info_days: int = 30

    def days(self, severity: str) -> int:
        return {
            "critical": self.critical_days,
            "warning": self.warning_days,
        }.get(severity, self.info_days)

    def due(self, opened: date, severity: str) -> date:
        return opened + timedelta(days=self.days(severity))


# --- routing ----------------------------------------------------------------------------------

ROUTING_COLUMNS = ("check", "segment", "owner", "slack_channel", "escalation_channel")


@dataclass(frozen=True)
class RoutingRule:
    check: str = WILDCARD
    segment: str = WILDCARD
    owner: str = ""
    slack_channel: str = ""
    escalation_channel: str = ""

    @property
    def catch_all(self) -> bool:
        return self.check == WILDCARD and self.segment == WILDCARD

    def matches(self, check: str, segment: str) -> bool:
        return self.check in (WILDCARD, check) and self.segment in (WILDCARD, segment)

    def rank(self) -> int:
        """More specific first: (check, segment), (check, *), (*, segment), (*, *)."""
        return (0 if self.check != WILDCARD else 2) + (0 if self.segment != WILDCARD else 1)


@dataclass(frozen=True)
class Route:
    owner: str
    channel: str
    escalation_channel: str


@dataclass(frozen=True)
class Routing:
    """Who owns a ticket and where its alerts go.

    A rule naming the check and/or the segment beats the tenant's own
    ``compliance_owner`` / ``slack_channel`` (tenants.csv), which beat a catch-all rule
    (``*``, ``*``), which beats the defaults.
    """

    rules: tuple[RoutingRule, ...] = ()
    default_channel: str = "#licensing-compliance"
    escalation_channel: str = "#licensing-escalations"

    def route(
        self, check: str, segment: str, tenant_owner: str = "", tenant_channel: str = ""
    ) -> Route:
        matching = sorted(
            (r for r in self.rules if r.matches(check, segment)), key=lambda r: r.rank()
        )
        specific = [r for r in matching if not r.catch_all]
        fallback = [r for r in matching if r.catch_all]

        def pick(attribute: str, tenant_value: str, default: str) -> str:
            for rule in specific:
                if getattr(rule, attribute):
                    return str(getattr(rule, attribute))
            if tenant_value:
                return tenant_value
            for rule in fallback:
                if getattr(rule, attribute):
                    return str(getattr(rule, attribute))
            return default

        return Route(
            owner=pick("owner", tenant_owner, UNASSIGNED),
            channel=pick("slack_channel", tenant_channel, self.default_channel),
            escalation_channel=pick("escalation_channel", "", self.escalation_channel),
        )


def load_routing_rules(path: Path) -> tuple[RoutingRule, ...]:
    """Read the routing CSV (header: check,segment,owner,slack_channel,escalation_channel)."""
    if not path.is_file():
        raise ContractError("routing table not found", file=str(path))
    rules: list[RoutingRule] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in ("check", "segment") if c not in header]
        if missing:
            raise ContractError(
                f"the header must name {', '.join(ROUTING_COLUMNS)}",
                file=str(path),
                line=1,
                field=missing[0],
            )
        for raw in reader:
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            if not any(row.values()):
                continue
            rule = RoutingRule(
                check=row.get("check") or WILDCARD,
                segment=row.get("segment") or WILDCARD,
                owner=row.get("owner", ""),
                slack_channel=row.get("slack_channel", ""),
                escalation_channel=row.get("escalation_channel", ""),
            )
            if not (rule.owner or rule.slack_channel or rule.escalation_channel):
                raise ContractError(
                    "a routing rule needs an owner, a slack_channel or an escalation_channel",
                    file=str(path),
                    line=reader.line_num,
                    field="owner",
                )
            rules.append(rule)
    return tuple(rules)


# --- planning ---------------------------------------------------------------------------------


@dataclass
class TicketChange:
    """One change to one ticket, and the history line that records it.

    ``ticket_id`` is None for a ticket to be created; ``values`` are the columns to set.
    """

    finding_id: str
    ticket_id: int | None
    event: str
    values: dict[str, Any]
    from_status: str | None = None
    to_status: str | None = None
    note: str = ""
    actor: str = PIPELINE_ACTOR


@dataclass
class SyncPlan:
    changes: list[TicketChange] = field(default_factory=list)

    def count(self, event: str) -> int:
        return sum(1 for c in self.changes if c.event == event)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float) and pd.isna(value):
        return ""
    return str(value)


def _number(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    return [{str(k): v for k, v in r.items()} for r in frame.astype(object).to_dict("records")]


def _tenant_index(tenants: pd.DataFrame | None) -> dict[str, dict[str, str]]:
    return {
        _text(r.get("tenant_id")): {k: _text(v) for k, v in r.items()} for r in _records(tenants)
    }


def _snapshot(
    finding: Mapping[str, Any], route: Route, suggestion: Suggestion | None = None
) -> dict[str, Any]:
    return {
        "tenant_id": _text(finding["tenant_id"]),
        "check": _text(finding["check"]),
        "subject": _text(finding["subject"]),
        "period": _text(finding["period"]),
        "severity": _text(finding["severity"]),
        "action": _text(finding["action"]),
        "observed": _number(finding.get("observed")),
        "allowed": _number(finding.get("allowed")),
        "details": with_suggestion(_text(finding.get("details")), suggestion),
        "owner": route.owner,
        "channel": route.channel,
        "escalation_channel": route.escalation_channel,
    }


def _why_closed(finding: Mapping[str, Any] | None) -> str:
    if finding is None:
        return "finding no longer in the licensing repository"
    status = _text(finding.get("status"))
    if status == "resolved":
        last = finding.get("last_detected_at")
        when = f" (last detected {pd.Timestamp(last):%Y-%m-%d})" if last is not None else ""
        return f"finding resolved: no longer detected by the nightly run{when}"
    if status == "waived":
        return "finding waived by an approved policy exception"
    return f"severity lowered to {_text(finding.get('severity'))}: no ticket needed"


def plan_ticket_sync(
    tickets: pd.DataFrame,
    findings: pd.DataFrame,
    tenants: pd.DataFrame | None,
    *,
    routing: Routing,
    sla: Sla,
    now: datetime,
    ticketed_severities: Sequence[str] = TICKETED_SEVERITIES,
    suggestions: Mapping[str, Suggestion] | None = None,
) -> SyncPlan:
    """What tonight's findings mean for the tickets: open, reopen or update the ticket of
    every finding that wants one, resolve the live tickets whose finding no longer does,
    escalate the overdue rest.

    ``tickets`` has the ``remediation_tickets`` columns; ``findings`` the contract's
    ``compliance_findings`` columns (resolved ones included); ``tenants`` the contract's
    tenants columns. ``now`` is naive UTC. ``suggestions`` (finding_id → suggested next
    step) are written into the tickets' details after the finding's own.
    """
    tenant_rows = _tenant_index(tenants)
    by_finding = {_text(f["finding_id"]): f for f in _records(findings)}
    existing = {_text(t["finding_id"]): t for t in _records(tickets)}

    plan = SyncPlan()
    for finding_id, finding in by_finding.items():
        if not _wants_ticket(finding, ticketed_severities):
            continue
        route = _route(finding, routing, tenant_rows)
        snapshot = _snapshot(finding, route, (suggestions or {}).get(finding_id))
        ticket = existing.get(finding_id)
        if ticket is None:
            plan.changes.append(_opened(finding_id, snapshot, sla=sla, now=now))
        elif _text(ticket["status"]) == "resolved":
            plan.changes.append(_reopened(ticket, snapshot, sla=sla, now=now))
        else:
            plan.changes.extend(_updated(ticket, snapshot, sla=sla, now=now))

    live_tickets = {f: t for f, t in existing.items() if _text(t["status"]) in LIVE_TICKET_STATUSES}
    for finding_id, ticket in live_tickets.items():
        seen = by_finding.get(finding_id)
        if seen is None or not _wants_ticket(seen, ticketed_severities):
            plan.changes.append(_resolved(ticket, seen, now=now))

    closing = {c.finding_id for c in plan.changes if c.event == "resolved"}
    for finding_id, ticket in live_tickets.items():
        if finding_id not in closing and _overdue_unescalated(ticket, now.date()):
            plan.changes.append(_escalated(ticket, now=now))
    return plan


def _wants_ticket(finding: Mapping[str, Any], ticketed_severities: Sequence[str]) -> bool:
    return (
        _text(finding.get("status")) == "open"
        and _text(finding.get("severity")) in ticketed_severities
    )


def _route(
    finding: Mapping[str, Any], routing: Routing, tenant_rows: Mapping[str, Mapping[str, str]]
) -> Route:
    tenant = tenant_rows.get(_text(finding["tenant_id"]), {})
    return routing.route(
        _text(finding["check"]),
        tenant.get("segment", ""),
        tenant.get("compliance_owner", ""),
        tenant.get("slack_channel", ""),
    )


def _change(
    ticket: Mapping[str, Any], event: str, values: dict[str, Any], *, now: datetime, **rest: Any
) -> TicketChange:
    """A change to an existing ticket; every one stamps ``updated_at``."""
    return TicketChange(
        finding_id=_text(ticket["finding_id"]),
        ticket_id=int(ticket["ticket_id"]),
        event=event,
        values={**values, "updated_at": now},
        **rest,
    )


def _transition(
    ticket: Mapping[str, Any], event: str, values: dict[str, Any], *, now: datetime, note: str
) -> TicketChange:
    """A change of status: from the ticket's to the one in ``values``."""
    return _change(
        ticket,
        event,
        values,
        now=now,
        from_status=_text(ticket["status"]),
        to_status=values["status"],
        note=note,
    )


def _opened(
    finding_id: str, snapshot: Mapping[str, Any], *, sla: Sla, now: datetime
) -> TicketChange:
    return TicketChange(
        finding_id=finding_id,
        ticket_id=None,
        event="opened",
        values={
            "finding_id": finding_id,
            **snapshot,
            "status": "open",
            "status_reason": "finding detected",
            "cycle": 1,
            "opened_at": now,
            "due_date": sla.due(now.date(), snapshot["severity"]),
            "updated_at": now,
        },
        to_status="open",
        note=f"{snapshot['severity']} finding detected; owner {snapshot['owner']}",
    )


def _reopened(
    ticket: Mapping[str, Any], snapshot: Mapping[str, Any], *, sla: Sla, now: datetime
) -> TicketChange:
    cycle = int(ticket["cycle"]) + 1
    values = {
        **snapshot,
        "status": "open",
        "status_reason": "finding detected again",
        "cycle": cycle,
        "opened_at": now,
        "due_date": sla.due(now.date(), snapshot["severity"]),
        "acknowledged_at": None,
        "closed_at": None,
    }
    return _transition(
        ticket, "reopened", values, now=now, note=f"finding detected again (opening {cycle})"
    )


def _updated(
    ticket: Mapping[str, Any], snapshot: Mapping[str, Any], *, sla: Sla, now: datetime
) -> list[TicketChange]:
    """A live ticket's new figures, severity (and so due date) and routing, one change each."""
    changes: list[TicketChange] = []
    changed = {
        k: v
        for k, v in snapshot.items()
        if k not in ("owner", "channel", "escalation_channel", "severity")
        and _differs(ticket.get(k), v)
    }
    if changed:
        note = "figures updated: " + ", ".join(sorted(changed))
        changes.append(_change(ticket, "refreshed", changed, now=now, note=note))
    old_severity, severity = _text(ticket["severity"]), snapshot["severity"]
    if old_severity != severity:
        opened = pd.Timestamp(ticket["opened_at"]).date()
        values = {"severity": severity, "due_date": sla.due(opened, severity)}
        note = f"severity {old_severity} → {severity}"
        changes.append(_change(ticket, "severity_changed", values, now=now, note=note))
    rerouted = {
        k: snapshot[k]
        for k in ("owner", "channel", "escalation_channel")
        if _text(ticket.get(k)) != snapshot[k]
    }
    if rerouted:
        note = ", ".join(f"{k} {_text(ticket.get(k))} → {v}" for k, v in rerouted.items())
        changes.append(_change(ticket, "reassigned", rerouted, now=now, note=note))
    return changes


def _resolved(
    ticket: Mapping[str, Any], finding: Mapping[str, Any] | None, *, now: datetime
) -> TicketChange:
    reason = _why_closed(finding)
    values = {"status": "resolved", "status_reason": reason, "closed_at": now}
    return _transition(ticket, "resolved", values, now=now, note=reason)


def _overdue_unescalated(ticket: Mapping[str, Any], today: date) -> bool:
    """Past its due date and not yet escalated in this opening (once per cycle)."""
    escalated = ticket.get("escalated_cycle")
    return pd.Timestamp(ticket["due_date"]).date() < today and (
        escalated is None or pd.isna(escalated) or int(escalated) != int(ticket["cycle"])
    )


def _escalated(ticket: Mapping[str, Any], *, now: datetime) -> TicketChange:
    due = pd.Timestamp(ticket["due_date"]).date()
    note = f"overdue since {due.isoformat()}: alert raised to {_text(ticket['escalation_channel'])}"
    values = {"escalated_cycle": int(ticket["cycle"])}
    return _change(ticket, "escalated", values, now=now, note=note)


def _differs(old: Any, new: Any) -> bool:
    if isinstance(new, float) or new is None:
        old_number = _number(old) if old is not None and old is not pd.NA else None
        if old_number is None or new is None:
            return (old_number is None) != (new is None)
        return not math.isclose(old_number, new, rel_tol=1e-12, abs_tol=1e-12)
    return _text(old) != _text(new)


def apply_plan(tickets: pd.DataFrame, plan: SyncPlan) -> list[dict[str, Any]]:
    """The tickets as they will be after ``plan`` (new ones without a ticket_id yet)."""
    state = {_text(t["finding_id"]): dict(t) for t in _records(tickets)}
    for change in plan.changes:
        row = state.setdefault(change.finding_id, {"ticket_id": change.ticket_id})
        row.update(change.values)
    return list(state.values())


# --- people's actions -------------------------------------------------------------------------


class TicketActionError(ValueError):
    """A status change the lifecycle does not allow (printed to the person who asked)."""


def acknowledge(
    ticket: Mapping[str, Any], *, actor: str, now: datetime, note: str = ""
) -> TicketChange:
    status = _text(ticket["status"])
    if status != "open":
        raise TicketActionError(
            f"ticket {ticket['ticket_id']} is {status}: only an open ticket can be acknowledged"
        )
    return TicketChange(
        finding_id=_text(ticket["finding_id"]),
        ticket_id=int(ticket["ticket_id"]),
        event="acknowledged",
        values={
            "status": "acknowledged",
            "status_reason": note or f"acknowledged by {actor}",
            "acknowledged_at": now,
            "updated_at": now,
        },
        from_status=status,
        to_status="acknowledged",
        note=note,
        actor=actor,
    )


def close(
    ticket: Mapping[str, Any], *, actor: str, now: datetime, reason: str, wont_fix: bool = False
) -> TicketChange:
    """Resolve (the breach was fixed) or decide ``wont_fix``; a reason is required."""
    status = _text(ticket["status"])
    if status not in LIVE_TICKET_STATUSES:
        raise TicketActionError(f"ticket {ticket['ticket_id']} is already {status}")
    if not reason.strip():
        raise TicketActionError("a reason is required to close a ticket")
    target = "wont_fix" if wont_fix else "resolved"
    return TicketChange(
        finding_id=_text(ticket["finding_id"]),
        ticket_id=int(ticket["ticket_id"]),
        event=target,
        values={
            "status": target,
            "status_reason": f"{reason.strip()} ({actor})",
            "closed_at": now,
            "updated_at": now,
        },
        from_status=status,
        to_status=target,
        note=reason.strip(),
        actor=actor,
    )


def live(tickets: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [t for t in tickets if _text(t.get("status")) in LIVE_TICKET_STATUSES]
