"""The usage ledger: every accepted batch of usage events, hashed and chained, never rewritten.

Each batch the registry (``contract.usage_registry``) writes gets one ledger entry in the same
transaction: a Merkle tree (RFC 6962: leaf = SHA-256(0x00 || bytes), node = SHA-256(0x01 ||
left || right)) over its accepted events' canonical bytes, and a chain hash linking the entry
to the one before. A batch stops being live only through a later entry that retires it (a
changed file's new batch, a full refresh), so events deleted or edited in place, or added
behind the loader's back, no longer match.

Every hash is computed by the warehouse's SQL over whole tables (DuckDB or PostgreSQL, the
same bytes on both); only the chain, one hash per entry, is computed here.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import duckdb

from licensing_pipeline.repository import append_only

LEDGER_TABLE = "main.usage_ledger"
LEAVES_TABLE = "main.usage_ledger_leaves"
CHECKPOINTS_TABLE = "main.usage_ledger_checkpoints"
GENESIS = "0" * 64  # the prev_chain of the first entry
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()  # RFC 6962: the root of no leaves
RETIRES_ALL = "*"  # this entry retires every batch of the entries before it

LEDGER_COLUMNS: dict[str, str] = {
    "seq": "BIGINT",  # 1, 2, ... in append order
    "batch_id": "BIGINT",  # NULL: an entry that only retires (a full refresh)
    "delivery": "VARCHAR",  # the file's name inside the usage folder when it was read
    "content_sha256": "VARCHAR",  # of the file
    "events": "BIGINT",  # leaves of the batch
    "merkle_root": "VARCHAR",  # hex
    "retires": "VARCHAR",  # '' | '*' | batch ids, comma-separated
    "prev_chain": "VARCHAR",
    "chain_hash": "VARCHAR",
    "appended_at": "TIMESTAMP",  # UTC
}
LEAF_COLUMNS: dict[str, str] = {
    "batch_id": "BIGINT",
    "position": "BIGINT",  # 0-based, in the order of the lines of the file
    "source": "VARCHAR",
    "id": "VARCHAR",
    "leaf": "VARCHAR",  # hex
}
CHECKPOINT_COLUMNS: dict[str, str] = {
    "entries": "BIGINT",
    "chain_head": "VARCHAR",
    "recorded_at": "TIMESTAMP",
    "public_key": "VARCHAR",  # base64 raw Ed25519; NULL: unsigned
    "signature": "VARCHAR",
}
# The fields of an event that carry meaning, in canonical order (not file/line: a rename
# changes those, not the event).
CANONICAL_FIELDS = (
    "source",
    "id",
    "type",
    "tenant_id",
    "time",
    "user_id",
    "feature",
    "region",
    "data",
)


class Connection(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Any: ...


@dataclass(frozen=True)
class Dialect:
    """The few expressions that differ between DuckDB and PostgreSQL."""

    time_text: str  # {0}: a TIMESTAMP -> 'YYYY-MM-DDTHH:MM:SS.ffffffZ'
    byte_length: str  # {0}: a text's UTF-8 length
    leaf: str  # {0}: canonical text -> hex leaf
    node: str  # {0}, {1}: hex children -> hex node
    half: str  # {0}: integer division by two


DUCKDB = Dialect(
    time_text="strftime({0}, '%Y-%m-%dT%H:%M:%S.%fZ')",
    byte_length="strlen({0})",
    leaf="sha256(unhex('00') || encode({0}))",
    node="sha256(unhex('01') || unhex({0}) || unhex({1}))",
    half="{0} // 2",
)
POSTGRES = Dialect(
    time_text="""to_char({0}, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
    byte_length="octet_length({0})",
    leaf="encode(sha256('\\x00'::bytea || convert_to({0}, 'UTF8')), 'hex')",
    node="encode(sha256('\\x01'::bytea || decode({0}, 'hex') || decode({1}, 'hex')), 'hex')",
    half="{0} / 2",
)


def dialect(con: Connection) -> Dialect:
    return DUCKDB if isinstance(con, duckdb.DuckDBPyConnection) else POSTGRES


