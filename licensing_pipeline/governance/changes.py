"""Change requests: an editor proposes, a different approver approves or rejects, the proposer
may withdraw; each step in the caller's transaction with its audit entry.

Every rule and its one-line message is in this module, in the order it is checked, so the
database side can mirror them (``RULES`` lists the messages). Separation of duties: ``admin``
manages access only and implies neither ``editor`` nor ``approver``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.contract.schemas import CHECKS, CONTRACT_STATUSES
from licensing_pipeline.governance import audit_trail, pg_workflow
from licensing_pipeline.governance.access import AccessRefused, _known
from licensing_pipeline.governance.access import now_utc as _now
from licensing_pipeline.governance.change_kinds import KINDS, change_subject
from licensing_pipeline.governance.tables import (
    CHANGE_STATUSES,
    audit_log,
    change_requests,
    role_grants,
)

if TYPE_CHECKING:
    from licensing_pipeline.policy.bundle import PolicyBundle


class ChangeRefused(AccessRefused):
    """A change request step refused; the message says what and why in one line."""


# The messages, by rule, in the order each step checks them ({what} names the step).
RULES: Mapping[str, str] = {
    "unknown_user": "{what} refused: unknown user {actor!r} (not in people)",
    "role": "{what} refused: {actor} is not {article} {role}{hint}",
    "unknown_kind": "{what} refused: unknown kind {kind!r} (one of {kinds})",
    "tenant_needed": "{what} refused: {kind} needs a tenant",
    "tenant_not_allowed": "{what} refused: {kind} applies to no tenant (got {tenant!r})",
    "unknown_tenant": "{what} refused: unknown tenant {tenant!r}{close}",
    "missing_field": "{what} refused: {kind} needs {field}",
    "extra_field": "{what} refused: {kind} takes no {field} (only {fields})",
    "unknown_value": "{what} refused: unknown {vocabulary} {value!r}{close}",
    "bad_limit": "{what} refused: limit must be a number >= 0, or null for unlimited (got {value!r})",
    "bad_text": "{what} refused: {field} must be text (got {value!r})",
    "bad_sha256": "{what} refused: sha256 must be 64 hex digits (got {value!r})",
    "unknown_bundle": "{what} refused: no policy bundle {version} with sha256 {sha256}",
    "no_reason": "{what} refused: a reason is required",
    "until_before_from": "{what} refused: effective until {until} is before effective from {since}",
    "backdated": (
        "{what} refused: effective from {since} is more than {days} day(s) in the past "
        "(LICENSING_CHANGE_MAX_BACKDATE_DAYS)"
    ),
    "no_such_change": "{what} refused: no such change",
    "not_pending": "{what} refused: it is already {status} (only a pending change can be {verb})",
    "own_proposal": (
        "{what} refused: {actor} proposed it (four-eyes: a different approver must decide)"
    ),
    "not_proposer": "{what} refused: only its proposer {proposer} may withdraw it",
    "no_note": "{what} refused: a note saying why is required",
}

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHOICES = ("metric", "feature", "region", "plan", "addon", "status", "check")


def _refuse(rule: str, **values: Any) -> ChangeRefused:
    return ChangeRefused(RULES[rule].format(**values))


@dataclass(frozen=True)
class Vocabulary:
    """What a change may name: the tenants and catalog of the data dir, the contract statuses,
    the finding checks, and the policy bundles (version, sha256) given."""

    tenants: frozenset[str]
    metrics: frozenset[str]
    features: frozenset[str]
    regions: frozenset[str]
    plans: frozenset[str]
    addons: frozenset[str]
    statuses: frozenset[str] = frozenset(CONTRACT_STATUSES)
    checks: frozenset[str] = frozenset(CHECKS)
    bundles: frozenset[tuple[str, str]] = frozenset()

    def of(self, vocabulary: str) -> frozenset[str]:
        """The set a payload field's vocabulary (``metric``, ``check``, ...) names."""
        return getattr(self, "statuses" if vocabulary == "status" else f"{vocabulary}s")


