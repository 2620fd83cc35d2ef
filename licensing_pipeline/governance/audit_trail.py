"""Who did what: an append-only, hash-chained audit trail in the licensing repository.

Entries are appended by ``record`` inside the caller's transaction, so an action and its entry
commit together or not at all. Each entry's ``entry_hash`` is

    SHA-256( b"licensing-audit-v1\\n" + canonical )

where ``canonical`` is the UTF-8 JSON object (keys sorted, no whitespace, non-ASCII kept) of
``seq``, ``at`` (ISO 8601, microseconds, UTC without offset), ``actor``, ``action``,
``tenant_id`` (null when none), ``subject``, ``details`` (the stored JSON text, as a string)
and ``prev_hash`` (the previous entry's ``entry_hash``; 64 zeros for the first). Editing any
column, deleting or inserting an entry breaks the chain; ``verify`` names the first entry that
does not match. Dropping the newest entries leaves a shorter, valid chain: keep the head
(``verify``'s output) somewhere else to notice that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from licensing_pipeline.governance.tables import audit_log

GENESIS = "0" * 64
DOMAIN = b"licensing-audit-v1\n"
# pg_advisory_xact_lock key: appends wait for each other until the appending transaction ends.
_LOCK_KEY = 0x4C1C_A0D1


class AuditMismatch(Exception):
    """The stored chain does not match its recomputation; the message names the entry."""


@dataclass(frozen=True)
class Verified:
    entries: int
    head: str


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers (see the module docstring)."""
    at: datetime = entry["at"]
    fields = {
        "seq": int(entry["seq"]),
        "at": at.isoformat(timespec="microseconds"),
        "actor": entry["actor"],
        "action": entry["action"],
        "tenant_id": entry["tenant_id"],
        "subject": entry["subject"],
        "details": entry["details"],
        "prev_hash": entry["prev_hash"],
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(DOMAIN + canonical(entry)).hexdigest()


def lock(connection: sa.Connection) -> None:
    """Serialise this transaction's reads of the trail and of access with other appenders
    (PostgreSQL; SQLite has a single writer). Held until the transaction ends; re-entrant."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))


def _head(connection: sa.Connection) -> tuple[int, str]:
    row = connection.execute(
        sa.select(audit_log.c.seq, audit_log.c.entry_hash).order_by(audit_log.c.seq.desc()).limit(1)
    ).first()
    return (0, GENESIS) if row is None else (int(row.seq), str(row.entry_hash))


def record(
    connection: sa.Connection,
    actor: str,
    action: str,
    subject: str,
    tenant_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Append one entry in ``connection``'s transaction and return it.

    On PostgreSQL concurrent appends queue on an advisory transaction lock; on SQLite the
    single writer makes a concurrent append wait or fail, and the unique ``prev_hash`` refuses
    a fork either way."""
    lock(connection)
    seq, prev = _head(connection)
    when = (at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    entry: dict[str, Any] = {
        "seq": seq + 1,
        "at": when,
        "actor": actor,
        "action": action,
        "tenant_id": tenant_id,
        "subject": subject,
        "details": json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":")),
        "prev_hash": prev,
    }
    entry["entry_hash"] = entry_hash(entry)
    connection.execute(sa.insert(audit_log).values(**entry))
    return entry


def _describe(row: Mapping[str, Any]) -> str:
    return f"audit entry {row['seq']} ({row['at'].isoformat()}, {row['action']} by {row['actor']})"


def verify(connection: sa.Connection) -> Verified:
    """Recompute the chain from the first entry; raise ``AuditMismatch`` at the first bad one.

    A loop over entries: the chain is sequential by design, and the trail holds human actions
    (thousands, not millions)."""
    expected_seq, prev = 1, GENESIS
    result = connection.execute(sa.select(audit_log).order_by(audit_log.c.seq))
    for row in map(dict, result.mappings()):
        if row["seq"] != expected_seq:
            raise AuditMismatch(
                f"{_describe(row)}: expected entry {expected_seq} here (entries missing)"
            )
        if row["prev_hash"] != prev:
            raise AuditMismatch(
                f"{_describe(row)}: prev_hash {row['prev_hash'][:12]}... is not the previous "
                f"entry's hash {prev[:12]}..."
            )
        if entry_hash(row) != row["entry_hash"]:
            raise AuditMismatch(f"{_describe(row)}: entry_hash does not match its content")
        expected_seq, prev = expected_seq + 1, row["entry_hash"]
    return Verified(entries=expected_seq - 1, head=prev)


def entries(
    connection: sa.Connection, *, tenant_id: str | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """The entries, oldest first, of one tenant and/or from a time on."""
    query = sa.select(audit_log).order_by(audit_log.c.seq)
    if tenant_id:
        query = query.where(audit_log.c.tenant_id == tenant_id)
    if since:
        query = query.where(audit_log.c.at >= since)
    return [dict(r) for r in connection.execute(query).mappings()]
