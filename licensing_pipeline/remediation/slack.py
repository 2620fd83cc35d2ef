"""Posting to Slack through slack-sdk's WebClient, one request at a time.

``post`` never raises: it returns what happened, so the outbox can record it. A channel
that cannot be posted to falls back to the default channel (and says so in the message);
a rejected token is reported as ``auth_failed`` so the caller stops posting. Nothing here
waits or retries: a 429 is reported with its Retry-After, and a post whose answer was lost
(timed out, cut off, a 5xx) as ``unanswered``, because Slack may have posted it. The outbox
decides what comes next; ``find_posted`` lets it look for such a post before trying again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import urllib.error
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
from pydantic import Field
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from licensing_pipeline import environment as env
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
# The message metadata that carries an alert's delivery key, so a post whose answer was lost
# can be found in the channel's history.
METADATA_EVENT = "licensing_alert"
HISTORY_SCOPES = "channels:history, groups:history, channels:read and groups:read"
DEFAULT_RETRY_AFTER = 60.0  # a 429 without a usable Retry-After
OUT_OF_TIME = "out of time for this pass"
MAX_RETRY_AFTER = 3600.0
LIST_PAGE, LIST_PAGES = 1000, 5  # conversations.list: channel name → id
HISTORY_PAGE, HISTORY_PAGES = 200, 5  # per look; a longer window is read on by the next one
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")

# slack-sdk logs request details at DEBUG; keep its chatter (never the token: it redacts
# Authorization) out of Dagster's logs unless something goes wrong.
_sdk_logger = logging.getLogger("licensing_pipeline.slack_sdk")
_sdk_logger.setLevel(logging.WARNING)


@dataclass(frozen=True)
class Failure:
    """A request Slack did not answer ``ok``."""

    error: str  # Slack's error code, or a short description
    retry_after: float | None = None  # 429: Slack asks to wait this long (seconds)
    unanswered: bool = False  # sent, answer lost (timeout, cut connection, 5xx): maybe done
    unreachable: bool = False  # never sent (connection refused, unknown host)
    auth_failed: bool = False


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
    retry_after: float | None = None
    unanswered: bool = False
    unreachable: bool = False

    @property
    def note(self) -> str | None:
        if self.fell_back_from:
            return (
                f"{self.fell_back_from}: {self.fallback_reason}; posted to {self.channel} instead"
            )
        return None


@dataclass(frozen=True)
class Lookup:
    """What a look through a channel's recent history found."""

    channel: str
    ts: str | None = None  # the message is there
    absent: bool = False  # the whole window was read: it is not there
    failure: Failure | None = None
    cannot_check: bool = False  # Slack will not show the history (scope, membership, ...)
    read_to: datetime | None = None  # cut short: the window below this is still to read

    def upto(self, ts: str) -> Lookup:
        return self if self.cannot_check else replace(self, read_to=slack_time(ts))


def slack_ts(when: datetime) -> str:
    """A naive UTC time as Slack's "seconds.microseconds" timestamp, exactly."""
    delta = when - datetime(1970, 1, 1)
    return f"{delta.days * 86400 + delta.seconds}.{delta.microseconds:06d}"