def load_vocabulary(data_dir: Path, bundles: Iterable[PolicyBundle] = ()) -> Vocabulary:
    """The vocabulary of the exports in ``data_dir`` (catalog.yaml; tenants.csv and
    contracts.csv tenant ids), with the loaders a run uses; a missing file raises
    ``ContractError`` naming it."""
    from licensing_pipeline.contract.catalog import load_catalog
    from licensing_pipeline.contract.errors import MissingInputError
    from licensing_pipeline.contract.loaders import load_contracts, load_tenants
    from licensing_pipeline.sources.assets import CATALOG_FILE

    path = data_dir / CATALOG_FILE
    if not path.is_file():
        raise MissingInputError(path, CATALOG_FILE)
    catalog = load_catalog(path)
    tenants = set(load_tenants(data_dir).frame["tenant_id"])
    tenants |= set(load_contracts(data_dir).frame["tenant_id"])
    return Vocabulary(
        tenants=frozenset(map(str, tenants)),
        metrics=frozenset(catalog.metrics),
        features=frozenset(catalog.features),
        regions=frozenset(catalog.regions),
        plans=frozenset(catalog.plans),
        addons=frozenset(catalog.addons),
        bundles=frozenset((b.version, b.content_hash) for b in bundles),
    )


def _close(value: str, choices: Iterable[str]) -> str:
    matches = difflib.get_close_matches(value, sorted(choices), n=3)
    return f" (did you mean {', '.join(matches)}?)" if matches else ""


def _require_known(connection: sa.Connection, actor: str, what: str) -> None:
    if not _known(connection, actor):
        raise _refuse("unknown_user", what=what, actor=actor)


def _require(connection: sa.Connection, actor: str, role: str, what: str) -> None:
    """``actor`` is in people and holds ``role`` now (admin implies nothing else)."""
    _require_known(connection, actor, what)
    revoked_at = {
        r.role: r.revoked_at
        for r in connection.execute(
            sa.select(role_grants.c.role, role_grants.c.revoked_at)
            .where(role_grants.c.person_id == actor)
            .order_by(role_grants.c.grant_id)  # the latest grant of a role counts
        )
    }
    if role in revoked_at and revoked_at[role] is None:
        return
    hint = ""
    if role in revoked_at:
        hint = f" (revoked {revoked_at[role]:%Y-%m-%d})"
    elif "admin" in revoked_at and revoked_at["admin"] is None:
        hint = " (admin manages access only)"
    article = "an" if role[0] in "aeiou" else "a"
    raise _refuse("role", what=what, actor=actor, article=article, role=role, hint=hint)


def _check_payload(
    kind: str, payload: Mapping[str, Any], vocabulary: Vocabulary, what: str
) -> None:
    expected = KINDS[kind].fields
    for name in payload:
        if name not in expected:
            raise _refuse(
                "extra_field", what=what, kind=kind, field=name, fields=", ".join(expected)
            )
    for name, vocab in expected.items():
        if name not in payload:
            raise _refuse("missing_field", what=what, kind=kind, field=name)
        value = payload[name]
        if vocab in _CHOICES:
            allowed = vocabulary.of(vocab)
            if not isinstance(value, str) or value not in allowed:
                close = _close(value, allowed) if isinstance(value, str) else ""
                raise _refuse(
                    "unknown_value", what=what, vocabulary=vocab, value=value, close=close
                )
        elif vocab == "limit":
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not (number and math.isfinite(value) and value >= 0):
                raise _refuse("bad_limit", what=what, value=value)
        elif vocab == "sha256":
            if not isinstance(value, str) or not _SHA256.fullmatch(value):
                raise _refuse("bad_sha256", what=what, value=value)
        elif not isinstance(value, str) or (vocab == "version" and not value.strip()):
            raise _refuse("bad_text", what=what, field=name, value=value)
    if "sha256" in expected:
        version, sha256 = payload["version"], payload["sha256"]
        if (version, sha256) not in vocabulary.bundles:
            raise _refuse("unknown_bundle", what=what, version=version, sha256=sha256)


