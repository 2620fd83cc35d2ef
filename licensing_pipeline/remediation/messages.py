"""Slack Block Kit messages (pure): what an owner needs to act, and a link to the evidence.

Every builder returns ``{"text": ..., "blocks": [...]}``; ``text`` is the notification
fallback. User data is escaped for mrkdwn and cut to Slack's field limits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import pandas as pd

from licensing_pipeline.remediation.suggestions import step_of

Message = dict[str, Any]

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_BLOCKS = 50


def escape(text: Any) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def figure(value: Any) -> str:
    """1234.0 → '1,234'; 0.125 → '0.12'; missing, infinite or NaN → '–'."""
    if value is None or value is pd.NA:
        return "–"
    number = float(value)
    if not math.isfinite(number):
        return "–"
    if number.is_integer():
        return f"{int(number):,}"
    return f"{number:,.2f}"


def _day(value: Any) -> str:
    if value is None or value is pd.NA:
        return "–"
    return pd.Timestamp(value).date().isoformat()


def asset_url(dagster_url: str, asset: str = "compliance_findings") -> str:
    return f"{dagster_url.rstrip('/')}/assets/{asset.replace('.', '/')}"


def run_url(dagster_url: str, run_id: str) -> str:
    return f"{dagster_url.rstrip('/')}/runs/{run_id}"


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": _cut(text, HEADER_LIMIT)}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SECTION_LIMIT)}}


def _fields(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": _cut(f"*{label}*\n{value}", FIELD_LIMIT)}
            for label, value in pairs[:10]
        ],
    }


def _context(*parts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(parts)}]}


def _finding_fields(ticket: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        ("Tenant", escape(ticket["tenant_id"])),
        ("Check", f"`{escape(ticket['check'])}`"),
        ("Subject", escape(ticket["subject"])),
        ("Period", escape(ticket["period"])),
        ("Observed", figure(ticket.get("observed"))),
        ("Allowed", figure(ticket.get("allowed"))),
        ("Action", f"*{escape(ticket['action'])}*"),
        ("Owner", escape(ticket["owner"])),
        ("Due", _day(ticket.get("due_date"))),
    ]


def _evidence(ticket: Mapping[str, Any], dagster_url: str) -> dict[str, Any]:
    finding_id = escape(ticket["finding_id"])
    return _context(
        f"<{asset_url(dagster_url)}|compliance_findings in Dagster>",
        f"finding `{finding_id}`",
        f"acknowledge: `licensing-pipeline tickets ack {finding_id}`",
    )


def critical_alert(ticket: Mapping[str, Any], *, dagster_url: str) -> Message:
    """One message per new critical finding, to the tenant's channel."""
    title = f"Critical: {ticket['check']} for {ticket['tenant_id']}"
    details = str(ticket.get("details") or "").strip()
    blocks = [
        _header(f"🚨 {title}"),
        _fields(_finding_fields(ticket)),
    ]
    if details:
        blocks.append(_section(escape(details)))
    blocks.append(_evidence(ticket, dagster_url))
    step = step_of(details)
    text = (
        f"{title} ({ticket['subject']}, {ticket['period']}): action {ticket['action']}, "
        f"owner {ticket['owner']}, due {_day(ticket.get('due_date'))}"
        + (f". Next step: {step}" if step else "")
    )
    return {"text": text, "blocks": blocks}


def escalation_alert(ticket: Mapping[str, Any], *, today: date, dagster_url: str) -> Message:
    """The finding's alert, raised to the owner's manager channel when the ticket is overdue."""
    due = pd.Timestamp(ticket["due_date"]).date()
    late = max((today - due).days, 0)
    title = f"Overdue: {ticket['check']} for {ticket['tenant_id']}"
    blocks = [
        _header(f"⏰ {title}"),
        _section(
            f"This {escape(ticket['severity'])} finding, owned by *{escape(ticket['owner'])}*, "
            f"was due {due.isoformat()} and is {late} day(s) overdue "
            f"(ticket status: {escape(ticket['status'])})."
        ),
        _fields(_finding_fields(ticket)),
    ]
    step = step_of(ticket.get("details"))
    if step:
        blocks.append(_section(f"*Suggested next step:* {escape(step)}"))
    blocks.append(_evidence(ticket, dagster_url))
    text = f"{title}: due {due.isoformat()}, {late} day(s) overdue, owner {ticket['owner']}"
    return {"text": text, "blocks": blocks}


