"""Who did what: an append-only, hash-chained audit trail in the licensing repository.

Entries are appended by ``record`` inside the caller's transaction, so an action and its entry
commit together or not at all (on PostgreSQL the workflow's SQL functions append the same
entries in SQL, migration 0010). Each entry's ``entry_hash`` is

    SHA-256( b"licensing-audit-v2\n" + canonical )

where ``canonical`` is each of ``seq``, ``at`` (ISO 8601, microseconds, UTC without offset),
``actor``, ``action``, ``tenant_id``, ``subject``, ``details`` (the stored JSON text) and
``prev_hash`` (the previous entry's ``entry_hash``; 64 zeros for the first), in that order,
as a netstring ``<UTF-8 byte length>:<bytes>,``, a missing tenant as ``~,`` (a netstring
starts with a digit, so this is unambiguous). Byte lengths and concatenation are all SQL
needs, so PostgreSQL computes the same hash (``licensing_audit_hash``). Editing any column,
deleting or inserting an entry breaks the chain; ``verify`` names the first entry that does
not match. Dropping the newest entries leaves a shorter, valid chain: keep the head
(``verify``'s output) somewhere else to notice that.

Entries written before migration 0010 carry a v1 hash (``licensing-audit-v1\n`` + sorted,
compact JSON of the same fields), which SQL cannot reproduce portably; the trail is
append-only, so they cannot be rehashed. ``verify`` accepts a v1 hash only before the first
v2 entry: a forger cannot pick the older encoding for a new entry.
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
DOMAIN = b"licensing-audit-v2\n"
DOMAIN_V1 = b"licensing-audit-v1\n"
# pg_advisory_xact_lock key: appends wait for each other until the appending transaction ends.
LOCK_KEY = 0x4C1C_A0D1


class AuditMismatch(Exception):
    """The stored chain does not match its recomputation; the message names the entry."""


@dataclass(frozen=True)
class Verified:
    entries: int
    head: str


def _netstring(value: str | None) -> bytes:
    if value is None:
        return b"~,"
    raw = value.encode()
    return str(len(raw)).encode() + b":" + raw + b","


def _at(entry: Mapping[str, Any]) -> str:
    at: datetime = entry["at"]
    return at.isoformat(timespec="microseconds")


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers (see the module docstring)."""
    fields = (
        str(int(entry["seq"])),
        _at(entry),
        entry["actor"],
        entry["action"],
        entry["tenant_id"],
        entry["subject"],
        entry["details"],
        entry["prev_hash"],
    )
    return b"".join(_netstring(f) for f in fields)


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(DOMAIN + canonical(entry)).hexdigest()


def entry_hash_v1(entry: Mapping[str, Any]) -> str:
    """The hash of entries written before migration 0010 (JSON canonical form)."""
    fields = {
        "seq": int(entry["seq"]),
        "at": _at(entry),
        "actor": entry["actor"],
        "action": entry["action"],
        "tenant_id": entry["tenant_id"],
        "subject": entry["subject"],
        "details": entry["details"],
        "prev_hash": entry["prev_hash"],
    }
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(DOMAIN_V1 + text.encode()).hexdigest()


def lock(connection: sa.Connection) -> None:
    """Serialise this transaction's reads of the trail and of access with other appenders
    (PostgreSQL; SQLite has a single writer). Held until the transaction ends; re-entrant."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(LOCK_KEY)))


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
    A v1 hash is accepted only before the first v2 entry (see the module docstring).

    A loop over entries: the chain is sequential by design, and the trail holds human actions
    (thousands, not millions)."""
    expected_seq, prev, v2_seen = 1, GENESIS, False
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
        if entry_hash(row) == row["entry_hash"]:
            v2_seen = True
        elif v2_seen or entry_hash_v1(row) != row["entry_hash"]:
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
