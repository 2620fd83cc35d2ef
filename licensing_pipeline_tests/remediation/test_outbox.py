"""The outbox against SQLite and PostgreSQL, posting to a fake Slack."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from licensing_pipeline.remediation import messages
from licensing_pipeline.remediation import slack as slack_module
from licensing_pipeline.remediation.outbox import (
    OutboxAlert,
    enqueue,
    flush,
    outbox_rows,
    utcnow,
)
from licensing_pipeline.remediation.slack import NO_TOKEN, SlackAlerts, slack_ts
from licensing_pipeline.remediation.tables import alert_outbox
from licensing_pipeline_tests.remediation.fakes import FakeSlack

TOKEN = "xoxb-outbox-token"


def slack(fake: FakeSlack, token: str | None = TOKEN, **kwargs) -> SlackAlerts:
    return SlackAlerts(token=token, base_url=fake.base_url, **kwargs)


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


def test_a_refused_post_is_retried_on_the_next_flush(engine: sa.Engine, fake_slack: FakeSlack):
    add(engine, alert(1), alert(2))
    fake_slack.script.append("msg_too_long")
    first = flush(engine, slack(fake_slack))
    assert (first.sent, first.failed) == (1, 1)  # Slack said no to one: the pass goes on
    assert [r["status"] for r in outbox_rows(engine)] == ["failed", "sent"]
    second = flush(engine, slack(fake_slack))
    assert second.sent == 1
    row = outbox_rows(engine)[0]
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert fake_slack.calls("conversations.history") == []  # a refusal needs no look
    assert sorted(p["text"] for p in fake_slack.posts()) == ["alert 1", "alert 2"]


def test_a_server_error_is_looked_for_in_the_channel_before_it_is_posted_again(
    engine: sa.Engine, fake_slack: FakeSlack
):
    add(engine, alert(1), alert(2))
    fake_slack.script.append("server_error")
    first = flush(engine, slack(fake_slack))
    assert (first.sent, first.unanswered, first.waiting) == (0, 1, 2)  # stopped at once
    assert [r["status"] for r in outbox_rows(engine)] == ["unconfirmed", "pending"]
    second = flush(engine, slack(fake_slack))
    assert (second.sent, second.already_posted) == (2, 0)
    (look,) = fake_slack.calls("conversations.history")
    assert look.body["channel"] == fake_slack.channel_id("#acme")
    assert look.body["include_all_metadata"] == "1"
    assert texts_in(fake_slack) == ["alert 1", "alert 2"]
    row = outbox_rows(engine)[0]
    assert (row["status"], row["attempts"]) == ("sent", 2)


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


def texts_in(fake: FakeSlack, channel: str = "#acme") -> list[str]:
    return [m["text"] for m in fake.messages_in(channel)]


def test_an_answer_lost_after_slack_accepted_the_post_does_not_post_it_again(
    engine: sa.Engine, fake_slack: FakeSlack
):
    alerts = [alert(n) for n in range(1, 6)]
    add(engine, *alerts)
    fake_slack.answer_delay = 2.5  # Slack keeps each post, answers after the client's timeout
    fake_slack.script.extend(["slow"] * len(alerts))
    first = flush(engine, slack(fake_slack, timeout_seconds=1))
    fake_slack.script.clear()  # Slack answers promptly again
    second = flush(engine, slack(fake_slack))
    assert sorted(texts_in(fake_slack)) == sorted(f"alert {n}" for n in range(1, 6))
    rows = outbox_rows(engine)
    assert {r["status"] for r in rows} == {"sent"}
    stored = {m["text"]: m["ts"] for m in fake_slack.messages_in("#acme")}
    assert {r["slack_ts"] for r in rows} == set(stored.values())
    assert first.sent == 0 and first.unanswered == 1  # the pass stopped at the lost answer
    assert second.already_posted == 1 and second.sent == 4


def test_a_poster_that_died_after_posting_is_not_posted_again(
    engine: sa.Engine, fake_slack: FakeSlack
):
    add(engine, alert(1), alert(2))
    long_ago = utcnow() - timedelta(minutes=30)
    with engine.begin() as con:  # a run claimed alert 1, posted it, and died before recording
        con.execute(
            sa.update(alert_outbox)
            .where(alert_outbox.c.alert_key == alert(1).key)
            .values(
                status="sending",
                claimed_at=long_ago,
                attempts=1,
                delivery_key="k-dead-run",
                unconfirmed_since=long_ago,
                posted_channel="#acme",
            )
        )
    fake_slack.keep(
        "#acme",
        "alert 1",
        {"event_type": "licensing_alert", "event_payload": {"delivery_key": "k-dead-run"}},
        ts=slack_ts(long_ago + timedelta(seconds=1)),
    )
    report = flush(engine, slack(fake_slack))
    assert texts_in(fake_slack) == ["alert 1", "alert 2"]
    assert (report.already_posted, report.sent) == (1, 1)
    assert [r["status"] for r in outbox_rows(engine)] == ["sent", "sent"]


def test_without_history_access_a_lost_answer_is_posted_again_and_said_so(
    engine: sa.Engine, fake_slack: FakeSlack
):
    add(engine, alert(1))
    fake_slack.answer_delay = 2.5
    fake_slack.script.append("slow")
    flush(engine, slack(fake_slack, timeout_seconds=1))
    fake_slack.history_script.append("missing_scope")
    report = flush(engine, slack(fake_slack))
    assert report.sent == 1
    assert texts_in(fake_slack) == ["alert 1", "alert 1"]  # the documented residual risk
    (warning,) = report.warnings
    assert "missing_scope" in warning and "channels:history" in warning
    assert "may appear twice" in outbox_rows(engine)[0]["last_error"]


def test_a_rate_limit_stops_the_pass_and_holds_slack_until_retry_after(engine: sa.Engine):
    fake = FakeSlack(retry_after=120)
    fake.start()
    try:
        add(engine, *(alert(n) for n in range(1, 6)))
        fake.script.append("ratelimited")
        first = flush(engine, slack(fake))
        assert len(fake.requests) == 1  # no wait-and-retry, and no other alert tried
        assert (first.sent, first.waiting) == (0, 5)
        assert first.held_until is not None
        assert timedelta(seconds=110) < first.held_until - utcnow() <= timedelta(seconds=121)
        assert {r["status"] for r in outbox_rows(engine)} == {"pending"}
        soon = flush(engine, slack(fake), now=utcnow() + timedelta(seconds=60))
        assert len(fake.requests) == 1 and (soon.sent, soon.waiting) == (0, 5)
        later = flush(engine, slack(fake), now=utcnow() + timedelta(seconds=125))
        assert later.sent == 5
        assert sorted(texts_in(fake)) == sorted(f"alert {n}" for n in range(1, 6))
    finally:
        fake.stop()


def test_a_rate_limit_then_a_server_error_still_posts_each_alert_once(
    engine: sa.Engine, fake_slack: FakeSlack
):
    add(engine, alert(1), alert(2), alert(3))
    fake_slack.script.extend(["ratelimited", "server_error"])
    for seconds in range(0, 20, 2):  # passes, later and later (Retry-After: 1)
        flush(engine, slack(fake_slack), now=utcnow() + timedelta(seconds=seconds))
    assert sorted(texts_in(fake_slack)) == ["alert 1", "alert 2", "alert 3"]
    assert {r["status"] for r in outbox_rows(engine)} == {"sent"}


def test_a_pass_starts_no_alert_after_its_time_budget(engine: sa.Engine, fake_slack: FakeSlack):
    add(engine, alert(1), alert(2), alert(3))
    report = flush(engine, slack(fake_slack), budget_seconds=0)
    assert (report.sent, report.waiting) == (1, 2)  # one alert, then out of time
    assert len(fake_slack.requests) == 1
    assert flush(engine, slack(fake_slack)).sent == 2


def test_a_search_cut_short_goes_on_where_it_stopped(
    engine: sa.Engine, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
):
    """Slack may allow one history request a minute: each pass must get further."""
    monkeypatch.setattr(slack_module, "HISTORY_PAGE", 2)
    add(engine, alert(1))
    with engine.begin() as con:  # a pass posted alert 1 and lost the answer
        con.execute(
            sa.update(alert_outbox).values(
                status="unconfirmed",
                attempts=1,
                delivery_key="k-1",
                unconfirmed_since=utcnow() - timedelta(seconds=1),
                posted_channel="#acme",
            )
        )
    metadata = {"event_type": "licensing_alert", "event_payload": {"delivery_key": "k-1"}}
    fake_slack.keep("#acme", "alert 1", metadata)
    for n in range(1, 6):  # then the channel moved on
        fake_slack.keep("#acme", f"chatter {n}")
    for seconds in (0, 2, 4):  # each pass: one page, then 429 (Retry-After: 1)
        fake_slack.history_script.extend(["ok", "ratelimited"])
        flush(engine, slack(fake_slack), now=utcnow() + timedelta(seconds=seconds))
    row = outbox_rows(engine)[0]
    assert (row["status"], row["last_error"]) == (
        "sent",
        "Slack's answer was lost; found in the channel, not posted again",
    )
    assert fake_slack.posts() == [] and len(fake_slack.messages_in("#acme")) == 6
    pages = [float(r.body["latest"]) for r in fake_slack.calls("conversations.history")]
    stored = [float(m["ts"]) for m in fake_slack.messages_in("#acme")]
    assert pages[2] == pages[1] == stored[4]  # pass 2 went on below what pass 1 had read
    assert pages[4] == pages[3] == stored[2]


def test_a_search_that_uses_up_the_pass_posts_next_pass_without_searching_again(
    engine: sa.Engine, fake_slack: FakeSlack
):
    add(engine, alert(1), alert(2))
    fake_slack.script.append("server_error")
    flush(engine, slack(fake_slack))  # alert 1: no answer
    fake_slack.history_script.append("slow")  # the search answers after the pass's time
    report = flush(engine, slack(fake_slack), budget_seconds=0.5)
    assert (report.sent, report.stopped, report.waiting) == (0, "out of time for this pass", 2)
    assert [r["status"] for r in outbox_rows(engine)] == ["pending", "pending"]  # not there
    assert flush(engine, slack(fake_slack)).sent == 2
    assert len(fake_slack.calls("conversations.history")) == 1
    assert texts_in(fake_slack) == ["alert 1", "alert 2"]


def test_a_token_rejected_mid_pass_keeps_its_operator_alert(
    engine: sa.Engine, fake_slack: FakeSlack
):
    add(engine, alert(1), alert(2), alert(3))
    fake_slack.script.extend(["ok", "invalid_auth"])
    report = flush(engine, slack(fake_slack))
    assert (report.sent, report.auth_error, report.waiting) == (1, "invalid_auth", 2)
    assert report.operator_alert_raised
    assert outbox_rows(engine, kind="operator")[0]["status"] == "raised"
