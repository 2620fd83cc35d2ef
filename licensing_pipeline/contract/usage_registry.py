"""The usage-file registry: which usage files the warehouse holds, so a run reads only new ones.

Each row of ``main.usage_files`` is one *batch*: a file's content as ingested once (its path,
its name inside the usage folder, size, modification time, SHA-256, line range, counts, when).
The registry belongs to one usage folder: a run pointed at another folder reads it whole, as
``--full-refresh`` does, so the rows of one dataset never mix with another's. A file whose content changes gets a
new batch that replaces the old one as a unit (``replaced_by``); the old row stays as history.
Batch ids only grow, across full refreshes too, so they order the batches; each batch lands
with its entry of the usage ledger (``governance.ledger``), which a reset never drops. ``main.usage_batch_days`` keeps the UTC days whose events each batch added: the days the
incremental dbt models rebuild.

A run's batches are written in one transaction together with their rows, on DuckDB and on
PostgreSQL alike, so a run killed at any point leaves either all of them or none.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import duckdb

from licensing_pipeline.contract.schemas import INT, QUARANTINED_RECORDS, STRING, USAGE_EVENTS_SQL
from licensing_pipeline.governance import ledger

EVENTS_TABLE = "main.usage_events"
QUARANTINE_TABLE = "main.quarantine_usage_events"
REGISTRY_TABLE = "main.usage_files"
BATCH_DAYS_TABLE = "main.usage_batch_days"
# Written after a nightly dbt build succeeds: through which batch and as-of day the incremental
# models are built (no row: they are rebuilt whole).
BUILD_STATE_TABLE = "main.usage_build_state"

REGISTRY_COLUMNS: dict[str, str] = {
    "batch_id": "BIGINT",
    "file": "VARCHAR",  # as in usage_events.file
    "delivery": "VARCHAR",  # the path inside the usage folder: what the file is known by
    "size": "BIGINT",
    "modified_at": "TIMESTAMP",  # UTC
    "content_sha256": "VARCHAR",
    "first_line": "BIGINT",  # the lines of the file this batch covers
    "last_line": "BIGINT",
    "lines_read": "BIGINT",  # non-blank lines (Parquet: rows)
    "blank_lines": "BIGINT",
    "events_loaded": "BIGINT",
    "duplicates_dropped": "BIGINT",  # within the batch or of an event already held
    "quarantined": "BIGINT",
    "first_event_time": "TIMESTAMP",
    "last_event_time": "TIMESTAMP",
    "rules": "VARCHAR",  # fingerprint of the checks the rows passed (catalog, earliest day)
    "ingested_at": "TIMESTAMP",
    "replaced_by": "BIGINT",  # the batch that replaced this one when the file changed
}
QUARANTINE_SQL = {STRING: "VARCHAR", INT: "BIGINT"}
WORK_TABLES = ("_ingest_events", "_ingest_quarantine", "_ingest_files")
NEW_EVENTS = "_ingest_new"  # a temp table on both warehouses
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileState:
    """A usage file as found on disk."""

    file: str
    delivery: str
    size: int
    modified_at: datetime

    @classmethod
    def of(cls, path: Path, usage_dir: Path) -> FileState:
        stat = path.stat()
        # naive UTC, microseconds: what both warehouses store and give back
        modified = datetime(1970, 1, 1) + timedelta(microseconds=stat.st_mtime_ns // 1000)
        return cls(str(path), path.relative_to(usage_dir).as_posix(), stat.st_size, modified)


@dataclass(frozen=True)
class Registered:
    """A current (not replaced) batch of the registry."""

    batch_id: int
    file: str
    delivery: str
    size: int
    modified_at: datetime
    content_sha256: str


@dataclass(frozen=True)
class ToRead:
    found: FileState
    sha256: str
    batch_id: int
    replaces: Registered | None = None


@dataclass
class IngestPlan:
    """What a run does with each usage file. Unchanged files are not opened; a file whose
    size or time changed is hashed, and read only if its content did."""

    read: list[ToRead] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # same content under a new name while the old name is gone: the batch takes the new name
    renamed: list[tuple[Registered, FileState]] = field(default_factory=list)
    # same content, new modification time: only the registry's time changes
    retouched: list[tuple[Registered, FileState]] = field(default_factory=list)
    missing: list[Registered] = field(default_factory=list)

    @property
    def changed(self) -> list[ToRead]:
        return [r for r in self.read if r.replaces is not None]


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def plan_ingest(
    found: Sequence[FileState],
    registered: Sequence[Registered],
    next_batch_id: int,
    sha256: Callable[[str], str] = file_sha256,
) -> IngestPlan:
    """Sort the files found into read (new or changed), unchanged, renamed, retouched, and the
    registered files no longer found (missing: reported, their rows kept)."""
    plan = IngestPlan()
    by_delivery = {r.delivery: r for r in registered}
    present = {f.delivery for f in found}
    gone = [r for r in registered if r.delivery not in present]
    for state in found:
        known = by_delivery.get(state.delivery)
        if known and (known.size, known.modified_at) == (state.size, state.modified_at):
            plan.unchanged.append(state.file)
            continue
        digest = sha256(state.file)
        if known and known.content_sha256 == digest:
            plan.retouched.append((known, state))
        elif known:
            plan.read.append(ToRead(state, digest, next_batch_id + len(plan.read), known))
        elif moved := next((r for r in gone if r.content_sha256 == digest), None):
            gone.remove(moved)
            plan.renamed.append((moved, state))
        else:
            plan.read.append(ToRead(state, digest, next_batch_id + len(plan.read)))
    plan.missing = gone
    return plan


class Connection(Protocol):
    """What both warehouses' connections offer (DuckDB's, and ``PostgresConnection``)."""

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Any: ...


class IngestTarget(Protocol):
    """The warehouse a run's batches go to; the batches are staged in a DuckDB connection."""

    @property
    def con(self) -> Connection: ...

    def staged(self, table: str) -> str:
        """How the target's SQL names a staged table."""
        ...

    def receive(self, staging: duckdb.DuckDBPyConnection, tables: Sequence[str]) -> None:
        """Make staged tables readable by the target's SQL."""
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def discard(self, tables: Sequence[str]) -> None:
        """Drop what ``receive`` made."""
        ...


