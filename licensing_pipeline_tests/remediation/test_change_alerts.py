"""Change requests told in the remediation channel through the outbox: a proposal waiting for
approval and its approval each post once over repeated passes, on SQLite and PostgreSQL,
against the local fake Slack API."""

from datetime import date, datetime, timedelta

import sqlalchemy as sa

from licensing_pipeline.dashboard.assets import DECIDED
from licensing_pipeline.governance.tables import change_requests
from licensing_pipeline.remediation.change_alerts import (
    change_alerts,
    change_text,
    describe_change,
    recent_requests,
)
from licensing_pipeline.remediation.service import RemediationConfig, run_remediation
from licensing_pipeline.remediation.slack import SlackAlerts
from licensing_pipeline.remediation.ticket_sink import TicketSink
from licensing_pipeline_tests.governance.change_rows import record_change
from licensing_pipeline_tests.remediation.builders import findings, tenants
from licensing_pipeline_tests.remediation.fakes import FakeSlack

NOW = datetime(2026, 12, 7, 3, 0)
CHANNEL = "#licensing-compliance"


def run(engine: sa.Engine, fake_slack: FakeSlack, now: datetime = NOW) -> int:
    report = run_remediation(
        engine,
        findings(),
        tenants(),
        config=RemediationConfig(),
        slack=SlackAlerts(token="xoxb-t", base_url=fake_slack.base_url),
        sink=TicketSink(),
        now=now,
        night="2026-12-06",
    )
    return report.alerts_new


def texts(fake_slack: FakeSlack) -> list[tuple[str, str]]:
    return [(p["channel"], p["text"]) for p in fake_slack.posts()]


def approve(engine: sa.Engine, request_id: int, at: datetime) -> None:
    with engine.begin() as con:
        con.execute(
            sa.update(change_requests)
            .where(change_requests.c.request_id == request_id)
            .values(status="approved", decided_by="carol", decided_at=at)
        )


def test_a_proposal_and_its_approval_each_post_once(engine: sa.Engine, fake_slack: FakeSlack):
    request = record_change(
        engine,
        "quota_override",
        {"metric": "api_calls", "limit": 200000},
        status="pending",
        tenant_id="acme",
        effective_from=date(2026, 12, 8),
        reason="renewal signed",
    )
    pending = (
        CHANNEL,
        f"Change #{request} awaits approval: quota override api_calls → 200,000 for tenant "
        "acme, proposed by bob (renewal signed)",
    )
    assert run(engine, fake_slack) == 1
    assert run(engine, fake_slack, NOW + timedelta(hours=1)) == 0
    assert texts(fake_slack) == [pending]

    approve(engine, request, NOW + timedelta(hours=2))
    assert run(engine, fake_slack, NOW + timedelta(hours=3)) == 1
    assert run(engine, fake_slack, NOW + timedelta(hours=4)) == 0
    assert texts(fake_slack) == [
        pending,
        (
            CHANNEL,
            f"Change #{request} approved by carol: quota override api_calls → 200,000 for "
            "tenant acme, effective 2026-12-08",
        ),
    ]


def test_old_approvals_and_closed_requests_are_not_told(engine: sa.Engine, fake_slack: FakeSlack):
    """A first pass over a repository with a history does not post its past approvals."""
    old = record_change(engine, "feature_grant", {"feature": "sso"}, tenant_id="acme")
    approve(engine, old, NOW - timedelta(days=30))
    record_change(engine, "feature_grant", {"feature": "sso"}, tenant_id="b", status="rejected")
    record_change(engine, "feature_grant", {"feature": "sso"}, tenant_id="c", status="withdrawn")
    assert run(engine, fake_slack) == 0
    assert fake_slack.posts() == []


def test_each_kind_reads_as_a_sentence():
    assert describe_change("quota_override", {"metric": "seats", "limit": None}, "t-1") == (
        "quota override seats → unlimited for tenant t-1"
    )
    assert describe_change(
        "policy_version", {"version": "2026.12.0", "sha256": "ab" * 32}, None
    ) == ("policy version 2026.12.0 (sha256 abababababab…)")
    assert describe_change("exception", {"check": "quota_exceeded", "subject": ""}, "t-2") == (
        "exception quota_exceeded for tenant t-2"
    )
    approved = {
        "request_id": 3,
        "kind": "region_allow",
        "tenant_id": "t-3",
        "payload": '{"region": "eu-west-1"}',
        "reason": "DR site",
        "effective_from": date(2026, 12, 9),
        "status": "approved",
        "proposed_by": "bob",
        "decided_by": "carol",
    }
    assert change_text(approved) == (
        "Change #3 approved by carol: region allow eu-west-1 for tenant t-3, effective 2026-12-09"
    )


def test_the_dashboard_reads_pending_requests_and_every_recent_decision(engine: sa.Engine):
    pending = record_change(engine, "feature_grant", {"feature": "sso"}, status="pending")
    rejected = record_change(engine, "feature_grant", {"feature": "sso"}, status="rejected")
    old = record_change(engine, "feature_grant", {"feature": "sso"})
    approve(engine, old, NOW - timedelta(days=8))
    with engine.connect() as con:
        shown = recent_requests(con, now=NOW, decided=DECIDED)
        told = recent_requests(con, now=NOW)
    assert [r["request_id"] for r in shown] == [pending, rejected]
    assert [r["request_id"] for r in told] == [pending]


def test_a_reason_cannot_mention_the_channel():
    pending = {
        "request_id": 4,
        "kind": "feature_grant",
        "tenant_id": "t-4",
        "payload": '{"feature": "sso"}',
        "reason": "<!channel> urgent & important",
        "effective_from": date(2026, 12, 9),
        "status": "pending",
        "proposed_by": "bob",
        "decided_by": None,
    }
    [alert] = change_alerts([pending], channel=CHANNEL)
    assert alert.key == "change_request|4|pending"
    block = alert.message["blocks"][0]["text"]["text"]
    assert "&lt;!channel&gt; urgent &amp; important" in block and "<!channel>" not in block
