"""The external ticket system: a generic JSON webhook, or Jira Cloud's "create issue".

Optional: with neither configured, tickets live only in the licensing repository.
Transient failures (connection errors, 429, 5xx) are retried with exponential backoff
inside one call; whatever still fails is left on the ticket and retried on the next tick.
Errors name the host only: a URL's path or query and the credentials never leave here.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import pandas as pd
from pydantic import Field

from licensing_pipeline import environment as env
from licensing_pipeline.remediation.messages import figure

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "licensing-pipeline/0.1 (+remediation tickets)"
TICKET_EVENTS = ("acknowledged", "resolved", "reopened", "wont_fix")  # a Jira move may follow
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"  # the webserver of `licensing-pipeline dev`


@dataclass(frozen=True)
class SinkResult:
    ok: bool
    external_id: str | None = None
    external_url: str | None = None
    error: str | None = None
    attempts: int = 0


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _day(value: Any) -> str:
    return "" if value is None or value is pd.NA else pd.Timestamp(value).date().isoformat()


def _label(text: str) -> str:
    """Jira labels cannot contain spaces."""
    return re.sub(r"[^A-Za-z0-9_.:-]+", "-", text).strip("-")[:255]


def ticket_summary(ticket: Mapping[str, Any]) -> str:
    return (
        f"[{ticket['severity']}] {ticket['check']} for {ticket['tenant_id']} "
        f"({ticket['subject']}, {ticket['period']})"
    )[:255]


def ticket_description_lines(ticket: Mapping[str, Any], dagster_url: str) -> list[str]:
    return [
        str(ticket.get("details") or "").strip() or "(no details)",
        f"Observed {figure(ticket.get('observed'))}, allowed {figure(ticket.get('allowed'))}; "
        f"action: {ticket['action']}.",
        f"Owner: {ticket['owner']}. Due: {_day(ticket.get('due_date'))}.",
        f"Finding {ticket['finding_id']}: {dagster_url.rstrip('/')}/assets/compliance_findings",
        f"Acknowledge with `licensing-pipeline tickets ack {ticket['finding_id']}`.",
    ]


def ticket_labels(ticket: Mapping[str, Any]) -> list[str]:
    return [
        "licensing-compliance",
        _label(f"severity-{ticket['severity']}"),
        _label(f"check-{ticket['check']}"),
        _label(f"finding-{ticket['finding_id']}"),
    ]


def adf_document(lines: list[str]) -> dict[str, Any]:
    """Plain lines as Jira's Atlassian Document Format: one paragraph each."""
    paragraphs = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}]} for line in lines
    ]
    return {"type": "doc", "version": 1, "content": paragraphs}


def jira_issue(
    ticket: Mapping[str, Any], *, project: str, issue_type: str, dagster_url: str
) -> dict[str, Any]:
    """The body of Jira Cloud's POST /rest/api/3/issue (description in Atlassian Document Format)."""
    return {
        "fields": {
            "project": {"key": project},
            "issuetype": {"name": issue_type},
            "summary": ticket_summary(ticket),
            "description": adf_document(ticket_description_lines(ticket, dagster_url)),
            "labels": ticket_labels(ticket),
        }
    }


def webhook_document(ticket: Mapping[str, Any], *, dagster_url: str) -> dict[str, Any]:
    """The generic webhook's JSON: the ticket, a summary and a description."""

    def plain(value: Any) -> Any:
        if value is None or value is pd.NA:
            return None
        if isinstance(value, float) and value != value:
            return None
        return value

    fields = (
        "ticket_id",
        "finding_id",
        "tenant_id",
        "check",
        "subject",
        "period",
        "severity",
        "action",
        "observed",
        "allowed",
        "owner",
        "status",
        "cycle",
    )
    body = {name: plain(ticket.get(name)) for name in fields}
    for name in ("ticket_id", "cycle"):
        if body[name] is not None:
            body[name] = int(body[name])
    for name in ("observed", "allowed"):
        if body[name] is not None:
            body[name] = float(body[name])
    body["due_date"] = _day(ticket.get("due_date")) or None
    return {
        "event": "remediation_ticket.opened",
        "summary": ticket_summary(ticket),
        "description": "\n".join(ticket_description_lines(ticket, dagster_url)),
        "labels": ticket_labels(ticket),
        "ticket": body,
    }


def status_event(ticket: Mapping[str, Any]) -> str:
    """What happened to the ticket since the ticket system was last told."""
    status = str(ticket["status"])
    if status == "open" and ticket.get("sink_reported_status") in ("resolved", "wont_fix"):
        return "reopened"
    return status


