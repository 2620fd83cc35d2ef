"""A remediation pass end to end on small frames: repository, fake Slack, fake ticket system."""

import contextlib
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from licensing_pipeline.remediation.outbox import outbox_rows
from licensing_pipeline.remediation.service import RemediationConfig, run_remediation, sync_tickets
from licensing_pipeline.remediation.slack import SlackAlerts
from licensing_pipeline.remediation.store import history_of, ticket_records
from licensing_pipeline.remediation.ticket_sink import TicketSink
from licensing_pipeline_tests.remediation.builders import (
    finding,
    findings,
    quota_warning,
    tenant,
    tenants,
)
from licensing_pipeline_tests.remediation.fakes import FakeSlack, FakeTicketSystem, Reply

NOW = datetime(2026, 11, 20, 3, 0, 0)
CONFIG = RemediationConfig(escalation_channel="#managers", dagster_url="http://dagster:3000")
TENANTS = tenants(tenant("t-1"), tenant("t-2", owner="bo@example.com", channel=""))


def run(engine, frame, fake_slack, fake_tickets=None, *, now=NOW, night="2026-11-19"):
    return run_remediation(
        engine,
        frame,
        TENANTS,
        config=CONFIG,
        slack=SlackAlerts(token="xoxb-t", base_url=fake_slack.base_url),
        sink=TicketSink(webhook_url=fake_tickets.url, backoff_seconds=0.01, max_attempts=2)
        if fake_tickets
        else TicketSink(),
        now=now,
        night=night,
    )


def tonight():
    return findings(finding("t-1"), quota_warning("t-1"), quota_warning("t-2"))


def test_first_pass_opens_tickets_exports_them_and_alerts_once(
    engine: sa.Engine, fake_slack: FakeSlack, fake_tickets: FakeTicketSystem
):
    fake_tickets.default = Reply(201, {"id": "INC-1"})
    report = run(engine, tonight(), fake_slack, fake_tickets)
    assert report.counts()["opened"] == 3
    tickets = ticket_records(engine)
    assert [(t["tenant_id"], t["severity"], t["channel"]) for t in tickets] == [
        ("t-1", "critical", "#acme-compliance"),
        ("t-1", "warning", "#acme-compliance"),
        ("t-2", "warning", "#licensing-compliance"),
    ]
    assert all(t["sink_status"] == "synced" and t["external_id"] == "INC-1" for t in tickets)
    posts = fake_slack.posts()
    kinds = sorted((p["channel"], p["text"].split(":")[0]) for p in posts)
    assert kinds == [
        ("#acme-compliance", "1 open warning finding(s) for 2026-11-19 in #acme-compliance"),
        ("#acme-compliance", "Critical"),
        (
            "#licensing-compliance",
            "1 open warning finding(s) for 2026-11-19 in #licensing-compliance",
        ),
    ]
    assert report.delivery.sent == 3 and len(fake_tickets.requests) == 3


def test_a_second_pass_on_the_same_night_posts_and_exports_nothing(
    engine: sa.Engine, fake_slack: FakeSlack, fake_tickets: FakeTicketSystem
):
    run(engine, tonight(), fake_slack, fake_tickets)
    posts, exports = len(fake_slack.posts()), len(fake_tickets.requests)
    report = run(engine, tonight(), fake_slack, fake_tickets, now=NOW + timedelta(hours=1))
    assert report.plan.changes == [] and report.alerts_new == 0
    assert (len(fake_slack.posts()), len(fake_tickets.requests)) == (posts, exports)


def test_the_next_night_brings_a_new_digest_but_no_new_critical_alert(
    engine: sa.Engine, fake_slack: FakeSlack
):
    run(engine, tonight(), fake_slack)
    run(engine, tonight(), fake_slack, now=NOW + timedelta(days=1), night="2026-11-20")
    texts = [p["text"] for p in fake_slack.posts()]
    assert sum(t.startswith("Critical") for t in texts) == 1
    assert sum("open warning finding(s) for 2026-11-20" in t for t in texts) == 2


