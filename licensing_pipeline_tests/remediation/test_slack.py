"""The real slack-sdk WebClient against a fake Slack Web API on 127.0.0.1."""

from datetime import timedelta

from licensing_pipeline.remediation import messages
from licensing_pipeline.remediation.outbox import utcnow
from licensing_pipeline.remediation.slack import (
    METADATA_EVENT,
    NO_TOKEN,
    SlackAlerts,
    slack_time,
    slack_ts,
)
from licensing_pipeline_tests.remediation.fakes import FakeSlack
from licensing_pipeline_tests.remediation.test_messages import URL, ticket

TOKEN = "xoxb-test-token"


def slack(fake: FakeSlack, **kwargs) -> SlackAlerts:
    return SlackAlerts(
        token=TOKEN,
        base_url=fake.base_url,
        default_channel="#licensing-compliance",
        **kwargs,
    )


def test_posts_the_exact_block_kit_payload_with_the_bot_token(fake_slack: FakeSlack):
    message = messages.critical_alert(ticket(), dagster_url=URL)
    result = slack(fake_slack).post("#acme-compliance", message)
    assert result.ok and result.channel == "#acme-compliance" and result.ts
    (request,) = fake_slack.requests
    assert request.path == "/api/chat.postMessage"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.body == {
        "channel": "#acme-compliance",
        "text": message["text"],
        "blocks": message["blocks"],
        "unfurl_links": False,
        "unfurl_media": False,
    }


def test_the_delivery_key_travels_in_the_message_metadata(fake_slack: FakeSlack):
    result = slack(fake_slack).post("#acme", messages.test_message("#acme"), delivery_key="k-1")
    assert result.ok
    (request,) = fake_slack.requests
    assert request.body["metadata"] == {
        "event_type": METADATA_EVENT,
        "event_payload": {"delivery_key": "k-1"},
    }


def test_a_rate_limit_is_reported_with_its_retry_after_not_waited_out(fake_slack: FakeSlack):
    fake_slack.script.append("ratelimited")
    result = slack(fake_slack).post("#acme", messages.test_message("#acme"))
    assert not result.ok and result.retry_after == 1  # the fake's Retry-After
    assert len(fake_slack.requests) == 1  # slack-sdk's retry handlers are off
    assert fake_slack.messages_in("#acme") == []


def test_a_server_error_is_unanswered_and_not_sent_again(fake_slack: FakeSlack):
    fake_slack.script.append("server_error")
    result = slack(fake_slack).post("#acme", messages.test_message("#acme"))
    assert not result.ok and result.unanswered and not result.auth_failed
    assert result.error == "http_500"
    assert len(fake_slack.requests) == 1


def test_an_answer_after_the_timeout_is_unanswered_though_slack_kept_the_post(
    fake_slack: FakeSlack,
):
    fake_slack.answer_delay = 2.5
    fake_slack.script.append("slow")
    result = slack(fake_slack, timeout_seconds=1).post("#acme", messages.test_message("#acme"))
    assert not result.ok and result.unanswered and "TimeoutError" in str(result.error)
    assert len(fake_slack.messages_in("#acme")) == 1 and len(fake_slack.requests) == 1


def test_a_bad_channel_falls_back_to_the_default_channel_and_says_so(fake_slack: FakeSlack):
    fake_slack.unknown_channels.add("#gone")
    message = messages.critical_alert(ticket(), dagster_url=URL)
    result = slack(fake_slack).post("#gone", message)
    assert result.ok and result.channel == "#licensing-compliance"
    assert result.fell_back_from == "#gone" and result.fallback_reason == "channel_not_found"
    assert result.note == "#gone: channel_not_found; posted to #licensing-compliance instead"
    (accepted,) = fake_slack.posts()
    assert accepted["channel"] == "#licensing-compliance"
    assert accepted["blocks"][:-1] == message["blocks"]
    assert (
        "#gone could not be reached (channel_not_found)"
        in (accepted["blocks"][-1]["elements"][0]["text"])
    )


def test_a_revoked_token_is_reported_as_an_auth_failure(fake_slack: FakeSlack):
    fake_slack.revoked_tokens.add(TOKEN)
    result = slack(fake_slack).post("#acme", messages.test_message("#acme"))
    assert not result.ok and result.auth_failed and result.error == "invalid_auth"
    assert len(fake_slack.requests) == 1


def test_without_a_token_nothing_is_attempted(fake_slack: FakeSlack):
    result = SlackAlerts(base_url=fake_slack.base_url).post("#acme", messages.test_message("#a"))
    assert result.not_sent and result.error == NO_TOKEN
    assert fake_slack.requests == []


def test_an_unreachable_slack_is_an_error_not_an_exception():
    result = SlackAlerts(token=TOKEN, base_url="http://127.0.0.1:9/api/", timeout_seconds=2).post(
        "#acme", messages.test_message("#acme")
    )
    assert not result.ok and result.error and result.unreachable and not result.unanswered


def test_a_post_is_found_by_its_delivery_key_through_the_channel_id(fake_slack: FakeSlack):
    window = {"oldest": utcnow() - timedelta(minutes=2), "latest": utcnow() + timedelta(minutes=2)}
    client = slack(fake_slack)
    client.post("#acme", messages.test_message("#acme"), delivery_key="k-other")
    posted = client.post("#acme", messages.test_message("#acme"), delivery_key="k-1")
    found = client.find_posted("#acme", "k-1", **window)
    assert found.ts == posted.ts and not found.cannot_check
    assert len(fake_slack.calls("conversations.list")) == 1  # history wants the id
    (history,) = fake_slack.calls("conversations.history")
    assert history.body["channel"] == fake_slack.channel_id("#acme")
    assert float(history.body["oldest"]) < float(str(posted.ts)) < float(history.body["latest"])
    assert client.find_posted("#acme", "k-2", **window).absent
    earlier = client.find_posted(
        "#acme", "k-1", oldest=window["oldest"], latest=utcnow() + timedelta(seconds=1)
    )
    assert earlier.ts == posted.ts
    outside = client.find_posted("#acme", "k-1", oldest=window["oldest"], latest=window["oldest"])
    assert outside.absent  # only the window is read


def test_slack_timestamps_convert_exactly():
    assert slack_ts(slack_time("1790000000.000123")) == "1790000000.000123"
    assert slack_time("1790000000.5") == slack_time("1790000000.500000")


def test_history_slack_will_not_show_cannot_be_checked(fake_slack: FakeSlack):
    client = slack(fake_slack)
    client.post("#acme", messages.test_message("#acme"), delivery_key="k-1")
    window = {"oldest": utcnow() - timedelta(minutes=2), "latest": utcnow() + timedelta(minutes=2)}
    for error in ("missing_scope", "not_in_channel"):
        fake_slack.history_script.append(error)
        lookup = client.find_posted("#acme", "k-1", **window)
        assert lookup.cannot_check and lookup.failure and lookup.failure.error == error
        assert not lookup.failure.auth_failed and lookup.read_to is None
    fake_slack.history_script.append("ratelimited")
    limited = client.find_posted("#acme", "k-1", **window)
    assert not limited.cannot_check and limited.failure and limited.failure.retry_after == 1
    assert limited.read_to == window["latest"]  # nothing read: the next look starts over
    unknown = client.find_posted("#nowhere", "k-1", **window)
    assert unknown.cannot_check and unknown.failure
    assert "channel_not_found" in unknown.failure.error
