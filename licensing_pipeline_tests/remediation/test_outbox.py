"""The outbox against SQLite and PostgreSQL, posting to a fake Slack."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from licensing_pipeline.remediation import messages
from licensing_pipeline.remediation.outbox import (
    OutboxAlert,
    enqueue,
    flush,
    outbox_rows,
    utcnow,
)
from licensing_pipeline.remediation.slack import NO_TOKEN, SlackAlerts
from licensing_pipeline.remediation.tables import alert_outbox
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline_tests.remediation.fakes import FakeSlack

TOKEN = "xoxb-outbox-token"


@pytest.fixture
def engine(repository_url: str) -> Iterator[sa.Engine]:
    engine = LicensingRepository(database_url=repository_url).engine()
    try:
        yield engine
    finally:
        engine.dispose()


def slack(fake: FakeSlack, token: str | None = TOKEN) -> SlackAlerts:
    return SlackAlerts(token=token, base_url=fake.base_url, server_error_backoff_seconds=0.01)


def alert(n: int, channel: str = "#acme") -> OutboxAlert:
    return OutboxAlert(
        kind="critical",
        ref=f"finding-{n}",
        period="cycle-1",
        channel=channel,
        message={
            "text": f"alert {n}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"alert {n}"}}],
        },
    )


def add(engine: sa.Engine, *alerts: OutboxAlert) -> int:
    with engine.begin() as con:
        return enqueue(con, alerts)


def test_the_same_key_is_recorded_once(engine: sa.Engine):
    assert add(engine, alert(1), alert(2)) == 2
    assert add(engine, alert(1), alert(2), alert(3)) == 1
    assert [r["alert_key"] for r in outbox_rows(engine)] == [
        "critical|finding-1|cycle-1",
        "critical|finding-2|cycle-1",
        "critical|finding-3|cycle-1",
    ]


def test_the_unique_key_is_enforced_by_the_database(engine: sa.Engine):
    add(engine, alert(1))
    row = outbox_rows(engine)[0]
    row.pop("alert_id")
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as con:
        con.execute(sa.insert(alert_outbox).values(**row))


def test_posted_once_however_often_flushed(engine: sa.Engine, fake_slack: FakeSlack):
    add(engine, alert(1), alert(2))
    first = flush(engine, slack(fake_slack))
    assert first.sent == 2
    add(engine, alert(1), alert(2))  # a retried run writes the same alerts again
    second = flush(engine, slack(fake_slack))
    assert second.sent == 0
    assert [p["text"] for p in fake_slack.posts()] == ["alert 1", "alert 2"]
    rows = outbox_rows(engine)
    assert {r["status"] for r in rows} == {"sent"}
    assert all(r["slack_ts"] and r["sent_at"] and r["attempts"] == 1 for r in rows)


def test_a_failed_post_is_retried_on_the_next_flush(engine: sa.Engine, fake_slack: FakeSlack):
    add(engine, alert(1))
    fake_slack.script.extend(["server_error"] * 3)
    first = flush(engine, slack(fake_slack))
    assert (first.sent, first.failed) == (0, 1)
    assert outbox_rows(engine)[0]["status"] == "failed"
    second = flush(engine, slack(fake_slack))
    assert second.sent == 1
    row = outbox_rows(engine)[0]
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert len(fake_slack.posts()) == 1


def test_without_a_token_alerts_are_recorded_as_not_sent(engine: sa.Engine, fake_slack: FakeSlack):
    add(engine, alert(1))
    report = flush(engine, slack(fake_slack, token=None))
    assert report.not_sent == 1
    row = outbox_rows(engine)[0]
    assert (row["status"], row["last_error"]) == ("not_sent", NO_TOKEN)
    assert fake_slack.requests == []


def test_a_bad_channel_is_posted_to_the_default_and_recorded(
    engine: sa.Engine, fake_slack: FakeSlack
):
    fake_slack.unknown_channels.add("#gone")
    add(engine, alert(1, channel="#gone"))
    report = flush(engine, slack(fake_slack))
    assert report.sent == 1
    assert report.fallbacks == [
        "critical|finding-1|cycle-1: #gone: channel_not_found; posted to "
        "#licensing-compliance instead"
    ]
    row = outbox_rows(engine)[0]
    assert row["posted_channel"] == "#licensing-compliance"
    assert "channel_not_found" in row["last_error"]


def test_a_revoked_token_stops_posting_and_raises_one_operator_alert(
    engine: sa.Engine, fake_slack: FakeSlack
):
    fake_slack.revoked_tokens.add(TOKEN)
    add(engine, alert(1), alert(2), alert(3))
    first = flush(engine, slack(fake_slack))
    assert first.auth_error == "invalid_auth" and first.operator_alert_raised
    assert first.waiting == 3
    assert len(fake_slack.requests) == 1  # stopped at the first rejection
    second = flush(engine, slack(fake_slack))  # the next tick, same token
    assert second.auth_error and not second.operator_alert_raised
    assert len(fake_slack.requests) == 1  # nothing more is tried with that token
    operator = outbox_rows(engine, kind="operator")
    assert len(operator) == 1 and operator[0]["status"] == "raised"
    assert "Slack rejected SLACK_BOT_TOKEN (invalid_auth)" in operator[0]["last_error"]
    assert TOKEN not in operator[0]["last_error"] and TOKEN not in operator[0]["payload"]
    # a new token: everything waiting goes out, and the operator alert is cleared
    fixed = flush(engine, slack(fake_slack, token="xoxb-new-token"))
    assert fixed.sent == 3
    assert outbox_rows(engine, kind="operator")[0]["status"] == "cleared"


def test_two_posters_never_post_the_same_claimed_alert(engine: sa.Engine, fake_slack: FakeSlack):
    add(engine, alert(1))
    with engine.begin() as con:  # another run claimed it a moment ago
        con.execute(sa.update(alert_outbox).values(status="sending", claimed_at=utcnow()))
    assert flush(engine, slack(fake_slack)).sent == 0
    assert fake_slack.requests == []
    with engine.begin() as con:  # ... but that run died long ago: retry
        con.execute(sa.update(alert_outbox).values(claimed_at=utcnow() - timedelta(minutes=30)))
    assert flush(engine, slack(fake_slack)).sent == 1


def test_flush_can_be_limited_to_some_keys(engine: sa.Engine, fake_slack: FakeSlack):
    add(engine, alert(1), alert(2))
    report = flush(engine, slack(fake_slack), keys=[alert(2).key])
    assert report.sent == 1
    assert [p["text"] for p in fake_slack.posts()] == ["alert 2"]


def test_messages_round_trip_through_the_outbox_unchanged(engine: sa.Engine, fake_slack: FakeSlack):
    from licensing_pipeline_tests.remediation.test_messages import URL, ticket

    message = messages.critical_alert(ticket(), dagster_url=URL)
    add(engine, OutboxAlert("critical", "f", "cycle-1", "#acme", message))
    flush(engine, slack(fake_slack))
    (posted,) = fake_slack.posts()
    assert (posted["text"], posted["blocks"]) == (message["text"], message["blocks"])