def slack_time(ts: str) -> datetime:
    seconds, _, fraction = ts.partition(".")
    return datetime(1970, 1, 1) + timedelta(
        seconds=int(seconds), microseconds=int((fraction + "000000")[:6])
    )


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
    """Slack through a bot token; without one nothing is posted and every alert is recorded
    as "not sent: no token".

    SLACK_BOT_TOKEN                  the bot token (xoxb-...)
    SLACK_API_URL                    the Web API base URL (default https://slack.com/api/)
    LICENSING_SLACK_DEFAULT_CHANNEL  where alerts go when a tenant has no slack_channel, or
                                     its channel is not found
    LICENSING_SLACK_DATA_CHANNEL     failed nightly runs and failed asset checks
    """

    token: str | None = Field(default=None, repr=False)  # a secret
    base_url: str | None = None
    default_channel: str = "#licensing-compliance"
    data_channel: str = "#data-engineering"
    timeout_seconds: float = 10

    @classmethod
    def from_env(cls) -> SlackAlerts:
        return cls(
            **env.given(
                token=env.secret("SLACK_BOT_TOKEN"),
                base_url=env.text("SLACK_API_URL"),
                default_channel=env.text("LICENSING_SLACK_DEFAULT_CHANNEL"),
                data_channel=env.text("LICENSING_SLACK_DATA_CHANNEL"),
            )
        )

    @property
    def configured(self) -> bool:
        return bool(self.token and self.token.strip())

    def fingerprint(self) -> str | None:
        return token_fingerprint(self.token) if self.token and self.token.strip() else None

    def client(self) -> WebClient:
        """No retry handlers: slack-sdk's would sleep out a Retry-After inside the call, or send
        again a post whose answer was lost (and so post it twice)."""
        kwargs: dict[str, Any] = {}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        return WebClient(
            token=self.token,
            timeout=self.timeout_seconds,  # type: ignore[arg-type]  # urllib takes a float
            logger=_sdk_logger,
            retry_handlers=[],
            **kwargs,
        )

    def post(
        self,
        channel: str | None,
        message: Message,
        *,
        delivery_key: str | None = None,
        before_send: Callable[[str], None] | None = None,
    ) -> PostResult:
        """Post ``message`` ({"text", "blocks"}) to ``channel`` or the default channel.

        ``delivery_key`` goes into the message's metadata; ``before_send(channel)`` is called
        before each request, so the caller can record the attempt first.
        """
        target = (channel or "").strip() or self.default_channel
        if not self.configured:
            return PostResult(ok=False, channel=target, error=NO_TOKEN, not_sent=True)
        client = self.client()
        send = before_send or (lambda _: None)
        first = self._post_once(client, target, message, delivery_key, send)
        if first.ok or first.error not in CHANNEL_ERRORS or target == self.default_channel:
            return first
        reason = str(first.error)
        second = self._post_once(
            client,
            self.default_channel,
            _with_fallback_note(message, target, reason),
            delivery_key,
            send,
        )
        return replace(second, fell_back_from=target, fallback_reason=reason)

    def _post_once(
        self,
        client: WebClient,
        channel: str,
        message: Message,
        delivery_key: str | None,
        before_send: Callable[[str], None],
    ) -> PostResult:
        metadata = (
            {"event_type": METADATA_EVENT, "event_payload": {"delivery_key": delivery_key}}
            if delivery_key
            else None
        )
        before_send(channel)
        response, failure = _call(
            client.chat_postMessage,
            channel=channel,
            text=message["text"],
            blocks=message.get("blocks") or None,
            unfurl_links=False,
            unfurl_media=False,
            metadata=metadata,
        )
        if failure is not None:
            return PostResult(
                ok=False,
                channel=channel,
                error=failure.error,
                auth_failed=failure.auth_failed,
                retry_after=failure.retry_after,
                unanswered=failure.unanswered,
                unreachable=failure.unreachable,
            )
        assert response is not None
        return PostResult(ok=True, channel=channel, ts=str(response.get("ts") or ""))

    def find_posted(
        self,
        channel: str,
        delivery_key: str,
        *,
        oldest: datetime,
        latest: datetime,
        deadline: float | None = None,
    ) -> Lookup:
        """Look for the message carrying ``delivery_key`` among those posted to ``channel``
        from ``oldest`` to before ``latest`` (naive UTC), newest first, at most HISTORY_PAGES
        pages; no request is started after ``deadline`` (time.monotonic). A look cut short
        says where it got to (``read_to``), so the next one goes on from there: Slack may
        allow a non-Marketplace app one history request a minute."""
        client = self.client()
        channel_id = channel.strip()
        if not _CHANNEL_ID.fullmatch(channel_id):
            found = self._channel_id(client, channel, deadline)
            if isinstance(found, Lookup):
                return found
            channel_id = found
        before = slack_ts(latest)
        for _ in range(HISTORY_PAGES):
            if deadline is not None and time.monotonic() >= deadline:
                return Lookup(channel, failure=Failure(OUT_OF_TIME, unanswered=True)).upto(before)
            response, failure = _call(
                client.conversations_history,
                channel=channel_id,
                oldest=slack_ts(oldest),
                latest=before,
                limit=HISTORY_PAGE,
                include_all_metadata=True,
            )
            if failure is not None:
                return _failed_lookup(channel, failure).upto(before)
            assert response is not None
            messages = response.get("messages") or []
            for message in messages:
                if _delivery_key(message) == delivery_key:
                    return Lookup(channel, ts=str(message.get("ts") or ""))
            if not response.get("has_more") or not messages:
                return Lookup(channel, absent=True)
            before = str(messages[-1]["ts"])  # newest first: go on below the oldest read
        return Lookup(
            channel,
            failure=Failure(f"{HISTORY_PAGES * HISTORY_PAGE} messages read, more to go"),
        ).upto(before)

    def _channel_id(self, client: WebClient, channel: str, deadline: float | None) -> str | Lookup:
        """conversations.history wants a channel's id; chat.postMessage also takes its name."""
        wanted = channel.strip().lstrip("#")
        cursor: str | None = None
        for _ in range(LIST_PAGES):
            if deadline is not None and time.monotonic() >= deadline:
                return Lookup(channel, failure=Failure(OUT_OF_TIME, unanswered=True))
            response, failure = _call(
                client.conversations_list,
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=LIST_PAGE,
                cursor=cursor,
            )
            if failure is not None:
                return _failed_lookup(channel, failure)
            assert response is not None
            for found in response.get("channels") or []:
                if found.get("name") == wanted:
                    return str(found["id"])
            cursor = _next_cursor(response)
            if not cursor:
                break
        return Lookup(
            channel,
            cannot_check=True,
            failure=Failure("channel_not_found: not among the channels the bot can list"),
        )


