"""The change-request workflow on PostgreSQL: thin wrappers over migration 0010's functions.

The database checks who may act (``session_user`` against ``people``/``role_grants``), writes
the request and appends the audit entry, so a login without the role is refused whether it
comes through here or through SQL. The payload's vocabulary is checked in Python before the
call (``change_kinds.py``); the functions check only who may do what.

``actor`` is the session's login. Only the owner may name another actor or pass ``at`` (the
``..._as`` functions, which no other login may execute): the owner can write the tables
directly anyway, and replaying or backdating actions is what imports and tests need.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from licensing_pipeline.governance import access

# SQLSTATEs the functions raise: a refusal, and an unknown role or decision.
_FUNCTION_ERRORS = ("42501", "22023")


def call(
    connection: sa.Connection, function: str, actor: str, at: datetime | None, *args: Any
) -> Any:
    """``function(*args)`` as the session, or ``function_as(actor, *args, at)`` for the owner;
    a refusal raised by the function becomes ``AccessRefused`` with its one-line message.
    The database's own refusals (no EXECUTE privilege) propagate as they are."""
    names = [f"a{i}" for i in range(len(args))]
    values = dict(zip(names, args, strict=True))
    if at is None and actor == access.acting_person(connection, None):
        sql = f"SELECT {function}({', '.join(':' + n for n in names)})"
    else:
        sql = f"SELECT {function}_as(:actor, {''.join(':' + n + ', ' for n in names)}:at)"
        values |= {"actor": actor, "at": access.now_utc(at)}
    try:  # a savepoint: after a refusal the caller's transaction goes on, as on SQLite
        with connection.begin_nested():
            return connection.execute(sa.text(sql), values).scalar_one()
    except sa.exc.DBAPIError as exc:
        diag = getattr(exc.orig, "diag", None)
        code = getattr(exc.orig, "pgcode", None)
        if code not in _FUNCTION_ERRORS or diag is None or diag.context is None:
            raise
        raise access.AccessRefused(diag.message_primary) from None


def propose(
    connection: sa.Connection,
    actor: str,
    kind: str,
    tenant_id: str | None,
    payload: dict[str, Any],
    reason: str,
    effective_from: date,
    effective_until: date | None = None,
    *,
    at: datetime | None = None,
) -> int:
    """Propose a change (role ``editor``); returns its request id."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    arguments = (kind, tenant_id, text, reason, effective_from, effective_until)
    return int(call(connection, "licensing_propose_change", actor, at, *arguments))


def approve(
    connection: sa.Connection,
    actor: str,
    request_id: int,
    note: str | None = None,
    *,
    at: datetime | None = None,
) -> None:
    """Approve a pending change (role ``approver``, not its proposer)."""
    call(connection, "licensing_decide_change", actor, at, request_id, "approved", note)


def reject(
    connection: sa.Connection,
    actor: str,
    request_id: int,
    note: str,
    *,
    at: datetime | None = None,
) -> None:
    """Reject a pending change (role ``approver``, not its proposer)."""
    call(connection, "licensing_decide_change", actor, at, request_id, "rejected", note)


def withdraw(
    connection: sa.Connection, actor: str, request_id: int, *, at: datetime | None = None
) -> None:
    """Withdraw a pending change (its proposer only)."""
    call(connection, "licensing_withdraw_change", actor, at, request_id)
