import re
from datetime import date
from typing import Any

from licensing_pipeline.remediation import messages

URL = "http://dagster.example:3000/"


def ticket(**overrides: Any) -> dict[str, Any]:
    row = {
        "ticket_id": 7,
        "finding_id": "f0123456789abcdef012",
        "tenant_id": "t-0042",
        "check": "residency_violation",
        "subject": "us-east-1",
        "period": "2026-11",
        "observed": 1234.0,
        "allowed": 0.0,
        "severity": "critical",
        "action": "suspend",
        "owner": "ana@example.com",
        "channel": "#acme-compliance",
        "escalation_channel": "#managers",
        "status": "open",
        "status_reason": "finding detected",
        "due_date": date(2026, 11, 23),
        "cycle": 1,
        "details": "Usage processed in us-east-1 <US> & not allowed",
    }
    row.update(overrides)
    return row


def test_critical_alert_carries_everything_an_owner_needs():
    assert messages.critical_alert(ticket(), dagster_url=URL) == {
        "text": (
            "Critical: residency_violation for t-0042 (us-east-1, 2026-11): action suspend, "
            "owner ana@example.com, due 2026-11-23"
        ),
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": "🚨 Critical: residency_violation for t-0042",
                },
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Tenant*\nt-0042"},
                    {"type": "mrkdwn", "text": "*Check*\n`residency_violation`"},
                    {"type": "mrkdwn", "text": "*Subject*\nus-east-1"},
                    {"type": "mrkdwn", "text": "*Period*\n2026-11"},
                    {"type": "mrkdwn", "text": "*Observed*\n1,234"},
                    {"type": "mrkdwn", "text": "*Allowed*\n0"},
                    {"type": "mrkdwn", "text": "*Action*\n*suspend*"},
                    {"type": "mrkdwn", "text": "*Owner*\nana@example.com"},
                    {"type": "mrkdwn", "text": "*Due*\n2026-11-23"},
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "Usage processed in us-east-1 &lt;US&gt; &amp; not allowed",
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": (
                            "<http://dagster.example:3000/assets/compliance_findings|"
                            "compliance_findings in Dagster> · finding `f0123456789abcdef012` · "
                            "acknowledge: `licensing-pipeline tickets ack f0123456789abcdef012`"
                        ),
                    }
                ],
            },
        ],
    }


def test_digest_lists_every_warning_of_the_channel():
    rows = [
        ticket(tenant_id="t-2", check="quota_exceeded", subject="api_calls", severity="warning"),
        ticket(tenant_id="t-1", check="usage_anomaly", subject="seats", severity="warning"),
    ]
    message = messages.warning_digest("#acme", rows, night="2026-11-20", dagster_url=URL)
    assert message["text"] == "2 open warning finding(s) for 2026-11-20 in #acme"
    assert message["blocks"][0]["text"]["text"] == "⚠️ 2 open warning finding(s) for 2026-11-20"
    lines = message["blocks"][1]["text"]["text"].splitlines()
    assert lines == [
        "• *t-1* `usage_anomaly` seats 2026-11: 1,234 (allowed 0), suspend, owner "
        "ana@example.com, due 2026-11-23",
        "• *t-2* `quota_exceeded` api_calls 2026-11: 1,234 (allowed 0), suspend, owner "
        "ana@example.com, due 2026-11-23",
    ]
    assert message["blocks"][-1]["type"] == "context"


def test_a_long_digest_stays_within_slack_limits():
    rows = [ticket(tenant_id=f"t-{n:05d}", details="x" * 500) for n in range(3000)]
    message = messages.warning_digest("#acme", rows, night="2026-11-20", dagster_url=URL)
    blocks = message["blocks"]
    assert len(blocks) <= messages.MAX_BLOCKS
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    assert (
        "more: `licensing-pipeline tickets list --severity warning`" in (blocks[-2]["text"]["text"])
    )


def test_resolution_and_escalation_messages():
    resolved = messages.resolution_notice(
        ticket(status="resolved", status_reason="finding resolved: no longer detected"),
        dagster_url=URL,
    )
    assert resolved["text"].startswith("Resolved: residency_violation for t-0042")
    assert "no longer detected" in resolved["blocks"][0]["text"]["text"]
    wont = messages.resolution_notice(ticket(status="wont_fix"), dagster_url=URL)
    assert wont["text"].startswith("Closed (won't fix)")
    overdue = messages.escalation_alert(ticket(), today=date(2026, 11, 26), dagster_url=URL)
    assert overdue["text"] == (
        "Overdue: residency_violation for t-0042: due 2026-11-23, 3 day(s) overdue, "
        "owner ana@example.com"
    )


def test_figures_read_like_numbers():
    assert messages.figure(120500.0) == "120,500"
    assert messages.figure(0.125) == "0.12"
    assert messages.figure(None) == "–"
    assert messages.figure(float("nan")) == "–"
    assert messages.figure(float("inf")) == "–" and messages.figure(float("-inf")) == "–"


def test_no_message_reads_inf_or_nan():
    row = ticket(observed=float("inf"), allowed=float("nan"), severity="warning")
    texts = [
        str(messages.critical_alert(row, dagster_url=URL)),
        str(messages.warning_digest("#acme", [row], night="2026-11-20", dagster_url=URL)),
    ]
    assert not [t for t in texts if re.search(r"\b(inf|nan)\b", t, re.IGNORECASE)]
