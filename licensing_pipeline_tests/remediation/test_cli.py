"""`licensing-pipeline tickets ...` and `licensing-pipeline alerts test|flush`."""

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from licensing_pipeline import cli
from licensing_pipeline.remediation.outbox import OutboxAlert, enqueue, outbox_rows, utcnow
from licensing_pipeline.remediation.service import (
    RemediationConfig,
    run_remediation,
    sync_tickets,
)
from licensing_pipeline.remediation.slack import METADATA_EVENT, SlackAlerts, slack_ts
from licensing_pipeline.remediation.store import history_of, ticket_records
from licensing_pipeline.remediation.tables import alert_outbox
from licensing_pipeline.remediation.ticket_sink import TicketSink
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline_tests.remediation.builders import finding, findings, quota_warning
from licensing_pipeline_tests.remediation.builders import tenant as tenant_row
from licensing_pipeline_tests.remediation.builders import tenants as tenant_frame
from licensing_pipeline_tests.remediation.fakes import FakeSlack, FakeTicketSystem

TOKEN = "xoxb-cli-token"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_slack: FakeSlack) -> Path:
    monkeypatch.setenv("LICENSING_HOME", str(tmp_path))
    monkeypatch.delenv("LICENSING_DATABASE_URL", raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_API_URL", fake_slack.base_url)
    monkeypatch.setenv("LICENSING_SLACK_DEFAULT_CHANNEL", "#compliance")
    engine = LicensingRepository(database_url=f"sqlite:///{tmp_path / 'licensing.db'}").engine()
    run_remediation(
        engine,
        findings(finding("t-1"), quota_warning("t-1")),
        tenant_frame(tenant_row("t-1")),
        config=RemediationConfig(),
        slack=SlackAlerts(),  # seeded without Slack: not sent
        sink=TicketSink(),
        now=datetime(2026, 11, 20, 3),
        night="2026-11-19",
    )
    engine.dispose()
    return tmp_path


def engine_of(home: Path):
    return LicensingRepository(database_url=f"sqlite:///{home / 'licensing.db'}").engine()


def test_list_shows_live_tickets(home: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["tickets", "list"]) == 0
    out = capsys.readouterr().out
    assert "residency_violation" in out and "quota_exceeded" in out and "2 ticket(s)." in out
    assert cli.main(["tickets", "list", "--severity", "critical", "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["ticket_id"], r["status"], r["due_date"]) for r in rows] == [
        (1, "open", "2026-11-23")
    ]


def test_ack_then_resolve_records_history_and_posts_the_resolution(
    home: Path, capsys: pytest.CaptureFixture[str], fake_slack: FakeSlack
):
    assert cli.main(["tickets", "ack", "1", "--by", "ana", "--note", "calling the customer"]) == 0
    assert "Ticket 1 is now acknowledged." in capsys.readouterr().out
    finding_id = finding("t-1")["finding_id"]
    assert (
        cli.main(["tickets", "resolve", finding_id, "--reason", "region moved", "--by", "ana"]) == 0
    )
    out = capsys.readouterr().out
    assert "Ticket 1 is now resolved." in out and "Posted the resolution to #acme-compliance" in out
    (post,) = fake_slack.posts()
    assert post["text"].startswith("Resolved: residency_violation for t-1")
    engine = engine_of(home)
    events = [(h["event"], h["actor"]) for h in history_of(engine, 1)]
    assert events == [
        ("opened", "licensing-pipeline"),
        ("acknowledged", "ana"),
        ("resolved", "ana"),
    ]
    assert ticket_records(engine)[0]["status_reason"] == "region moved (ana)"
    engine.dispose()


def test_a_resolution_held_by_a_rate_limit_says_so(
    home: Path, capsys: pytest.CaptureFixture[str], fake_slack: FakeSlack
):
    fake_slack.script.append("ratelimited")
    assert cli.main(["tickets", "resolve", "1", "--reason", "region moved", "--by", "ana"]) == 0
    out = capsys.readouterr().out
    assert "Resolution not posted yet (Slack asked to wait until " in out
    assert "it will be retried" in out and fake_slack.posts() == []


def test_show_prints_the_ticket_its_history_and_alerts(
    home: Path, capsys: pytest.CaptureFixture[str]
):
    assert cli.main(["tickets", "show", "1"]) == 0
    out = capsys.readouterr().out
    assert "Ticket 1" in out and "History:" in out and "opened" in out
    assert "critical    not_sent  #acme-compliance (not sent: no token)" in out


def test_lifecycle_mistakes_are_clear_errors(home: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["tickets", "show", "999"]) == cli.EXIT_USAGE
    assert "no ticket '999'" in capsys.readouterr().err
    assert cli.main(["tickets", "resolve", "2", "--reason", "done", "--wont-fix"]) == 0
    assert cli.main(["tickets", "ack", "2"]) == cli.EXIT_USAGE
    assert "only an open ticket can be acknowledged" in capsys.readouterr().err


def test_alerts_test_sends_one_message_to_the_default_channel(
    home: Path, capsys: pytest.CaptureFixture[str], fake_slack: FakeSlack
):
    assert cli.main(["alerts", "test"]) == 0
    assert "Posted a test message to #compliance" in capsys.readouterr().out
    (post,) = fake_slack.posts()
    assert post["channel"] == "#compliance"
    assert post["text"] == "licensing-pipeline can post to #compliance: alerts are connected."


def test_alerts_test_reports_a_rejected_token_without_printing_it(
    home: Path, capsys: pytest.CaptureFixture[str], fake_slack: FakeSlack
):
    fake_slack.revoked_tokens.add(TOKEN)
    assert cli.main(["alerts", "test", "--channel", "#ops"]) == 1
    captured = capsys.readouterr()
    assert "invalid_auth" in captured.err and TOKEN not in captured.err + captured.out


def test_alerts_test_without_a_token_says_how_to_configure_it(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    assert cli.main(["alerts", "test"]) == cli.EXIT_USAGE
    assert "not sent: no token" in capsys.readouterr().err


# --- alerts flush: the daemon is down, alerts wait in the outbox -------------------------------


@pytest.fixture
def queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_slack: FakeSlack, repository_url: str
) -> Iterator[sa.Engine]:
    """Three alerts queued in the repository (SQLite or PostgreSQL), nothing posted yet."""
    monkeypatch.setenv("LICENSING_HOME", str(tmp_path))
    monkeypatch.setenv("LICENSING_DATABASE_URL", repository_url)
    monkeypatch.delenv("LICENSING_PROFILE", raising=False)
    for name in ("LICENSING_TICKET_WEBHOOK_URL", "LICENSING_JIRA_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_API_URL", fake_slack.base_url)
    engine = LicensingRepository(database_url=repository_url).engine()
    with engine.begin() as con:
        enqueue(
            con,
            [
                OutboxAlert("critical", f"f-{n}", "cycle-1", "#acme", {"text": f"alert {n}"})
                for n in (1, 2, 3)
            ],
        )
    yield engine
    engine.dispose()


def flush_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(["alerts", "flush", *args])
    captured = capsys.readouterr()
    return status, captured.out.strip(), captured.err


def test_alerts_flush_delivers_the_queue_once(
    queue: sa.Engine, capsys: pytest.CaptureFixture[str], fake_slack: FakeSlack
):
    assert flush_cli(capsys, "--dry-run")[:2] == (0, "Would deliver 3 alert(s): 3 pending.")
    assert fake_slack.requests == []
    assert flush_cli(capsys)[:2] == (0, "Alerts: 3 posted.")
    assert flush_cli(capsys)[:2] == (0, "Alerts: 0 posted.")
    assert [m["text"] for m in fake_slack.messages_in("#acme")] == ["alert 1", "alert 2", "alert 3"]
    assert {r["status"] for r in outbox_rows(queue)} == {"sent"}


def test_alerts_flush_finds_what_a_dead_daemon_posted_instead_of_posting_it_again(
    queue: sa.Engine, capsys: pytest.CaptureFixture[str], fake_slack: FakeSlack
):
    long_ago = utcnow() - timedelta(minutes=30)
    with queue.begin() as con:  # the daemon posted alert 1 and died before recording it
        con.execute(
            sa.update(alert_outbox)
            .where(alert_outbox.c.ref == "f-1")
            .values(
                status="sending",
                claimed_at=long_ago,
                delivery_key="k-daemon",
                unconfirmed_since=long_ago,
                posted_channel="#acme",
            )
        )
    metadata = {"event_type": METADATA_EVENT, "event_payload": {"delivery_key": "k-daemon"}}
    fake_slack.keep("#acme", "alert 1", metadata, ts=slack_ts(long_ago + timedelta(seconds=1)))
    assert flush_cli(capsys, "--dry-run")[1] == (
        "Would deliver 3 alert(s): 2 pending, 1 left mid-post by a stopped pass (looked for first)."
    )
    assert flush_cli(capsys)[:2] == (0, "Alerts: 2 posted, 1 found already posted.")
    assert [m["text"] for m in fake_slack.messages_in("#acme")] == ["alert 1", "alert 2", "alert 3"]


def test_alerts_flush_stops_at_a_rate_limit_and_exits_1(
    queue: sa.Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    limited = FakeSlack(retry_after=120)
    limited.start()
    try:
        monkeypatch.setenv("SLACK_API_URL", limited.base_url)
        limited.script.append("ratelimited")
        status, out, _ = flush_cli(capsys)
        assert status == 1 and out.startswith("Alerts: 0 posted, 3 waiting: Slack asked to wait")
        assert flush_cli(capsys)[0] == 1  # still held: nothing is sent
        assert len(limited.requests) == 1
        assert "; Slack asked to wait until" in flush_cli(capsys, "--dry-run")[1]
    finally:
        limited.stop()


def test_alerts_flush_exits_1_on_a_lost_answer_and_never_posts_twice(
    queue: sa.Engine, capsys: pytest.CaptureFixture[str], fake_slack: FakeSlack
):
    fake_slack.script.append("server_error")
    status, out, err = flush_cli(capsys)
    assert status == 1
    assert out == (
        "Alerts: 0 posted, 1 unanswered (looked for in Slack before a retry), "
        "3 waiting: Slack did not answer (http_500)."
    )
    assert "critical|f-1|cycle-1 → #acme: no answer (http_500)" in err and TOKEN not in err
    assert flush_cli(capsys)[:2] == (0, "Alerts: 3 posted.")
    assert len(fake_slack.calls("conversations.history")) == 1
    assert [m["text"] for m in fake_slack.messages_in("#acme")] == ["alert 1", "alert 2", "alert 3"]


def test_alerts_flush_also_exports_waiting_tickets(
    queue: sa.Engine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fake_tickets: FakeTicketSystem,
):
    sync_tickets(  # the remediation job opened tickets (and queued their alerts), then stopped
        queue,
        findings(finding("t-1"), quota_warning("t-1")),
        tenant_frame(tenant_row("t-1")),
        config=RemediationConfig(),
        default_channel="#compliance",
        now=datetime(2026, 11, 20, 3),
        night="2026-11-19",
    )
    alerts = len(outbox_rows(queue))
    assert alerts > 3
    monkeypatch.setenv("LICENSING_TICKET_WEBHOOK_URL", f"{fake_tickets.url}/hooks")
    assert flush_cli(capsys, "--dry-run")[1] == (
        f"Would deliver {alerts} alert(s): {alerts} pending; tickets: 2 to export, 0 to update."
    )
    assert flush_cli(capsys)[:2] == (
        0,
        f"Alerts: {alerts} posted; tickets: 2 exported, 0 updated, 0 failed.",
    )
    assert len(fake_tickets.requests) == 2
    assert {t["sink_status"] for t in ticket_records(queue)} == {"synced"}


def test_alerts_flush_without_a_token_changes_nothing(
    queue: sa.Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    status, _, err = flush_cli(capsys)
    assert status == cli.EXIT_USAGE and "not sent: no token" in err
    assert {r["status"] for r in outbox_rows(queue)} == {"pending"}