class DuckDBTarget:
    """The staging connection is the warehouse: staged tables are its temp tables."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def staged(self, table: str) -> str:
        return table

    def receive(self, staging: duckdb.DuckDBPyConnection, tables: Sequence[str]) -> None:
        return None

    def commit(self) -> None:
        self.con.execute("COMMIT")

    def rollback(self) -> None:
        self.con.execute("ROLLBACK")

    def discard(self, tables: Sequence[str]) -> None:
        return None


def _columns(columns: dict[str, str]) -> str:
    return ", ".join(f'"{c}" {t}' for c, t in columns.items())


def ensure_tables(con: Connection) -> bool:
    """Create the tables a run writes if missing; False when there was no registry yet (a
    warehouse from before the registry, or a new one: its usage is loaded whole)."""
    had_registry = table_exists(con, REGISTRY_TABLE)
    quarantine = {c: QUARANTINE_SQL[t] for c, t in QUARANTINED_RECORDS.items()}
    for table, columns in (
        (EVENTS_TABLE, USAGE_EVENTS_SQL),
        (QUARANTINE_TABLE, quarantine),
        (REGISTRY_TABLE, REGISTRY_COLUMNS),
        (BATCH_DAYS_TABLE, {"batch_id": "BIGINT", "usage_date": "DATE", "events": "BIGINT"}),
    ):
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({_columns(columns)})")
    ledger.ensure_tables(con)
    return had_registry


def table_exists(con: Connection, table: str) -> bool:
    """Whether ``schema.table`` exists, on either warehouse."""
    schema, name = table.split(".")
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchone()
    return bool(row and row[0])


def reset(con: Connection) -> None:
    """Forget every batch and row: the next load reads every file (``--full-refresh``). The
    ledger stays: the load's first entry retires the batches forgotten here."""
    for table in (EVENTS_TABLE, QUARANTINE_TABLE, REGISTRY_TABLE, BATCH_DAYS_TABLE):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(f"DROP TABLE IF EXISTS {BUILD_STATE_TABLE}")


