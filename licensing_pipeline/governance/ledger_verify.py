"""Verifying the usage ledger against the stored events, and inclusion proofs for one event.

``verify`` recomputes, set-wise in the warehouse's SQL, every live batch's leaves from the
events held and each batch's root, and here the chain over every entry; it names the first
thing that does not match. ``prove`` gives what a third party needs to check that one event is
in its batch's tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from licensing_pipeline.contract.usage_registry import EVENTS_TABLE
from licensing_pipeline.governance import ledger
from licensing_pipeline.governance.ledger import LEAVES_TABLE, Connection, Entry


class LedgerMismatch(Exception):
    """The first thing in the ledger or the events that does not match (one line)."""


@dataclass(frozen=True)
class Verified:
    entries: int
    chain_head: str
    batches_checked: int
    events_checked: int
    events_held: int


@dataclass(frozen=True)
class Mark:
    """A point the ledger must extend: its entry count and the chain hash there."""

    entries: int
    chain_head: str
    origin: str = field(default="checkpoint")


def check_chain(ledger_entries: Sequence[Entry], mark: Mark | None = None) -> None:
    """Every entry in sequence, linked to the one before, with the hash of what it says."""
    prev = ledger.GENESIS
    for number, entry in enumerate(ledger_entries, start=1):
        where = f"ledger entry {number} (batch {entry.batch_id}, {entry.delivery or 'a reset'})"
        if entry.seq != number:
            raise LedgerMismatch(f"{where}: sequence number {entry.seq}, expected {number}")
        if entry.prev_chain != prev:
            raise LedgerMismatch(f"{where}: does not link to the entry before (prev_chain)")
        if ledger.chain_hash(prev, entry) != entry.chain_hash:
            raise LedgerMismatch(f"{where}: chain hash does not match what the entry says")
        prev = entry.chain_hash
    if mark is None:
        return
    if len(ledger_entries) < mark.entries:
        raise LedgerMismatch(
            f"the ledger has {len(ledger_entries)} entries, fewer than the {mark.origin}'s "
            f"{mark.entries}: it does not extend it"
        )
    if mark.entries and ledger_entries[mark.entries - 1].chain_hash != mark.chain_head:
        raise LedgerMismatch(
            f"ledger entry {mark.entries}: chain hash differs from the {mark.origin}'s head "
            f"{mark.chain_head[:16]}…: a different or rewritten ledger"
        )


def _live_table(con: Connection, live: Sequence[Entry]) -> None:
    con.execute("DROP TABLE IF EXISTS _ledger_live")
    con.execute("CREATE TEMP TABLE _ledger_live (batch_id BIGINT, delivery VARCHAR)")
    for start in range(0, len(live), 500):
        chunk = live[start : start + 500]
        con.execute(
            "INSERT INTO _ledger_live VALUES " + ", ".join("(?, ?)" for _ in chunk),
            [v for e in chunk for v in (e.batch_id, e.delivery)],
        )


def _event(row: Sequence[Any]) -> str:
    return f"source {row[0]!r}, id {row[1]!r}"


def verify(con: Connection, from_batch: int = 0, mark: Mark | None = None) -> Verified:
    """Check the chain over every entry (and that it extends ``mark``), then the leaves and
    roots of the live batches from ``from_batch`` on, then that the events held are exactly
    those of the live batches. Raises ``LedgerMismatch`` naming the first mismatch."""
    d = ledger.dialect(con)
    all_entries = ledger.entries(con)
    check_chain(all_entries, mark)
    live = ledger.live_batches(all_entries)
    checked = [e for b, e in sorted(live.items()) if b >= from_batch]
    _live_table(con, checked)
    try:
        con.execute("DROP TABLE IF EXISTS _ledger_recomputed")
        con.execute(
            f"""
            CREATE TEMP TABLE _ledger_recomputed AS
            SELECT l.batch_id, l.position, l.source, l.id, l.leaf,
                   CASE WHEN e.id IS NOT NULL THEN {ledger.leaf_sql(d, "e")} END AS actual
            FROM {LEAVES_TABLE} AS l
            INNER JOIN _ledger_live AS b ON b.batch_id = l.batch_id
            LEFT JOIN {EVENTS_TABLE} AS e
                ON e.id = l.id AND e.source IS NOT DISTINCT FROM l.source
            """
        )
        bad = con.execute(
            "SELECT r.source, r.id, r.batch_id, b.delivery, r.position, r.actual "
            "FROM _ledger_recomputed AS r JOIN _ledger_live AS b ON b.batch_id = r.batch_id "
            "WHERE r.actual IS NULL OR r.actual <> r.leaf "
            "ORDER BY r.batch_id, r.position LIMIT 1"
        ).fetchone()
        found = ledger.roots(
            con, "SELECT batch_id, position AS pos, actual AS h FROM _ledger_recomputed"
        )
        sizes = dict(
            con.execute(
                "SELECT batch_id, count(*) FROM _ledger_recomputed GROUP BY batch_id"
            ).fetchall()
        )
    finally:
        con.execute("DROP TABLE IF EXISTS _ledger_recomputed")
    first_root = next(
        (
            e
            for e in checked
            if (found.get(int(e.batch_id or 0), ledger.EMPTY_ROOT), int(sizes.get(e.batch_id, 0)))
            != (e.merkle_root, e.events)
        ),
        None,
    )
    if bad is not None and (first_root is None or int(bad[2]) <= int(first_root.batch_id or 0)):
        what = "deleted (no such event held)" if bad[5] is None else "changed (leaf differs)"
        raise LedgerMismatch(
            f"batch {bad[2]} ({bad[3]}), position {bad[4]}: event {_event(bad)} {what}"
        )
    if first_root is not None:
        raise LedgerMismatch(
            f"batch {first_root.batch_id} ({first_root.delivery}): its leaves no longer give "
            f"the ledger's root and count of {first_root.events} events (leaves changed, "
            "removed or added)"
        )
    held = _count(con, f"SELECT count(*) FROM {EVENTS_TABLE}")
    expected = sum(e.events for e in live.values())
    if held != expected:
        _live_table(con, list(live.values()))
        # MATERIALIZED: under the LIMIT, PostgreSQL would pick a nested-loop anti-join
        # (minutes at 100,000 events) instead of hashing the leaves.
        extra = con.execute(
            f"""
            WITH in_no_batch AS MATERIALIZED (
                SELECT e.source, e.id, e.file, e.line FROM {EVENTS_TABLE} AS e
                WHERE NOT EXISTS (
                    SELECT 1 FROM {LEAVES_TABLE} AS l JOIN _ledger_live AS b USING (batch_id)
                    WHERE l.id = e.id AND l.source IS NOT DISTINCT FROM e.source
                )
            )
            SELECT * FROM in_no_batch ORDER BY file, line LIMIT 1
            """
        ).fetchone()
        if extra is not None:
            raise LedgerMismatch(
                f"{extra[2]}, line {extra[3]}: event {_event(extra)} is held but in no "
                "batch of the ledger (added)"
            )
        raise LedgerMismatch(
            f"the warehouse holds {held} events, the ledger's live batches {expected} "
            f"(events deleted from batches before {from_batch})"
        )
    con.execute("DROP TABLE IF EXISTS _ledger_live")
    return Verified(
        entries=len(all_entries),
        chain_head=all_entries[-1].chain_hash if all_entries else ledger.GENESIS,
        batches_checked=len(checked),
        events_checked=sum(e.events for e in checked),
        events_held=held,
    )


def _count(con: Connection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def prove(con: Connection, tenant: str, event_id: str) -> dict[str, Any]:
    """An inclusion proof of the event ``event_id`` of ``tenant`` in its live batch."""
    d = ledger.dialect(con)
    live = ledger.live_batches(ledger.entries(con))
    rows = con.execute(
        f"""
        SELECT l.batch_id, l.position, l.leaf, e.source, {ledger.canonical_sql(d, "e")}
        FROM {EVENTS_TABLE} AS e JOIN {LEAVES_TABLE} AS l
            ON l.id = e.id AND l.source IS NOT DISTINCT FROM e.source
        WHERE e.tenant_id = ? AND e.id = ?
        """,
        [tenant, event_id],
    ).fetchall()
    rows = [r for r in rows if int(r[0]) in live]
    if not rows:
        raise LedgerMismatch(f"tenant {tenant!r} has no event {event_id!r} in a live batch")
    if len(rows) > 1:
        sources = ", ".join(repr(r[3]) for r in rows)
        raise LedgerMismatch(
            f"event {event_id!r} of tenant {tenant!r} is in several sources: {sources}"
        )
    batch_id, position, leaf, _, canonical = rows[0]
    entry = live[int(batch_id)]
    path: list[dict[str, str]] = []
    index = int(position)
    last = ""
    for level in ledger.tree_levels(
        con,
        f"SELECT batch_id, position AS pos, leaf AS h FROM {LEAVES_TABLE} "
        f"WHERE batch_id = {int(batch_id)}",
    ):
        sibling = con.execute(f"SELECT h FROM {level} WHERE pos = ?", [index ^ 1]).fetchone()
        if sibling is not None:
            path.append({"side": "left" if index % 2 else "right", "hash": str(sibling[0])})
        index //= 2
        last = level
    con.execute(f"DROP TABLE IF EXISTS {last}")
    return {
        "tenant": tenant,
        "event_id": event_id,
        "batch": int(batch_id),
        "delivery": entry.delivery,
        "position": int(position),
        "tree_size": entry.events,
        "canonical_bytes_hex": str(canonical).encode().hex(),
        "leaf": str(leaf),
        "audit_path": path,
        "root": entry.merkle_root,
        "ledger_entry": entry.seq,
        "chain_hash": entry.chain_hash,
        "how_to_check": (
            "h = SHA-256(0x00 || canonical bytes) must equal leaf; then for each step of "
            "audit_path in order: h = SHA-256(0x01 || hash || h) if side is left, else "
            "SHA-256(0x01 || h || hash); the final h must equal root, the batch's Merkle root "
            "in the ledger (docs/operations.md, 'The usage ledger')."
        ),
    }