def propose(
    connection: sa.Connection,
    actor: str,
    kind: str,
    tenant_id: str | None,
    payload: Mapping[str, Any],
    reason: str,
    effective_from: date,
    effective_until: date | None = None,
    *,
    vocabulary: Vocabulary,
    today: date,
    max_backdate_days: int,
    at: datetime | None = None,
) -> int:
    """Record a pending request (editor only) after checking it names only what exists;
    returns its id."""
    audit_trail.lock(connection)
    what = f"proposal of {kind}" + (f" for {tenant_id}" if tenant_id else "")
    _require(connection, actor, "editor", what)
    if kind not in KINDS:
        raise _refuse("unknown_kind", what=what, kind=kind, kinds=", ".join(KINDS))
    if KINDS[kind].needs_tenant and not tenant_id:
        raise _refuse("tenant_needed", what=what, kind=kind)
    if not KINDS[kind].needs_tenant and tenant_id:
        raise _refuse("tenant_not_allowed", what=what, kind=kind, tenant=tenant_id)
    if tenant_id and tenant_id not in vocabulary.tenants:
        close = _close(tenant_id, vocabulary.tenants)
        raise _refuse("unknown_tenant", what=what, tenant=tenant_id, close=close)
    _check_payload(kind, payload, vocabulary, what)
    if not reason.strip():
        raise _refuse("no_reason", what=what)
    if effective_until is not None and effective_until < effective_from:
        raise _refuse("until_before_from", what=what, until=effective_until, since=effective_from)
    if effective_from < today - timedelta(days=max_backdate_days):
        raise _refuse("backdated", what=what, since=effective_from, days=max_backdate_days)
    if connection.dialect.name == "postgresql":  # the database checks again, and writes
        return pg_workflow.propose(
            connection,
            actor,
            kind,
            tenant_id,
            dict(payload),
            reason.strip(),
            effective_from,
            effective_until,
            at=at,
        )
    when = _now(at)
    text = json.dumps(dict(payload), sort_keys=True, separators=(",", ":"))
    request_id = int(
        connection.execute(
            sa.insert(change_requests)
            .values(
                kind=kind,
                tenant_id=tenant_id,
                payload=text,
                reason=reason.strip(),
                effective_from=effective_from,
                effective_until=effective_until,
                status="pending",
                proposed_by=actor,
                proposed_at=when,
            )
            .returning(change_requests.c.request_id)
        ).scalar_one()
    )
    details = {
        "request_id": request_id,
        "kind": kind,
        "payload": dict(payload),
        "reason": reason.strip(),
        "effective_from": effective_from.isoformat(),
        "effective_until": effective_until.isoformat() if effective_until else None,
    }
    audit_trail.record(
        connection, actor, "propose", change_subject(request_id), tenant_id, details, at=when
    )
    return request_id


def _pending(connection: sa.Connection, request_id: int, what: str, verb: str) -> sa.Row[Any]:
    row = connection.execute(
        sa.select(change_requests).where(change_requests.c.request_id == request_id)
    ).first()
    if row is None:
        raise _refuse("no_such_change", what=what)
    if row.status != "pending":
        raise _refuse("not_pending", what=what, status=row.status, verb=verb)
    return row