def test_resolving_the_data_closes_the_tickets_and_posts_the_resolutions(
    engine: sa.Engine, fake_slack: FakeSlack
):
    run(engine, tonight(), fake_slack)
    resolved = findings(
        finding("t-1", status="resolved"),
        {**quota_warning("t-1"), "status": "resolved"},
        {**quota_warning("t-2"), "status": "resolved"},
    )
    report = run(engine, resolved, fake_slack, now=NOW + timedelta(days=1), night="2026-11-20")
    assert report.counts()["resolved"] == 3
    assert {t["status"] for t in ticket_records(engine)} == {"resolved"}
    texts = [p["text"] for p in fake_slack.posts()[3:]]
    assert len(texts) == 3 and all(t.startswith("Resolved:") for t in texts)
    history = history_of(engine, 1)
    assert [h["event"] for h in history] == ["opened", "resolved"]
    assert history[1]["from_status"] == "open" and history[1]["to_status"] == "resolved"
    # a repeat of the resolving night posts nothing more
    run(engine, resolved, fake_slack, now=NOW + timedelta(days=1, hours=1), night="2026-11-20")
    assert len(fake_slack.posts()) == 6


def test_a_recurrence_reopens_and_alerts_again(engine: sa.Engine, fake_slack: FakeSlack):
    run(engine, findings(finding("t-1")), fake_slack)
    run(
        engine, findings(finding("t-1", status="resolved")), fake_slack, now=NOW + timedelta(days=1)
    )
    run(engine, findings(finding("t-1")), fake_slack, now=NOW + timedelta(days=2))
    (ticket,) = ticket_records(engine)
    assert (ticket["status"], ticket["cycle"]) == ("open", 2)
    texts = [p["text"].split(":")[0] for p in fake_slack.posts()]
    assert texts == ["Critical", "Resolved", "Critical"]


def test_an_overdue_ticket_is_raised_to_the_manager_channel_once(
    engine: sa.Engine, fake_slack: FakeSlack
):
    run(engine, findings(finding("t-1")), fake_slack)
    late = NOW + timedelta(days=4)  # critical SLA: 3 days
    run(engine, findings(finding("t-1")), fake_slack, now=late)
    run(engine, findings(finding("t-1")), fake_slack, now=late + timedelta(days=1))
    escalations = [p for p in fake_slack.posts() if p["text"].startswith("Overdue")]
    assert len(escalations) == 1 and escalations[0]["channel"] == "#managers"


def test_slack_down_fails_nothing_and_the_alerts_go_out_later(
    engine: sa.Engine, fake_slack: FakeSlack
):
    fake_slack.script.extend(["server_error"] * 30)
    report = run(engine, findings(finding("t-1")), fake_slack)
    assert report.delivery.unanswered == 1 and report.counts()["opened"] == 1
    fake_slack.script.clear()
    later = run(engine, findings(finding("t-1")), fake_slack, now=NOW + timedelta(minutes=5))
    assert later.delivery.sent == 1
    assert len(fake_slack.posts()) == 1


def test_a_ticket_system_outage_loses_no_ticket(
    engine: sa.Engine, fake_slack: FakeSlack, fake_tickets: FakeTicketSystem
):
    fake_tickets.default = Reply(500, "down")
    report = run(engine, findings(finding("t-1")), fake_slack, fake_tickets)
    assert report.export.failed == 1 and "HTTP 500" in report.export.errors[0]
    (ticket,) = ticket_records(engine)
    assert ticket["sink_status"] == "failed" and ticket["external_id"] is None
    fake_tickets.default = Reply(201, {"key": "LIC-9"})
    report = run(engine, findings(finding("t-1")), fake_slack, fake_tickets)
    assert report.export.exported == 1
    (ticket,) = ticket_records(engine)
    assert (ticket["sink_status"], ticket["external_id"]) == ("synced", "LIC-9")
    events = [h["event"] for h in history_of(engine, ticket["ticket_id"])]
    assert events == ["opened", "export_failed", "exported"]


