"""The real slack-sdk WebClient against a fake Slack Web API on 127.0.0.1."""

import time

from licensing_pipeline.remediation import messages
from licensing_pipeline.remediation.slack import NO_TOKEN, SlackAlerts
from licensing_pipeline_tests.remediation.fakes import FakeSlack
from licensing_pipeline_tests.remediation.test_messages import URL, ticket

TOKEN = "xoxb-test-token"


def slack(fake: FakeSlack, **kwargs) -> SlackAlerts:
    return SlackAlerts(
        token=TOKEN,
        base_url=fake.base_url,
        default_channel="#licensing-compliance",
        server_error_backoff_seconds=0.05,
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


def test_a_rate_limit_is_waited_out_and_retried(fake_slack: FakeSlack):
    fake_slack.script.extend(["ratelimited"])
    started = time.monotonic()
    result = slack(fake_slack).post("#acme", messages.test_message("#acme"))
    assert result.ok
    assert len(fake_slack.requests) == 2
    assert time.monotonic() - started >= 1.0  # Retry-After: 1


def test_a_server_error_is_retried(fake_slack: FakeSlack):
    fake_slack.script.extend(["server_error"])
    result = slack(fake_slack).post("#acme", messages.test_message("#acme"))
    assert result.ok and len(fake_slack.requests) == 2


def test_a_lasting_server_error_is_reported_not_raised(fake_slack: FakeSlack):
    fake_slack.script.extend(["server_error"] * 3)
    result = slack(fake_slack).post("#acme", messages.test_message("#acme"))
    assert not result.ok and not result.auth_failed
    assert len(fake_slack.requests) == 3  # the first try and two retries
    assert result.error


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
    assert not result.ok and result.error
