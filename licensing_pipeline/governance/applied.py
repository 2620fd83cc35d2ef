"""The audit trail's ``apply`` entries: when an approved change first took effect in a run.

The first run whose as-of day is on or after a change's ``effective_from`` appends one entry
per change, in the transaction that saves its findings, so the entry and the findings the
change shaped commit together. Exactly once per request: the trail is read under the audit
lock before appending, so a re-run (or a second run racing it) appends nothing more.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.governance import audit_trail
from licensing_pipeline.governance.access import acting_person
from licensing_pipeline.governance.change_kinds import change_subject
from licensing_pipeline.governance.tables import CHANGE_KINDS, audit_log

APPLY = "apply"
# Who applies when no person is acting (the schedule on the embedded profile).
RUN_ACTOR = "nightly_compliance"
# The run applies every kind but policy_version, which decides the bundle, not an entitlement.
APPLIED_KINDS = tuple(kind for kind in CHANGE_KINDS if kind != "policy_version")


def run_actor(connection: sa.Connection, local_user: str | None) -> str:
    """Who applies: the database login on PostgreSQL, ``LICENSING_USER`` on the embedded
    profile, or ``nightly_compliance`` when it is unset (the schedule)."""
    return acting_person(connection, local_user or RUN_ACTOR)


def _iso(value: Any) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).date().isoformat()


def record_applied(
    connection: sa.Connection, changes: pd.DataFrame, as_of: date, actor: str
) -> list[int]:
    """Append ``apply`` for each change of ``changes`` effective by ``as_of`` that has none yet;
    return their request ids. Call inside the run's repository transaction."""
    audit_trail.lock(connection)
    if changes.empty:
        return []
    due = changes[
        changes["kind"].isin(APPLIED_KINDS)
        & (pd.to_datetime(changes["effective_from"]) <= pd.Timestamp(as_of))
    ].sort_values("request_id")
    done: set[str] = set(
        connection.execute(
            sa.select(audit_log.c.subject).where(audit_log.c.action == APPLY)
        ).scalars()
    )
    recorded = []
    for change in due.to_dict("records"):
        subject = change_subject(change["request_id"])
        if subject in done:
            continue
        audit_trail.record(
            connection,
            actor,
            APPLY,
            subject,
            tenant_id=None if pd.isna(change["tenant_id"]) else str(change["tenant_id"]),
            details={
                "request_id": int(change["request_id"]),
                "kind": change["kind"],
                "payload": json.loads(change["payload"]),  # an object, as `propose` records it
                "effective_from": _iso(change["effective_from"]),
                "effective_until": _iso(change["effective_until"]),
                "as_of": as_of.isoformat(),
                "approved_by": change["decided_by"],
            },
        )
        recorded.append(int(change["request_id"]))
    return recorded
