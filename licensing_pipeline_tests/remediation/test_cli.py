"""`licensing-pipeline tickets ...` and `licensing-pipeline alerts test`."""

import json
from datetime import datetime
from pathlib import Path

import pytest

from licensing_pipeline import cli
from licensing_pipeline.remediation.service import RemediationConfig, run_remediation
from licensing_pipeline.remediation.slack import SlackAlerts
from licensing_pipeline.remediation.store import history_of, ticket_records
from licensing_pipeline.remediation.ticket_sink import TicketSink
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline_tests.remediation.builders import finding, findings, quota_warning
from licensing_pipeline_tests.remediation.builders import tenant as tenant_row
from licensing_pipeline_tests.remediation.builders import tenants as tenant_frame
from licensing_pipeline_tests.remediation.fakes import FakeSlack

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