def status_update_line(ticket: Mapping[str, Any]) -> str:
    reason = str(ticket.get("status_reason") or "").strip()
    return f"Licensing pipeline: this ticket is now {status_event(ticket).replace('_', ' ')}" + (
        f" ({reason})." if reason else "."
    )


class TicketSink(dg.ConfigurableResource):
    """A Jira Cloud issue or a webhook POST per new ticket; Jira wins when both are set.

    LICENSING_JIRA_URL / _EMAIL / _API_TOKEN / _PROJECT / _ISSUE_TYPE   the Jira issue
    LICENSING_JIRA_TRANSITIONS    move the issue when its ticket changes, e.g.
                                  "resolved=Done,reopened=To Do,wont_fix=Won't Do"
    LICENSING_TICKET_WEBHOOK_URL  POST a JSON document per new ticket to this URL
    DAGSTER_WEBSERVER_URL         the base of links in descriptions
    """

    webhook_url: str | None = Field(default=None, repr=False)  # may embed a secret
    jira_url: str | None = None
    jira_email: str | None = None
    jira_api_token: str | None = Field(default=None, repr=False)  # a secret
    jira_project: str | None = None
    jira_issue_type: str = "Task"
    # ticket event (resolved, reopened, acknowledged, wont_fix) -> Jira transition or status
    jira_transitions: dict[str, str] = Field(default_factory=dict)
    dagster_url: str = DEFAULT_DAGSTER_URL
    max_attempts: int = 4
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> TicketSink:
        return cls(
            **env.given(
                webhook_url=env.secret("LICENSING_TICKET_WEBHOOK_URL"),
                jira_url=env.text("LICENSING_JIRA_URL"),
                jira_email=env.text("LICENSING_JIRA_EMAIL"),
                jira_api_token=env.secret("LICENSING_JIRA_API_TOKEN"),
                jira_project=env.text("LICENSING_JIRA_PROJECT"),
                jira_issue_type=env.text("LICENSING_JIRA_ISSUE_TYPE"),
                jira_transitions=env.transitions("LICENSING_JIRA_TRANSITIONS", TICKET_EVENTS),
                dagster_url=env.text("DAGSTER_WEBSERVER_URL"),
            )
        )

    @property
    def kind(self) -> str | None:
        if self.jira_url:
            return "jira"
        if self.webhook_url:
            return "webhook"
        return None

    @property
    def enabled(self) -> bool:
        return self.kind is not None

    def describe(self) -> str:
        if self.kind == "jira":
            return f"Jira project {self.jira_project or '?'} at {_host(str(self.jira_url))}"
        if self.kind == "webhook":
            return f"webhook at {_host(str(self.webhook_url))}"
        return "no external ticket system"

    def create(self, ticket: Mapping[str, Any]) -> SinkResult:
        """Create the external issue for ``ticket``; never raises."""
        if self.kind == "jira":
            missing = [
                name
                for name, value in (
                    ("LICENSING_JIRA_EMAIL", self.jira_email),
                    ("LICENSING_JIRA_API_TOKEN", self.jira_api_token),
                    ("LICENSING_JIRA_PROJECT", self.jira_project),
                )
                if not value
            ]
            if missing:
                return SinkResult(ok=False, error=f"Jira is not fully configured: set {missing[0]}")
            url = f"{str(self.jira_url).rstrip('/')}/rest/api/3/issue"
            body = jira_issue(
                ticket,
                project=str(self.jira_project),
                issue_type=self.jira_issue_type,
                dagster_url=self.dagster_url,
            )
            result = self._post(url, body, self._jira_headers())
            if result.ok and result.external_id:
                browse = f"{str(self.jira_url).rstrip('/')}/browse/{result.external_id}"
                return SinkResult(True, result.external_id, browse, None, result.attempts)
            return result
        if self.kind == "webhook":
            headers = {"Idempotency-Key": f"licensing-ticket-{ticket['finding_id']}"}
            body = webhook_document(ticket, dagster_url=self.dagster_url)
            result = self._post(str(self.webhook_url), body, headers)
            if result.ok and not result.external_id:
                return SinkResult(
                    True, f"webhook:{ticket['finding_id']}", None, None, result.attempts
                )
            return result
        return SinkResult(ok=False, error="no external ticket system configured")

    def update(self, ticket: Mapping[str, Any]) -> SinkResult:
        """Tell the external issue created for ``ticket`` that its status changed (a comment
        on the Jira issue; an event to the webhook); never raises."""
        line = status_update_line(ticket)
        if self.kind == "jira":
            if not (self.jira_email and self.jira_api_token):
                return SinkResult(ok=False, error="Jira is not fully configured")
            issue = (
                f"{str(self.jira_url).rstrip('/')}/rest/api/3/issue/"
                f"{urllib.parse.quote(str(ticket['external_id']))}"
            )
            target = self.jira_transitions.get(status_event(ticket))
            if target:
                # First the move, which a retry finds done, then the comment, so a failed
                # comment retried next run does not move the issue twice.
                moved = self._jira_transition(issue, target)
                if not moved.ok:
                    return moved
            return self._post(
                f"{issue}/comment", {"body": adf_document([line])}, self._jira_headers()
            )
        if self.kind == "webhook":
            event = status_event(ticket)
            key = f"licensing-ticket-{ticket['finding_id']}-{ticket['cycle']}-{event}"
            body: dict[str, Any] = {
                **webhook_document(ticket, dagster_url=self.dagster_url),
                "event": f"remediation_ticket.{event}",
                "external_id": ticket.get("external_id"),
                "description": line,
            }
            return self._post(str(self.webhook_url), body, {"Idempotency-Key": key})
        return SinkResult(ok=False, error="no external ticket system configured")

    def _jira_transition(self, issue: str, target: str) -> SinkResult:
        """Move the Jira issue by the transition named ``target``, or to the status of that
        name; done already when the issue is in that status."""
        wanted = target.casefold()
        current, result = self._get(f"{issue}?fields=status")
        if not result.ok:
            return result
        status = ((current.get("fields") or {}).get("status") or {}).get("name", "")
        if str(status).casefold() == wanted:
            return result
        listing, result = self._get(f"{issue}/transitions")
        if not result.ok:
            return result
        offered = [t for t in listing.get("transitions") or [] if isinstance(t, dict)]
        match = next(
            (
                t
                for t in offered
                if str(t.get("name", "")).casefold() == wanted
                or str((t.get("to") or {}).get("name", "")).casefold() == wanted
            ),
            None,
        )
        if match is None:
            names = ", ".join(sorted(str(t.get("name")) for t in offered)) or "none"
            return SinkResult(
                ok=False,
                error=f"Jira offers no transition to {target!r} from {status!r} (offers: {names})",
            )
        return self._post(
            f"{issue}/transitions",
            {"transition": {"id": str(match.get("id"))}},
            self._jira_headers(),
        )

    def _get(self, url: str) -> tuple[dict[str, Any], SinkResult]:
        result, payload = self._call("GET", url, None, self._jira_headers())
        try:
            document = json.loads(payload.decode("utf-8")) if payload.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            document = {}
        return (document if isinstance(document, dict) else {}), result

    def _jira_headers(self) -> dict[str, str]:
        credentials = f"{self.jira_email}:{self.jira_api_token}".encode()
        return {"Authorization": "Basic " + base64.b64encode(credentials).decode("ascii")}

    def _post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> SinkResult:
        result, payload = self._call("POST", url, body, headers)
        return _created(payload, result.attempts) if result.ok else result

    def _call(
        self, method: str, url: str, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[SinkResult, bytes]:
        """One request with retries on transient failures; the result and the reply body."""
        data = json.dumps(body).encode("utf-8") if body is not None else None
        error = "not attempted"
        attempts = max(self.max_attempts, 1)
        for attempt in range(1, attempts + 1):
            request = urllib.request.Request(
                url,
                data=data,
                method=method,
                headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "User-Agent": USER_AGENT,
                    **headers,
                },
            )
            wait = self.backoff_seconds * 2 ** (attempt - 1)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                    return SinkResult(ok=True, attempts=attempt), response.read()
            except urllib.error.HTTPError as exc:
                snippet = " ".join(exc.read().decode("utf-8", "replace").split())[:300]
                error = f"HTTP {exc.code} from {_host(url)}" + (f": {snippet}" if snippet else "")
                if exc.code not in RETRY_STATUSES:
                    return SinkResult(ok=False, error=error, attempts=attempt), b""
                retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
                if str(retry_after).strip().isdigit():
                    wait = float(str(retry_after).strip())
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                error = f"cannot reach {_host(url)}: {reason}"
            if attempt < attempts:
                time.sleep(min(wait, self.max_backoff_seconds))
        failed = SinkResult(
            ok=False, error=f"{error} (after {attempts} attempts)", attempts=attempts
        )
        return failed, b""


def _created(payload: bytes, attempts: int) -> SinkResult:
    try:
        document = json.loads(payload.decode("utf-8")) if payload.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        document = {}
    if not isinstance(document, dict):
        document = {}
    identifier = document.get("key") or document.get("id") or document.get("external_id")
    url = document.get("url") or document.get("html_url")
    return SinkResult(
        ok=True,
        external_id=str(identifier) if identifier not in (None, "") else None,
        external_url=str(url) if url else None,
        attempts=attempts,
    )