def test_the_ticket_system_hears_of_resolution_and_reopening_once_each(
    engine: sa.Engine, fake_slack: FakeSlack, fake_tickets: FakeTicketSystem
):
    fake_tickets.default = Reply(201, {"id": "INC-1"})
    run(engine, findings(finding("t-1")), fake_slack, fake_tickets)
    resolved = findings(finding("t-1", status="resolved"))
    fake_tickets.default = Reply(503, "busy")  # the update fails: told again next pass
    report = run(engine, resolved, fake_slack, fake_tickets, now=NOW + timedelta(days=1))
    assert report.export.failed == 1 and "HTTP 503" in report.export.errors[0]
    (ticket,) = ticket_records(engine)
    assert (ticket["status"], ticket["sink_reported_status"]) == ("resolved", "open")
    fake_tickets.default = Reply(200, {})
    for hours in (1, 2):  # the next pass tells it; the one after has nothing to tell
        later = NOW + timedelta(days=1, hours=hours)
        report = run(engine, resolved, fake_slack, fake_tickets, now=later)
        assert report.export.updated == (1 if hours == 1 else 0)
    run(engine, findings(finding("t-1")), fake_slack, fake_tickets, now=NOW + timedelta(days=2))
    bodies = [r.body for r in fake_tickets.requests if r.body]
    events = [b["event"] for b in bodies]
    assert events == [
        "remediation_ticket.opened",
        *["remediation_ticket.resolved"] * 3,  # two attempts of the failing pass, then sent
        "remediation_ticket.reopened",
    ]
    assert all(b["external_id"] == "INC-1" for b in bodies[1:])
    assert bodies[-1]["ticket"]["cycle"] == 2
    assert "now reopened (finding detected again" in bodies[-1]["description"]
    keys = [r.headers["Idempotency-Key"] for r in fake_tickets.requests[1:]]
    assert keys[-1] == f"licensing-ticket-{ticket['finding_id']}-2-reopened"
    history = [h["event"] for h in history_of(engine, ticket["ticket_id"])]
    assert history == [
        "opened",
        "exported",
        "resolved",
        "update_failed",
        "updated_externally",
        "reopened",
        "updated_externally",
    ]


def test_without_a_token_the_pass_succeeds_and_records_not_sent(
    engine: sa.Engine, fake_slack: FakeSlack
):
    report = run_remediation(
        engine,
        tonight(),
        TENANTS,
        config=CONFIG,
        slack=SlackAlerts(base_url=fake_slack.base_url),
        sink=TicketSink(),
        now=NOW,
        night="2026-11-19",
    )
    assert report.delivery.not_sent == 3
    assert {r["status"] for r in outbox_rows(engine)} == {"not_sent"}
    assert fake_slack.requests == []


def test_two_passes_racing_write_each_change_once(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
):
    """Both passes read the tickets before either writes: without serialising the passes,
    both would resolve the same tickets and write every history line twice."""
    import threading

    from licensing_pipeline.remediation import service

    sync_tickets(
        engine, tonight(), TENANTS, config=CONFIG, default_channel="#c", now=NOW, night="n1"
    )
    resolved = findings(
        finding("t-1", status="resolved"),
        {**quota_warning("t-1"), "status": "resolved"},
        {**quota_warning("t-2"), "status": "resolved"},
    )
    both_planning = threading.Barrier(2)
    plan = service.plan_ticket_sync

    def plan_together(*args, **kwargs):
        with contextlib.suppress(threading.BrokenBarrierError):
            both_planning.wait(timeout=2)  # a pass held back by the other never arrives
        return plan(*args, **kwargs)

    monkeypatch.setattr(service, "plan_ticket_sync", plan_together)
    later = NOW + timedelta(days=1)
    passes = [
        threading.Thread(
            target=sync_tickets,
            args=(engine, resolved, TENANTS),
            kwargs={"config": CONFIG, "default_channel": "#c", "now": later, "night": "n2"},
        )
        for _ in range(2)
    ]
    for thread in passes:
        thread.start()
    for thread in passes:
        thread.join(timeout=30)
    for ticket in ticket_records(engine):
        events = [h["event"] for h in history_of(engine, int(ticket["ticket_id"]))]
        assert events == ["opened", "resolved"], events