def canonical_sql(d: Dialect, alias: str) -> str:
    """An event's canonical text: each field of ``CANONICAL_FIELDS`` as a netstring
    (``<UTF-8 byte length>:<value>,``), NULL as ``~,``; the time as
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    parts = []
    for name in CANONICAL_FIELDS:
        value = f"{alias}.{name}"
        text = d.time_text.format(value) if name == "time" else value
        length = d.byte_length.format(text)
        parts.append(f"coalesce(CAST({length} AS VARCHAR) || ':' || {text} || ',', '~,')")
    return " || ".join(parts)


def leaf_sql(d: Dialect, alias: str) -> str:
    return d.leaf.format(canonical_sql(d, alias))


def ensure_tables(con: Connection) -> None:
    """Create the ledger's tables; on PostgreSQL they refuse UPDATE, DELETE and TRUNCATE."""
    for table, columns in (
        (LEDGER_TABLE, LEDGER_COLUMNS),
        (LEAVES_TABLE, LEAF_COLUMNS),
        (CHECKPOINTS_TABLE, CHECKPOINT_COLUMNS),
    ):
        body = ", ".join(f'"{c}" {t}' for c, t in columns.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body})")
    if dialect(con) is POSTGRES:
        _append_only_triggers(con)


def _append_only_triggers(con: Connection) -> None:
    """The repository's append-only guards (trigger and revoked privileges), on the ledger."""
    for table in (LEDGER_TABLE, LEAVES_TABLE, CHECKPOINTS_TABLE):
        for statement in append_only.postgres_sql(table):
            con.execute(statement)


# --- entries and the chain -----------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    seq: int
    batch_id: int | None
    delivery: str
    content_sha256: str
    events: int
    merkle_root: str
    retires: str
    prev_chain: str
    chain_hash: str
    appended_at: datetime

    def retired(self) -> set[int]:
        return {int(b) for b in self.retires.split(",") if b and b != RETIRES_ALL}


def _netstring(value: object) -> bytes:
    if value is None:
        return b"~,"
    raw = str(value).encode()
    return str(len(raw)).encode() + b":" + raw + b","


def entry_bytes(entry: Entry) -> bytes:
    """What the chain hash covers: the entry's fields as netstrings (NULL ``~,``), the time
    as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    *fields, _, _, appended_at = dataclasses.astuple(entry)
    fields.append(appended_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    return b"".join(_netstring(f) for f in fields)


def chain_hash(prev_chain: str, entry: Entry) -> str:
    """SHA-256(0x02 || previous chain hash (32 bytes) || entry bytes)."""
    return hashlib.sha256(b"\x02" + bytes.fromhex(prev_chain) + entry_bytes(entry)).hexdigest()


def entries(con: Connection) -> list[Entry]:
    columns = ", ".join(f'"{c}"' for c in LEDGER_COLUMNS)
    rows = con.execute(f"SELECT {columns} FROM {LEDGER_TABLE} ORDER BY seq").fetchall()
    return [
        Entry(
            int(r[0]),
            None if r[1] is None else int(r[1]),
            str(r[2] or ""),
            str(r[3] or ""),
            int(r[4]),
            str(r[5]),
            str(r[6] or ""),
            str(r[7]),
            str(r[8]),
            r[9],
        )
        for r in rows
    ]


def live_batches(ledger: Sequence[Entry]) -> dict[int, Entry]:
    """The entries of the batches no later entry retires, by batch id."""
    live: dict[int, Entry] = {}
    for entry in ledger:
        if entry.retires == RETIRES_ALL:
            live.clear()
        for batch in entry.retired():
            live.pop(batch, None)
        if entry.batch_id is not None:
            live[entry.batch_id] = entry
    return live


def max_batch_id(con: Connection) -> int:
    row = con.execute(f"SELECT max(batch_id) FROM {LEDGER_TABLE}").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def has_live_batches(con: Connection) -> bool:
    return bool(live_batches(entries(con)))


# --- the Merkle tree, set-wise ---------------------------------------------------------------


def tree_levels(con: Connection, leaves_sql: str) -> Iterator[str]:
    """Build the trees of every batch of ``leaves_sql`` (batch_id, pos, h) level by level,
    each level a temp table (yielded by name) of (batch_id, pos, h); the last level holds one
    row per batch: its root. The odd last node of a level is promoted: RFC 6962's tree."""
    d = dialect(con)
    level = 0
    con.execute(f"DROP TABLE IF EXISTS _ledger_level{level}")
    con.execute(f"CREATE TEMP TABLE _ledger_level{level} AS {leaves_sql}")
    yield f"_ledger_level{level}"
    while True:
        row = con.execute(f"SELECT max(pos) FROM _ledger_level{level}").fetchone()
        if not row or row[0] is None or int(row[0]) == 0:
            return
        left = "max(CASE WHEN pos % 2 = 0 THEN h END)"
        right = "max(CASE WHEN pos % 2 = 1 THEN h END)"
        half = d.half.format("pos")
        con.execute(f"DROP TABLE IF EXISTS _ledger_level{level + 1}")
        con.execute(
            f"""
            CREATE TEMP TABLE _ledger_level{level + 1} AS
            SELECT batch_id, pos, CASE WHEN r IS NULL THEN l ELSE {d.node.format("l", "r")} END AS h
            FROM (
                SELECT batch_id, {half} AS pos, {left} AS l, {right} AS r
                FROM _ledger_level{level} GROUP BY batch_id, {half}
            ) AS pairs
            """
        )
        con.execute(f"DROP TABLE _ledger_level{level}")
        level += 1
        yield f"_ledger_level{level}"