def prepare(
    con: Connection, rules: str, full_refresh: bool, folder: Path
) -> tuple[list[Registered], int, str | None]:
    """The current batches and the next batch id, after forgetting everything when the load
    must read every file; the last item says why it must (None: it need not). It must when
    asked (``--full-refresh``), with no registry yet (a new warehouse, or one from before the
    registry), when the rows were checked by other rules (``rules``: a catalog meter or the
    earliest day changed), when the batches came from another usage folder than
    ``folder`` (another dataset: its rows must not stay as "files no longer delivered"),
    when the registry is empty while the ledger holds live batches (a reset whose load never
    committed), and when the ledger holds no batch while the registry does (a warehouse from
    before the ledger: read once, its events enter the ledger)."""
    reason = "asked (--full-refresh)" if full_refresh else None
    if not ensure_tables(con):
        reason = reason or "a new warehouse (no usage registry)"
    elif not reason:
        current, next_id, last_rules = registered(con)
        previous = _folder_of(current)
        if not current and not ledger.has_live_batches(con):
            return current, next_id, None
        if not current:
            reason = "an empty usage registry while the ledger holds batches"
        elif not ledger.max_batch_id(con):
            reason = "a registry from before the usage ledger (its events are hashed into it)"
        elif last_rules != rules:
            reason = "the usage checks changed (a catalog meter or the earliest event date)"
        elif previous != _normal(folder):
            reason = f"another usage folder (the warehouse held {previous})"
        else:
            return current, next_id, None
    reset(con)
    ensure_tables(con)
    current, next_id, _ = registered(con)
    return current, next_id, reason


def _normal(folder: Path | str) -> str:
    return os.path.normpath(os.path.abspath(folder))


def _folder_of(batches: Sequence[Registered]) -> str | None:
    """The usage folder the batches were read from (None: none, or more than one)."""
    folders = {_normal(b.file[: len(b.file) - len(b.delivery)] or ".") for b in batches}
    return folders.pop() if len(folders) == 1 else None


def registered(con: Connection) -> tuple[list[Registered], int, str | None]:
    """The current batches, the next batch id, and the rules fingerprint of the last batch."""
    rows = con.execute(
        f"SELECT batch_id, file, delivery, size, modified_at, content_sha256 FROM {REGISTRY_TABLE} "
        "WHERE replaced_by IS NULL ORDER BY batch_id"
    ).fetchall()
    last = con.execute(
        f"SELECT batch_id, rules FROM {REGISTRY_TABLE} ORDER BY batch_id DESC LIMIT 1"
    ).fetchone()
    current = [
        Registered(int(r[0]), str(r[1]), str(r[2]), int(r[3]), r[4], str(r[5])) for r in rows
    ]
    next_id = max(int(last[0]) if last else 0, ledger.max_batch_id(con)) + 1
    return current, next_id, (str(last[1]) if last else None)


def _in_list(values: Sequence[Any]) -> str:
    return "(" + ", ".join("?" for _ in values) + ")"


def register_batches(target: IngestTarget, plan: IngestPlan, ingested_at: datetime) -> None:
    """The registry part of the transaction: the new batches (counts of the rows to come are
    filled in by ``finish_batches``), the replaced ones, renames and new modification times."""
    con, files = target.con, target.staged("_ingest_files")
    for old, state in plan.renamed + plan.retouched:
        con.execute(
            f"UPDATE {REGISTRY_TABLE} SET file = ?, delivery = ?, modified_at = ? "
            "WHERE batch_id = ?",
            [state.file, state.delivery, state.modified_at, old.batch_id],
        )
    for batch in plan.changed:
        assert batch.replaces is not None
        con.execute(
            f"UPDATE {REGISTRY_TABLE} SET replaced_by = ? WHERE batch_id = ?",
            [batch.batch_id, batch.replaces.batch_id],
        )
    con.execute(
        f"""
        INSERT INTO {REGISTRY_TABLE}
        SELECT batch_id, file, delivery, size, modified_at, content_sha256, first_line, last_line,
               lines_read, blank_lines, 0, 0, quarantined, NULL, NULL, rules, ?, NULL
        FROM {files}
        """,
        [ingested_at],
    )