def _delivery_key(message: Mapping[str, Any]) -> str | None:
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != METADATA_EVENT:
        return None
    key = (metadata.get("event_payload") or {}).get("delivery_key")
    return str(key) if key else None


def _next_cursor(response: SlackResponse) -> str | None:
    return (response.get("response_metadata") or {}).get("next_cursor") or None


def _failed_lookup(channel: str, failure: Failure) -> Lookup:
    """``cannot_check`` when Slack answered but will not show the history (a missing history
    or read scope, a channel the bot is not in): looking again would not help."""
    if failure.error == "missing_scope":  # not chat:write: the token itself is fine
        return Lookup(channel, failure=replace(failure, auth_failed=False), cannot_check=True)
    transient = failure.retry_after or failure.unanswered or failure.unreachable
    return Lookup(channel, failure=failure, cannot_check=not (transient or failure.auth_failed))


def _retry_after(headers: Mapping[str, Any]) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            text = str(value[0] if isinstance(value, list | tuple) else value).strip()
            if text.isdigit():
                return min(float(text), MAX_RETRY_AFTER)
    return DEFAULT_RETRY_AFTER


def _call(
    method: Callable[..., SlackResponse], **kwargs: Any
) -> tuple[SlackResponse | None, Failure | None]:
    """Call a Web API method once; a failure says whether Slack may have acted on it."""
    try:
        return method(**kwargs), None
    except SlackApiError as exc:
        response = exc.response
        if response.status_code == 429:
            return None, Failure("ratelimited", retry_after=_retry_after(response.headers))
        if response.status_code >= 500:
            return None, Failure(f"http_{response.status_code}", unanswered=True)
        data = response.data if isinstance(response.data, dict) else {}
        code = str(data.get("error") or f"http_{response.status_code}")[:200]
        return None, Failure(code, auth_failed=code in AUTH_ERRORS)
    except urllib.error.URLError as exc:  # raised before the request was sent
        return None, Failure(_describe(exc), unreachable=True)
    except Exception as exc:  # a timeout or a cut connection while waiting for the answer
        return None, Failure(_describe(exc), unanswered=True)


def _describe(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
