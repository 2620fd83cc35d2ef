"""Local HTTP servers on 127.0.0.1 that stand in for Slack's Web API and a ticket system."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
                try:
                    body: Any = json.loads(raw) if raw else None
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
                self.send_response(reply.status)
                content_type = (
                    "application/json" if isinstance(reply.body, dict | list) else "text/plain"
                )
                self.send_header("Content-Type", f"{content_type}; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

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
    """Slack's Web API, enough of it: ``chat.postMessage``.

    Answers ``ok`` unless told otherwise: ``script`` (one-shot behaviours, in order),
    ``unknown_channels`` (channel_not_found), ``revoked_tokens`` (invalid_auth).
    Behaviours: ok, ratelimited (429 + Retry-After), channel_not_found, invalid_auth,
    server_error (a 500 with an HTML page).
    """

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__()
        self.script: deque[str] = deque()
        self.unknown_channels: set[str] = set()
        self.revoked_tokens: set[str] = set()
        self.retry_after = retry_after
        self._ts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def posts(self) -> list[dict[str, Any]]:
        """Bodies of the chat.postMessage requests Slack accepted (answered ok)."""
        return [r.body for r in self.requests if r.path.endswith("chat.postMessage") and r.ok]

    def respond(self, request: Recorded) -> Reply:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        channel = (request.body or {}).get("channel", "")
        behaviour = self.script.popleft() if self.script else "ok"
        if token in self.revoked_tokens:
            behaviour = "invalid_auth"
        elif behaviour == "ok" and channel in self.unknown_channels:
            behaviour = "channel_not_found"
        if behaviour == "ratelimited":
            return Reply(
                429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(self.retry_after)}
            )
        if behaviour == "server_error":
            return Reply(500, "<html><body>Internal Server Error</body></html>")
        if behaviour in ("channel_not_found", "invalid_auth"):
            return Reply(200, {"ok": False, "error": behaviour})
        self._ts += 1
        request.ok = True
        return Reply(
            200,
            {
                "ok": True,
                "channel": "C0" + str(abs(hash(channel)) % 10**8),
                "ts": f"1790000000.{self._ts:06d}",
                "message": {"text": (request.body or {}).get("text", "")},
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