def resolution_notice(ticket: Mapping[str, Any], *, dagster_url: str) -> Message:
    verb = "Closed (won't fix)" if ticket.get("status") == "wont_fix" else "Resolved"
    title = f"{verb}: {ticket['check']} for {ticket['tenant_id']}"
    reason = str(ticket.get("status_reason") or "").strip()
    blocks = [
        _section(
            f"✅ *{escape(title)}* ({escape(ticket['subject'])}, {escape(ticket['period'])})"
            + (f"\n{escape(reason)}" if reason else "")
        ),
        _context(
            f"<{asset_url(dagster_url)}|compliance_findings in Dagster>",
            f"finding `{escape(ticket['finding_id'])}`",
            f"owner {escape(ticket['owner'])}",
        ),
    ]
    return {
        "text": f"{title} ({ticket['subject']}, {ticket['period']}): {reason}",
        "blocks": blocks,
    }


def _digest_line(ticket: Mapping[str, Any]) -> str:
    step = step_of(ticket.get("details"))
    return (
        f"• *{escape(ticket['tenant_id'])}* `{escape(ticket['check'])}` "
        f"{escape(ticket['subject'])} {escape(ticket['period'])}: "
        f"{figure(ticket.get('observed'))} (allowed {figure(ticket.get('allowed'))}), "
        f"{escape(ticket['action'])}, owner {escape(ticket['owner'])}, "
        f"due {_day(ticket.get('due_date'))}" + (f"\n    ↳ _{escape(step)}_" if step else "")
    )


def warning_digest(
    channel: str, tickets: Sequence[Mapping[str, Any]], *, night: str, dagster_url: str
) -> Message:
    """All open warning tickets of one channel, once a night."""
    ordered = sorted(
        tickets,
        key=lambda t: (str(t["tenant_id"]), str(t["check"]), str(t["subject"]), str(t["period"])),
    )
    title = f"{len(ordered)} open warning finding(s) for {night}"
    sections: list[list[str]] = [[]]
    for ticket in ordered:
        line = _cut(_digest_line(ticket), SECTION_LIMIT)
        if sections[-1] and len("\n".join([*sections[-1], line])) > SECTION_LIMIT:
            sections.append([])
        sections[-1].append(line)
    kept = [lines for lines in sections if lines][: MAX_BLOCKS - 3]
    shown = sum(len(lines) for lines in kept)
    blocks: list[dict[str, Any]] = [_header(f"⚠️ {title}")]
    blocks.extend(_section("\n".join(lines)) for lines in kept)
    if shown < len(ordered):
        blocks.append(
            _section(
                f"…and {len(ordered) - shown} more: "
                "`licensing-pipeline tickets list --severity warning`"
            )
        )
    blocks.append(
        _context(
            f"<{asset_url(dagster_url)}|compliance_findings in Dagster>",
            f"channel {escape(channel)}",
            "`licensing-pipeline tickets list`",
        )
    )
    return {"text": f"{title} in {channel}", "blocks": blocks}


def check_failed_alert(
    *,
    asset: str,
    check_name: str,
    severity: str,
    description: str,
    run_id: str,
    owners: Sequence[str],
    dagster_url: str,
) -> Message:
    title = f"Asset check failed: {asset} / {check_name}"
    pairs = [
        ("Asset", f"`{escape(asset)}`"),
        ("Check", f"`{escape(check_name)}`"),
        ("Severity", escape(severity)),
        ("Owners", escape(", ".join(owners)) if owners else "data engineering"),
    ]
    blocks = [_header(f"❌ {title}"), _fields(pairs)]
    if description.strip():
        blocks.append(_section(escape(description.strip())))
    blocks.append(
        _context(
            f"<{run_url(dagster_url, run_id)}|run {escape(run_id[:8])} in Dagster>",
            f"<{asset_url(dagster_url, asset)}|{escape(asset)}>",
        )
    )
    return {"text": f"{title} ({severity})", "blocks": blocks}


def run_failed_alert(
    *, job_name: str, run_id: str, error: str, dagster_url: str, tags: Mapping[str, str]
) -> Message:
    title = f"Run of {job_name} failed"
    as_of = tags.get("licensing/as_of")
    detail = _cut(error.strip() or "no error message", SECTION_LIMIT - 40)
    blocks = [
        _header(f"❌ {title}"),
        _section(
            (f"As of *{escape(as_of)}*. " if as_of else "")
            + f"Run `{escape(run_id)}` failed:\n```{escape(detail)}```"
        ),
        _context(f"<{run_url(dagster_url, run_id)}|open the run in Dagster>"),
    ]
    return {"text": f"{title}: {run_id}", "blocks": blocks}


def test_message(channel: str) -> Message:
    text = f"licensing-pipeline can post to {channel}: alerts are connected."
    return {
        "text": text,
        "blocks": [_section(f"👋 {escape(text)}")],
    }


def change_request_message(text: str) -> Message:
    """A change request's proposal or approval (``change_alerts.py``): one sentence."""
    return {"text": text, "blocks": [_section(escape(text))]}
