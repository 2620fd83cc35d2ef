"""Local HTTP servers on 127.0.0.1 that stand in for Slack's Web API and a ticket system."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    ok: bool = False


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # a dict (sent as JSON) or text
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering


class _Server:
    """A threaded HTTP server that records every request and answers from ``respond``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                body: Any
                if "x-www-form-urlencoded" in self.headers.get("Content-Type", ""):
                    body = dict(parse_qsl(raw))
                else:
                    try:
                        body = json.loads(raw) if raw else None
                    except json.JSONDecodeError:
                        body = raw
                request = Recorded(method, self.path, dict(self.headers.items()), body)
                with owner._lock:
                    owner.requests.append(request)
                reply = owner.respond(request)
                payload = (
                    json.dumps(reply.body).encode()
                    if isinstance(reply.body, dict | list)
                    else str(reply.body or "").encode()
                )
                if reply.delay:
                    time.sleep(reply.delay)
                content_type = (
                    "application/json" if isinstance(reply.body, dict | list) else "text/plain"
                )
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", f"{content_type}; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a delayed answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def respond(self, request: Recorded) -> Reply:
        raise NotImplementedError


class FakeSlack(_Server):
    """Slack's Web API, enough of it: ``chat.postMessage``, ``conversations.history`` and
    ``conversations.list``.

    Channels get an id on first use ("#acme" → "C0000001"); accepted posts are kept per channel
    with their metadata, and history needs the id, as Slack's does. Answers ``ok`` unless told
    otherwise: ``script`` (one-shot behaviours of chat.postMessage, in order),
    ``history_script`` (of conversations.history), ``unknown_channels`` (channel_not_found),
    ``revoked_tokens`` (invalid_auth). Behaviours: ok, slow (accept and keep the message, answer
    after ``answer_delay`` seconds; for history, answer late), ratelimited (429 +
    Retry-After), channel_not_found, invalid_auth, server_error (a 500 with an HTML page); for
    history also missing_scope and not_in_channel.
    """

    def __init__(self, retry_after: int = 1, answer_delay: float = 1.0) -> None:
        super().__init__()
        self.script: deque[str] = deque()
        self.history_script: deque[str] = deque()
        self.unknown_channels: set[str] = set()
        self.revoked_tokens: set[str] = set()
        self.retry_after = retry_after
        self.answer_delay = answer_delay
        self.channel_ids: dict[str, str] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}  # by channel id, oldest first
        self._last_ts = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def posts(self) -> list[dict[str, Any]]:
        """Bodies of the chat.postMessage requests Slack accepted (kept as messages)."""
        return [r.body for r in self.requests if r.path.endswith("chat.postMessage") and r.ok]

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(method)]

    def channel_id(self, channel: str) -> str:
        if channel in self.channel_ids.values():
            return channel
        with self._lock:
            return self.channel_ids.setdefault(channel, f"C{len(self.channel_ids) + 1:07d}")

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        return list(self.messages.get(self.channel_id(channel), []))

    def keep(
        self,
        channel: str,
        text: str,
        metadata: dict[str, Any] | None = None,
        ts: str | None = None,
    ) -> str:
        """Store a message as if it had been posted (now, or at ``ts``); returns its ts."""
        channel_id = self.channel_id(channel)
        with self._lock:
            if ts is None:
                self._last_ts = max(time.time(), self._last_ts + 0.000001)
                ts = f"{self._last_ts:.6f}"
            message = {"type": "message", "ts": ts, "text": text}
            if metadata:
                message["metadata"] = metadata
            self.messages.setdefault(channel_id, []).append(message)
        return ts

    def respond(self, request: Recorded) -> Reply:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token in self.revoked_tokens:
            return Reply(200, {"ok": False, "error": "invalid_auth"})
        method = request.path.rsplit("/", 1)[-1]
        body = request.body if isinstance(request.body, dict) else {}
        if method == "conversations.history":
            return self._history(body)
        if method == "conversations.list":
            return self._list(body)
        return self._post(request, body)

    def _failure(self, behaviour: str) -> Reply | None:
        if behaviour == "ratelimited":
            return Reply(
                429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(self.retry_after)}
            )
        if behaviour == "server_error":
            return Reply(500, "<html><body>Internal Server Error</body></html>")
        if behaviour != "ok" and behaviour != "slow":
            return Reply(200, {"ok": False, "error": behaviour})
        return None

    def _post(self, request: Recorded, body: dict[str, Any]) -> Reply:
        channel = str(body.get("channel", ""))
        behaviour = self.script.popleft() if self.script else "ok"
        if channel in self.unknown_channels:
            if behaviour in ("ok", "slow"):
                behaviour = "channel_not_found"
        else:
            self.channel_id(channel)  # the channel exists, whatever happens to this post
        failure = self._failure(behaviour)
        if failure is not None:
            return failure
        ts = self.keep(channel, str(body.get("text", "")), body.get("metadata"))
        request.ok = True
        return Reply(
            200,
            {
                "ok": True,
                "channel": self.channel_id(channel),
                "ts": ts,
                "message": {"text": body.get("text", "")},
            },
            delay=self.answer_delay if behaviour == "slow" else 0.0,
        )

    def _history(self, body: dict[str, Any]) -> Reply:
        behaviour = self.history_script.popleft() if self.history_script else "ok"
        failure = self._failure(behaviour)
        if failure is not None:
            return failure
        channel = str(body.get("channel", ""))
        if channel not in self.channel_ids.values():  # Slack wants the id, not "#name"
            return Reply(200, {"ok": False, "error": "channel_not_found"})
        oldest = float(body.get("oldest") or 0)
        latest = float(body.get("latest") or "inf")
        with_metadata = body.get("include_all_metadata") in ("1", "true")
        newest_first = [
            {k: v for k, v in m.items() if k != "metadata" or with_metadata}
            for m in reversed(self.messages.get(channel, []))
            if oldest < float(m["ts"]) < latest
        ]
        reply = self._page(body, "messages", newest_first, default_limit=100)
        reply.delay = self.answer_delay if behaviour == "slow" else 0.0
        return reply

    def _list(self, body: dict[str, Any]) -> Reply:
        channels = [
            {"id": cid, "name": name.lstrip("#"), "is_archived": False}
            for name, cid in self.channel_ids.items()
            if name.startswith("#")
        ]
        return self._page(body, "channels", channels, default_limit=100)

    @staticmethod
    def _page(body: dict[str, Any], name: str, items: list[Any], default_limit: int) -> Reply:
        start = int(body.get("cursor") or 0)
        end = start + int(body.get("limit") or default_limit)
        more = end < len(items)
        return Reply(
            200,
            {
                "ok": True,
                name: items[start:end],
                "has_more": more,
                "response_metadata": {"next_cursor": str(end) if more else ""},
            },
        )


class FakeTicketSystem(_Server):
    """A webhook receiver or Jira Cloud: answers from ``script`` (Replies), else ``default``."""

    def __init__(self, default: Reply | None = None) -> None:
        super().__init__()
        self.script: deque[Reply] = deque()
        self.default = default or Reply(201, {"id": "10001", "key": "LIC-1"})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def respond(self, request: Recorded) -> Reply:
        return self.script.popleft() if self.script else self.default
