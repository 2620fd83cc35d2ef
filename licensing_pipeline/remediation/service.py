"""One remediation pass: sync tickets with the findings, tell change requests, export new
tickets, post the outbox.

The ticket changes, their history and the alerts they call for are written in one
transaction; exporting and posting come after, each recording its own outcome, so an
outage of Slack or the ticket system delays work and never loses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from licensing_pipeline import environment as env
from licensing_pipeline.remediation.alerts import plan_alerts
from licensing_pipeline.remediation.change_alerts import change_alerts, recent_requests
from licensing_pipeline.remediation.outbox import FlushReport, enqueue, flush, utcnow
from licensing_pipeline.remediation.slack import SlackAlerts
from licensing_pipeline.remediation.store import (
    apply_changes,
    claim_export,
    claim_update,
    latest_night,
    load_tickets,
    lock_for_sync,
    record_export,
    record_update,
    tickets_to_export,
    tickets_to_update,
)
from licensing_pipeline.remediation.suggestions import Suggestion
from licensing_pipeline.remediation.ticket_sink import DEFAULT_DAGSTER_URL, TicketSink
from licensing_pipeline.remediation.tickets import (
    Routing,
    Sla,
    SyncPlan,
    load_routing_rules,
    plan_ticket_sync,
)

STALE_EXPORT = timedelta(minutes=10)


class RemediationConfig(dg.ConfigurableResource):
    """SLA per severity, the routing table, the escalation channel and the UI's address.

    LICENSING_SLA_CRITICAL_DAYS / _WARNING_DAYS / _INFO_DAYS   days from opening to due date
    LICENSING_ROUTING_PATH     optional CSV: check,segment,owner,slack_channel,escalation_channel
    LICENSING_SLACK_ESCALATION_CHANNEL  overdue tickets, unless routing names a manager channel
    DAGSTER_WEBSERVER_URL      the base of links in messages
    """

    sla_critical_days: int = Sla.critical_days
    sla_warning_days: int = Sla.warning_days
    sla_info_days: int = Sla.info_days
    routing_path: str | None = None
    escalation_channel: str = "#licensing-escalations"
    dagster_url: str = DEFAULT_DAGSTER_URL

    @classmethod
    def from_env(cls) -> RemediationConfig:
        routing = env.path("LICENSING_ROUTING_PATH")
        return cls(
            **env.given(
                sla_critical_days=env.days("LICENSING_SLA_CRITICAL_DAYS"),
                sla_warning_days=env.days("LICENSING_SLA_WARNING_DAYS"),
                sla_info_days=env.days("LICENSING_SLA_INFO_DAYS"),
                routing_path=str(routing) if routing else None,
                escalation_channel=env.text("LICENSING_SLACK_ESCALATION_CHANNEL"),
                dagster_url=env.text("DAGSTER_WEBSERVER_URL"),
            )
        )

    def sla(self) -> Sla:
        return Sla(self.sla_critical_days, self.sla_warning_days, self.sla_info_days)

    def routing(self, default_channel: str) -> Routing:
        rules = load_routing_rules(Path(self.routing_path)) if self.routing_path else ()
        return Routing(
            rules=rules,
            default_channel=default_channel,
            escalation_channel=self.escalation_channel,
        )


@dataclass
class ExportReport:
    target: str
    exported: int = 0
    updated: int = 0  # status changes told to issues created before
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class RemediationReport:
    night: str
    plan: SyncPlan
    live_tickets: int
    alerts_new: int
    export: ExportReport
    delivery: FlushReport

    def counts(self) -> dict[str, int]:
        return {
            "opened": self.plan.count("opened"),
            "reopened": self.plan.count("reopened"),
            "resolved": self.plan.count("resolved"),
            "escalated": self.plan.count("escalated"),
            "live_tickets": self.live_tickets,
            "alerts_new": self.alerts_new,
            "alerts_sent": self.delivery.sent,
            "alerts_found_already_posted": self.delivery.already_posted,
            "alerts_failed": self.delivery.failed,
            "alerts_unanswered": self.delivery.unanswered,
            "alerts_waiting": self.delivery.waiting,
            "alerts_not_sent": self.delivery.not_sent,
            "tickets_exported": self.export.exported,
            "tickets_updated_externally": self.export.updated,
            "ticket_exports_failed": self.export.failed,
        }


def sync_tickets(
    engine: sa.Engine,
    findings: pd.DataFrame,
    tenants: pd.DataFrame | None,
    *,
    config: RemediationConfig,
    default_channel: str,
    now: datetime,
    night: str,
    suggestions: Mapping[str, Suggestion] | None = None,
) -> tuple[SyncPlan, int, int]:
    """Plan and write ticket changes and their alerts atomically; returns (plan, live, new alerts).

    Passes are serialised (``lock_for_sync``): a second one waits for the first to commit and
    plans against what it wrote. The unique finding_id stays as a guard: a pass that still
    collides on opening a ticket is rolled back and planned again.
    """
    routing = config.routing(default_channel)
    for attempt in range(3):
        try:
            with engine.begin() as con:
                lock_for_sync(con)
                tickets = load_tickets(con)
                plan = plan_ticket_sync(
                    tickets,
                    findings,
                    tenants,
                    routing=routing,
                    sla=config.sla(),
                    now=now,
                    suggestions=suggestions,
                )
                apply_changes(con, plan.changes, now=now)
                after = [
                    {str(k): v for k, v in row.items()}
                    for row in load_tickets(con).astype(object).to_dict("records")
                ]
                alerts = plan_alerts(
                    after,
                    plan.changes,
                    night=night,
                    today=now.date(),
                    dagster_url=config.dagster_url,
                )
                new = enqueue(con, alerts, now=now)
            live = sum(1 for t in after if t["status"] in ("open", "acknowledged"))
            return plan, live, new
        except sa.exc.IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def enqueue_change_alerts(engine: sa.Engine, channel: str, *, now: datetime) -> int:
    """Change requests waiting for approval, and recent approvals, into the outbox once."""
    with engine.begin() as con:
        return enqueue(con, change_alerts(recent_requests(con, now=now), channel=channel), now=now)


def export_tickets(engine: sa.Engine, sink: TicketSink) -> ExportReport:
    report = ExportReport(target=sink.describe())
    if not sink.enabled:
        return report
    stale_before = utcnow() - STALE_EXPORT
    for ticket in tickets_to_export(engine, stale_before=stale_before):
        ticket_id = int(ticket["ticket_id"])
        if not claim_export(engine, ticket_id, now=utcnow(), stale_before=stale_before):
            continue
        result = sink.create(ticket)
        record_export(
            engine,
            ticket_id,
            now=utcnow(),
            external_id=result.external_id if result.ok else None,
            external_url=result.external_url if result.ok else None,
            error=result.error,
            target=report.target,
            status=str(ticket["status"]),
        )
        if result.ok:
            report.exported += 1
        else:
            report.failed += 1
            report.errors.append(f"ticket {ticket_id}: {result.error}")
    for ticket in tickets_to_update(engine):
        if not claim_update(engine, ticket, now=utcnow()):
            continue
        result = sink.update(ticket)
        record_update(engine, ticket, now=utcnow(), error=result.error, target=report.target)
        if result.ok:
            report.updated += 1
        else:
            report.failed += 1
            report.errors.append(f"ticket {ticket['ticket_id']}: {result.error}")
    return report


def run_remediation(
    engine: sa.Engine,
    findings: pd.DataFrame,
    tenants: pd.DataFrame | None,
    *,
    config: RemediationConfig,
    slack: SlackAlerts,
    sink: TicketSink,
    now: datetime | None = None,
    night: str | None = None,
    suggestions: Mapping[str, Suggestion] | None = None,
) -> RemediationReport:
    now = now or utcnow()
    night = night or latest_night(engine) or now.date().isoformat()
    plan, live, new = sync_tickets(
        engine,
        findings,
        tenants,
        config=config,
        default_channel=slack.default_channel,
        now=now,
        night=night,
        suggestions=suggestions,
    )
    new += enqueue_change_alerts(engine, slack.default_channel, now=now)
    export = export_tickets(engine, sink)
    delivery = flush(engine, slack)
    return RemediationReport(
        night=night, plan=plan, live_tickets=live, alerts_new=new, export=export, delivery=delivery
    )
