"""Change requests told in the remediation channel: a proposal waiting for approval, and an
approval, each once.

The remediation pass scans ``change_requests`` itself (pending ones, and those approved in
the last ``RECENT_DAYS``) rather than being called by the workflow, so a change made by any
means is told. Each alert's outbox key is (``change_request``, request id, event): a later
pass enqueues nothing new for the same event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.governance.change_kinds import APPROVED_COLUMNS
from licensing_pipeline.governance.tables import change_requests
from licensing_pipeline.remediation.messages import change_request_message, figure
from licensing_pipeline.remediation.outbox import OutboxAlert

KIND = "change_request"
RECENT_DAYS = 7  # an approval older than this is not told (a first pass does not flood)
COLUMNS = [*APPROVED_COLUMNS, "status"]


def describe_change(kind: str, payload: Mapping[str, Any], tenant_id: str | None) -> str:
    """'quota override api_calls → 200,000 for tenant acme'."""
    if kind == "quota_override":
        limit = payload.get("limit")
        what = f"{payload.get('metric')} → {'unlimited' if limit is None else figure(limit)}"
    elif kind == "policy_version":
        what = f"{payload.get('version')} (sha256 {str(payload.get('sha256', ''))[:12]}…)"
    else:
        what = " ".join(str(v) for v in payload.values() if v not in (None, ""))
    text = f"{kind.replace('_', ' ')} {what}".strip()
    return f"{text} for tenant {tenant_id}" if tenant_id else text


def change_text(request: Mapping[str, Any]) -> str:
    """The line for a request: its proposal while pending, its approval once approved."""
    change = describe_change(
        str(request["kind"]), json.loads(request["payload"]), request["tenant_id"]
    )
    number = f"Change #{request['request_id']}"
    if request["status"] == "pending":
        return (
            f"{number} awaits approval: {change}, proposed by {request['proposed_by']} "
            f"({request['reason']})"
        )
    effective = pd.Timestamp(request["effective_from"]).date().isoformat()
    return f"{number} approved by {request['decided_by']}: {change}, effective {effective}"


def change_alerts(requests: Sequence[Mapping[str, Any]], *, channel: str) -> list[OutboxAlert]:
    """One alert per pending or approved request, keyed by its id and event."""
    return [
        OutboxAlert(
            kind=KIND,
            ref=str(r["request_id"]),
            period=str(r["status"]),
            channel=channel,
            message=change_request_message(change_text(r)),
        )
        for r in requests
        if r["status"] in ("pending", "approved")
    ]


def recent_requests(
    con: sa.Connection, *, now: datetime, decided: Sequence[str] = ("approved",)
) -> list[dict[str, Any]]:
    """Pending requests, and those moved to one of ``decided`` since ``now`` - ``RECENT_DAYS``
    (the dashboard shows every decision; the channel is told approvals)."""
    c = change_requests.c
    query = (
        sa.select(*(c[name] for name in COLUMNS))
        .where(
            (c.status == "pending")
            | (c.status.in_(decided) & (c.decided_at >= now - timedelta(days=RECENT_DAYS)))
        )
        .order_by(c.request_id)
    )
    return [dict(row._mapping) for row in con.execute(query)]