def _close_request(
    connection: sa.Connection,
    actor: str,
    row: sa.Row[Any],
    status: str,
    note: str | None,
    at: datetime | None,
) -> None:
    """Move a pending request to ``status`` and append the audit entry; a withdrawal keeps
    ``decided_by`` empty (the proposer decided nothing; the trail names them)."""
    if connection.dialect.name == "postgresql":  # the database checks again, and writes
        if status == "withdrawn":
            pg_workflow.withdraw(connection, actor, row.request_id, at=at)
        elif status == "approved":
            pg_workflow.approve(connection, actor, row.request_id, note, at=at)
        else:
            pg_workflow.reject(connection, actor, row.request_id, note or "", at=at)
        return
    when = _now(at)
    action = {"approved": "approve", "rejected": "reject", "withdrawn": "withdraw"}[status]
    moved = connection.execute(
        sa.update(change_requests)
        .where(change_requests.c.request_id == row.request_id)
        .where(change_requests.c.status == "pending")
        .values(
            status=status,
            decided_by=None if status == "withdrawn" else actor,
            decided_at=when,
            decision_note=note,
        )
    )
    if moved.rowcount != 1:  # cannot happen under the lock; refuse rather than write half
        raise ChangeRefused(f"change #{row.request_id} was decided meanwhile")
    details = {"request_id": row.request_id, "kind": row.kind, "note": note}
    audit_trail.record(
        connection, actor, action, change_subject(row.request_id), row.tenant_id, details, at=when
    )


def _decide(
    connection: sa.Connection,
    actor: str,
    request_id: int,
    status: str,
    note: str | None,
    at: datetime | None,
) -> None:
    audit_trail.lock(connection)
    what = f"{'approval' if status == 'approved' else 'rejection'} of change #{request_id}"
    _require(connection, actor, "approver", what)
    row = _pending(connection, request_id, what, "decided")
    if row.proposed_by == actor:
        raise _refuse("own_proposal", what=what, actor=actor)
    if status == "rejected" and not (note or "").strip():
        raise _refuse("no_note", what=what)
    _close_request(connection, actor, row, status, note, at)


def approve(
    connection: sa.Connection,
    actor: str,
    request_id: int,
    note: str | None = None,
    *,
    at: datetime | None = None,
) -> None:
    """Approve a pending request: an approver who did not propose it."""
    _decide(connection, actor, request_id, "approved", note, at)


def reject(
    connection: sa.Connection,
    actor: str,
    request_id: int,
    note: str,
    *,
    at: datetime | None = None,
) -> None:
    """Reject a pending request with a note: an approver who did not propose it."""
    _decide(connection, actor, request_id, "rejected", note, at)


def withdraw(
    connection: sa.Connection, actor: str, request_id: int, *, at: datetime | None = None
) -> None:
    """Withdraw a pending request: only its proposer, while still an editor (as the database
    function on PostgreSQL requires)."""
    audit_trail.lock(connection)
    what = f"withdrawal of change #{request_id}"
    _require(connection, actor, "editor", what)
    row = _pending(connection, request_id, what, "withdrawn")
    if row.proposed_by != actor:
        raise _refuse("not_proposer", what=what, proposer=row.proposed_by)
    _close_request(connection, actor, row, "withdrawn", None, at)


REQUEST_COLUMNS = [c.name for c in change_requests.columns]


def requests(
    connection: sa.Connection, status: str | None = None, tenant_id: str | None = None
) -> pd.DataFrame:
    """The requests, oldest first, of one status and/or tenant (``payload`` as JSON text)."""
    if status is not None and status not in CHANGE_STATUSES:
        raise ChangeRefused(f"unknown status {status!r}: one of {', '.join(CHANGE_STATUSES)}")
    query = sa.select(change_requests).order_by(change_requests.c.request_id)
    if status:
        query = query.where(change_requests.c.status == status)
    if tenant_id:
        query = query.where(change_requests.c.tenant_id == tenant_id)
    return pd.DataFrame(connection.execute(query).all(), columns=REQUEST_COLUMNS)


def request(connection: sa.Connection, request_id: int) -> dict[str, Any]:
    """One request with its payload as an object and ``history``: its audit entries."""
    row = connection.execute(
        sa.select(change_requests).where(change_requests.c.request_id == request_id)
    ).first()
    if row is None:
        raise ChangeRefused(f"no change #{request_id}")
    history = connection.execute(
        sa.select(audit_log)
        .where(audit_log.c.subject == change_subject(request_id))
        .order_by(audit_log.c.seq)
    ).mappings()
    return {
        **row._asdict(),
        "payload": json.loads(row.payload),
        "history": [dict(e) for e in history],
    }