def roots(con: Connection, leaves_sql: str) -> dict[int, str]:
    """Each batch's root from its leaves (``leaves_sql``: batch_id, pos, h)."""
    last = list(tree_levels(con, leaves_sql))[-1]
    found = con.execute(f"SELECT batch_id, h, pos FROM {last}").fetchall()
    con.execute(f"DROP TABLE {last}")
    return {int(b): str(h) for b, h, pos in found if int(pos) == 0}


# --- append ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewBatch:
    batch_id: int
    delivery: str
    content_sha256: str
    replaces: int | None


def append(
    con: Connection,
    added: str,
    files: str,
    batches: Sequence[NewBatch],
    retire_all: bool,
    appended_at: datetime,
) -> list[Entry]:
    """Append the run's entries (part of the registry's transaction): the leaves of the
    events ``added`` (joined to their batch by file through ``files``), each batch's root,
    and the chained entries; first an entry retiring every earlier batch on a full refresh."""
    d = dialect(con)
    con.execute(
        f"""
        INSERT INTO {LEAVES_TABLE}
        SELECT f.batch_id, row_number() OVER (PARTITION BY f.batch_id ORDER BY n.line) - 1,
               n.source, n.id, {leaf_sql(d, "n")}
        FROM {added} AS n INNER JOIN {files} AS f ON f.file = n.file
        """
    )
    ids = ", ".join(str(b.batch_id) for b in batches) or "NULL"  # IN (NULL): none
    found = roots(
        con,
        f"SELECT batch_id, position AS pos, leaf AS h FROM {LEAVES_TABLE} "
        f"WHERE batch_id IN ({ids})",
    )
    counts = dict(
        con.execute(
            f"SELECT batch_id, count(*) FROM {LEAVES_TABLE} "
            f"WHERE batch_id IN ({ids}) GROUP BY batch_id"
        ).fetchall()
    )
    head = con.execute(
        f"SELECT seq, chain_hash FROM {LEDGER_TABLE} ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    seq, prev = (int(head[0]), str(head[1])) if head else (0, GENESIS)
    drafts: list[tuple[int | None, str, str, int, str, str]] = []
    if retire_all and seq:
        drafts.append((None, "", "", 0, EMPTY_ROOT, RETIRES_ALL))
    for b in sorted(batches, key=lambda b: b.batch_id):
        replaces = "" if b.replaces is None else str(b.replaces)
        events = int(counts.get(b.batch_id, 0))
        root = found.get(b.batch_id, EMPTY_ROOT)
        drafts.append((b.batch_id, b.delivery, b.content_sha256, events, root, replaces))
    written = []
    for batch_id, delivery, sha, events, root, retires in drafts:
        seq += 1
        entry = Entry(seq, batch_id, delivery, sha, events, root, retires, prev, "", appended_at)
        entry = dataclasses.replace(entry, chain_hash=chain_hash(prev, entry))
        con.execute(
            f"INSERT INTO {LEDGER_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            list(dataclasses.astuple(entry)),
        )
        prev = entry.chain_hash
        written.append(entry)
    return written