def store_rows(target: IngestTarget, plan: IngestPlan) -> str:
    """The rows part: a changed file's earlier rows go, renamed files' rows take the new name,
    and the staged events not already held (by source and id) are added. Returns the table
    of the events added: ``NEW_EVENTS``, or the staged events themselves when nothing was
    held (a first or full load: no anti-join, no copy)."""
    con = target.con
    for table in (EVENTS_TABLE, QUARANTINE_TABLE):
        old = [batch.replaces.file for batch in plan.changed if batch.replaces]
        if old:
            con.execute(f"DELETE FROM {table} WHERE file IN {_in_list(old)}", old)
        for moved, state in plan.renamed + plan.retouched:
            if moved.file != state.file:
                con.execute(f"UPDATE {table} SET file = ? WHERE file = ?", [state.file, moved.file])
    events = target.staged("_ingest_events")
    held = con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {EVENTS_TABLE} LIMIT 1) AS e")
    if not held.fetchone()[0]:
        con.execute(f"INSERT INTO {EVENTS_TABLE} SELECT * FROM {events}")
        _store_quarantine(target)
        return events
    con.execute(
        f"""
        CREATE TEMP TABLE {NEW_EVENTS} AS
        SELECT * FROM {events} AS b
        WHERE NOT EXISTS (
            SELECT 1 FROM {EVENTS_TABLE} AS e
            WHERE e.id = b.id AND e.source IS NOT DISTINCT FROM b.source
        )
        """
    )
    con.execute(f"INSERT INTO {EVENTS_TABLE} SELECT * FROM {NEW_EVENTS}")
    _store_quarantine(target)
    return NEW_EVENTS


def _store_quarantine(target: IngestTarget) -> None:
    target.con.execute(
        f"INSERT INTO {QUARANTINE_TABLE} SELECT * FROM {target.staged('_ingest_quarantine')}"
    )


def finish_batches(target: IngestTarget, added: str) -> None:
    """The last registry part: each new batch's loaded events, duplicates, time range and
    days, from the rows just added (``added``)."""
    con, files = target.con, target.staged("_ingest_files")
    con.execute(
        f"""
        INSERT INTO {BATCH_DAYS_TABLE}
        SELECT f.batch_id, CAST(n.time AS DATE), count(*)
        FROM {added} AS n INNER JOIN {files} AS f ON f.file = n.file
        GROUP BY f.batch_id, CAST(n.time AS DATE)
        """
    )
    con.execute(
        f"""
        UPDATE {REGISTRY_TABLE} SET
            events_loaded = loaded.events,
            first_event_time = loaded.first_time,
            last_event_time = loaded.last_time
        FROM (
            SELECT file, count(*) AS events, min(time) AS first_time, max(time) AS last_time
            FROM {added} GROUP BY file
        ) AS loaded
        WHERE {REGISTRY_TABLE}.file = loaded.file AND {REGISTRY_TABLE}.replaced_by IS NULL
          AND {REGISTRY_TABLE}.batch_id IN (SELECT batch_id FROM {files})
        """
    )
    con.execute(
        f"""
        UPDATE {REGISTRY_TABLE} SET duplicates_dropped = lines_read - quarantined - events_loaded
        WHERE batch_id IN (SELECT batch_id FROM {files})
        """
    )


def apply_plan(
    target: IngestTarget, plan: IngestPlan, ingested_at: datetime, retire_all: bool
) -> int:
    """Write the run's batches, rows and ledger entries in one transaction; returns the
    events added. ``retire_all``: the registry was reset, so the ledger's earlier batches go."""
    con = target.con
    con.execute("BEGIN TRANSACTION")
    try:
        register_batches(target, plan, ingested_at)
        added = store_rows(target, plan)
        finish_batches(target, added)
        new = [
            ledger.NewBatch(
                b.batch_id, b.found.delivery, b.sha256, b.replaces.batch_id if b.replaces else None
            )
            for b in plan.read
        ]
        files = target.staged("_ingest_files")
        ledger.append(con, added, files, new, retire_all, ingested_at)
        row = con.execute(f"SELECT count(*) FROM {added}").fetchone()
        target.commit()
    except BaseException:
        target.rollback()
        raise
    finally:
        con.execute(f"DROP TABLE IF EXISTS {NEW_EVENTS}")
    return int(row[0]) if row else 0


@contextmanager
def work_tables(target: IngestTarget) -> Iterator[tuple[str, ...]]:
    """The staged tables' names, dropped afterwards on both sides."""
    try:
        yield WORK_TABLES
    finally:
        target.discard(WORK_TABLES)
