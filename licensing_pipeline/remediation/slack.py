"""Posting to Slack through slack-sdk's WebClient, with its rate-limit and server-error retries.

``post`` never raises: it returns what happened, so the outbox can record it. A channel
that cannot be posted to falls back to the default channel (and says so in the message);
a rejected token is reported as ``auth_failed`` so the caller stops posting.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from typing import Any

import dagster as dg
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator

from licensing_pipeline.remediation.messages import Message, escape

NO_TOKEN = "not sent: no token"

# The token cannot post anywhere: stop, and tell an operator once.
AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "not_allowed_token_type",
        "team_access_not_granted",
        "org_login_required",
        "ekm_access_denied",
    }
)
# This channel cannot be posted to: use the default channel instead.
CHANNEL_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "cannot_reply_to_message",
    }
)

# slack-sdk logs request details at DEBUG; keep its chatter (never the token: it redacts
# Authorization) out of Dagster's logs unless something goes wrong.
_sdk_logger = logging.getLogger("licensing_pipeline.slack_sdk")
_sdk_logger.setLevel(logging.WARNING)


@dataclass(frozen=True)
class PostResult:
    ok: bool
    channel: str  # where the message went, or would have gone
    ts: str | None = None
    error: str | None = None  # Slack's error code, or a short description
    fell_back_from: str | None = None  # the tenant channel that could not be posted to
    fallback_reason: str | None = None
    auth_failed: bool = False
    not_sent: bool = False  # no token: recorded, never attempted

    @property
    def note(self) -> str | None:
        if self.fell_back_from:
            return (
                f"{self.fell_back_from}: {self.fallback_reason}; posted to {self.channel} instead"
            )
        return None


def token_fingerprint(token: str) -> str:
    """Identifies a token in the repository without storing it."""
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()[:12]


def _with_fallback_note(message: Message, channel: str, reason: str) -> Message:
    note = {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": (
                    f"Posted here because {escape(channel)} could not be reached ({reason}). "
                    "Invite the bot there or fix the channel in tenants.csv / the routing table."
                ),
            }
        ],
    }
    return {**message, "blocks": [*message.get("blocks", []), note]}


class SlackAlerts(dg.ConfigurableResource):
    """Slack through a bot token (SLACK_BOT_TOKEN); SLACK_API_URL overrides the API base URL.

    Without a token nothing is posted and every alert is recorded as "not sent: no token".
    """

    token: str | None = None
    base_url: str | None = None
    default_channel: str = "#licensing-compliance"
    data_channel: str = "#data-engineering"
    timeout_seconds: int = 10
    rate_limit_retries: int = 2
    server_error_retries: int = 2
    server_error_backoff_seconds: float = 0.5

    @property
    def configured(self) -> bool:
        return bool(self.token and self.token.strip())

    def fingerprint(self) -> str | None:
        return token_fingerprint(self.token) if self.token and self.token.strip() else None

    def client(self) -> WebClient:
        kwargs: dict[str, Any] = {}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        client = WebClient(
            token=self.token, timeout=self.timeout_seconds, logger=_sdk_logger, **kwargs
        )
        client.retry_handlers.append(
            RateLimitErrorRetryHandler(max_retry_count=self.rate_limit_retries)
        )
        client.retry_handlers.append(
            ServerErrorRetryHandler(
                max_retry_count=self.server_error_retries,
                interval_calculator=BackoffRetryIntervalCalculator(
                    backoff_factor=self.server_error_backoff_seconds
                ),
            )
        )
        return client

    def post(self, channel: str | None, message: Message) -> PostResult:
        """Post ``message`` ({"text", "blocks"}) to ``channel`` or the default channel."""
        target = (channel or "").strip() or self.default_channel
        if not self.configured:
            return PostResult(ok=False, channel=target, error=NO_TOKEN, not_sent=True)
        client = self.client()
        first = self._post_once(client, target, message)
        if first.ok or first.error not in CHANNEL_ERRORS or target == self.default_channel:
            return first
        reason = str(first.error)
        second = self._post_once(
            client, self.default_channel, _with_fallback_note(message, target, reason)
        )
        return replace(second, fell_back_from=target, fallback_reason=reason)

    def _post_once(self, client: WebClient, channel: str, message: Message) -> PostResult:
        try:
            response = client.chat_postMessage(
                channel=channel,
                text=message["text"],
                blocks=message.get("blocks") or None,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            code = str(data.get("error") or f"http_{exc.response.status_code}")
            return PostResult(
                ok=False, channel=channel, error=code, auth_failed=code in AUTH_ERRORS
            )
        except Exception as exc:  # a refused connection, a timeout, a non-JSON 500 page
            return PostResult(ok=False, channel=channel, error=_describe(exc))
        return PostResult(ok=True, channel=channel, ts=str(response.get("ts") or ""))


def _describe(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
