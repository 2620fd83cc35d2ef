"""Usage telemetry (``usage/``): CloudEvents from JSON Lines and Parquet, loaded in DuckDB.

Usage is the one event-scale input, so it never passes through pandas: every file is read,
validated, de-duplicated and written to ``main.usage_events`` by SQL. Bad lines go to
``main.quarantine_usage_events`` with their file, line, field and reason, and never stop the
load. Blank lines are skipped, not bad. Only files the registry (``usage_registry``) does not
hold as they are get read, so a night costs what it brings, not what the history holds.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from licensing_pipeline.contract import usage_registry as registry
from licensing_pipeline.contract.catalog import NUMERIC_AGGREGATIONS, Catalog
from licensing_pipeline.contract.errors import ContractError, MissingInputError, link_outside
from licensing_pipeline.contract.schemas import (
    MAX_QUANTITY,
    QUARANTINED_RECORDS,
    USAGE_EVENTS_SQL,
)
from licensing_pipeline.settings import DEFAULT_EARLIEST_EVENT_DATE

SOURCE = "usage_events"
EVENTS_TABLE = registry.EVENTS_TABLE
QUARANTINE_TABLE = registry.QUARANTINE_TABLE
# The reason of a usage file refused unread (quarantined whole, not a damaged file).
LINK_OUTSIDE = "a symbolic link to a file outside the data folder: not read"

# RFC 3339 date-time; the offset is mandatory, so a local time can never be misread as UTC.
RFC3339_WITH_OFFSET = (
    r"^\d{4}-\d{2}-\d{2}[Tt ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
# CloudEvents context attributes: in Parquet every other column belongs to ``data``.
_ATTRIBUTES = (
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
)
_FLATTENED = ("user_id", "feature", "region")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A blank line: NULL from the reader, or whitespace only; the regex stops at the first
# non-space character, so it costs almost nothing on real lines.
_BLANK = r"(raw IS NULL OR NOT regexp_matches(raw, '[^ \t\r\f\v]'))"
_LINE_KEY = 4_294_967_296  # (file_no, line) packed into one BIGINT for ordering
# Longest line the one-statement read accepts; longer ones go file by file.
FAST_MAX_LINE_SIZE = 16_000_000
SLOW_MAX_LINE_SIZE = 1_000_000_000


@dataclass(frozen=True)
class UsageLoadStats:
    """What one load saw: ``lines_read = events_loaded + duplicates_dropped + quarantined``,
    over the files it read (new or changed)."""

    files: int
    jsonl_files: int
    parquet_files: int
    lines_read: int  # non-blank JSON lines plus Parquet rows
    blank_lines: int
    events_loaded: int
    duplicates_dropped: int
    quarantined: int
    first_event_time: str | None = None  # UTC, ISO, of every event held
    last_event_time: str | None = None
    # What the registry decided (not compared: the counts above describe the lines read).
    events_held: int = field(default=0, compare=False)  # in usage_events after the load
    files_unchanged: int = field(default=0, compare=False)  # registered as they are: not read
    # read again, their earlier rows replaced
    files_changed: tuple[str, ...] = field(default=(), compare=False)
    # (old, new): the same content under a new name, the old one gone
    files_renamed: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    # registered but no longer found: their rows kept
    files_missing: tuple[str, ...] = field(default=(), compare=False)
    full_refresh: bool = field(default=False, compare=False)  # every file read again
    refresh_reason: str | None = field(default=None, compare=False)  # why, when it was
    # Wall time of each stage (read_and_check, dedupe, write): which one grew, when a load
    # gets slower.
    stage_seconds: dict[str, float] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _ValueCheck:
    """A catalog meter that reads a number from ``data.<prop>`` of events of ``event_type``."""

    event_type: str
    prop: str
    metrics: tuple[str, ...]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def usage_files(usage_dir: Path) -> list[Path]:
    """Every usage file under the folder, in a stable order (which decides duplicate ties)."""
    found = [
        p
        for p in usage_dir.rglob("*")
        if p.is_file() and p.name.lower().endswith((".jsonl", ".jsonl.gz", ".parquet"))
    ]
    return sorted(found, key=lambda p: str(p.relative_to(usage_dir)))


def _value_checks(catalog: Catalog) -> list[_ValueCheck]:
    pairs: dict[tuple[str, str], list[str]] = {}
    for metric in catalog.metrics.values():
        if metric.aggregation in NUMERIC_AGGREGATIONS and metric.value_property:
            if not _IDENTIFIER.match(metric.value_property):
                raise ContractError(
                    "value_property must be an identifier",
                    field=f"metrics.{metric.name}.value_property",
                )
            pairs.setdefault((metric.event_type, metric.value_property), []).append(metric.name)
    return [_ValueCheck(t, p, tuple(sorted(m))) for (t, p), m in sorted(pairs.items())]


def _create_work_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _usage_files (file_no INTEGER, file VARCHAR, "
        "delivery VARCHAR, kind VARCHAR, batch_id BIGINT, size BIGINT, modified_at TIMESTAMP, "
        "content_sha256 VARCHAR)"
    )
    # note: a problem found before parsing (unreadable file, invalid UTF-8) that quarantines it
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _usage_lines "
        "(file_no INTEGER, line BIGINT, raw VARCHAR, note VARCHAR)"
    )


def _drop_work_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP VIEW IF EXISTS _usage_staged")
    for table in (
        "_usage_checked",
        "_usage_dups",
        "_usage_lines",
        "_usage_files",
        *registry.WORK_TABLES,
    ):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _read_jsonl(con: duckdb.DuckDBPyConnection, file_no: int, path: Path) -> None:
    """One file's lines with exact 1-based numbers into ``_usage_lines`` (the fallback of
    the one-statement read)."""
    try:
        con.execute(
            "INSERT INTO _usage_lines SELECT $file_no, row_number() OVER (), raw, NULL "
            f"FROM {_csv_lines(str(path), SLOW_MAX_LINE_SIZE)}",
            {"file_no": file_no},
        )
    except duckdb.Error:
        # DuckDB refuses the whole file (e.g. a line that is not UTF-8): read it line by line.
        _read_jsonl_slowly(con, file_no, path)


def _read_jsonl_slowly(con: duckdb.DuckDBPyConnection, file_no: int, path: Path) -> None:
    """Line by line in Python: bad bytes quarantine their line only, and a damaged file
    (e.g. a truncated .gz) keeps the lines before the damage."""
    chunks: list[bytes] = []
    damage: str | None = None
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as handle:
            for chunk in handle:
                chunks.append(chunk.rstrip(b"\n").rstrip(b"\r"))
    except (OSError, EOFError) as exc:
        damage = f"cannot read the file past line {len(chunks)}: {exc}"
    lines: list[int] = []
    raws: list[str] = []
    notes: list[str | None] = []
    for number, chunk in enumerate(chunks, start=1):
        try:
            raw, note = chunk.decode("utf-8"), None
        except UnicodeDecodeError:
            raw, note = chunk.decode("utf-8", errors="replace"), "line is not valid UTF-8 text"
        lines.append(number)
        raws.append(raw)
        notes.append(note)
    batch = pa.table(
        {
            "file_no": pa.array([file_no] * len(lines), pa.int32()),
            "line": pa.array(lines, pa.int64()),
            "raw": pa.array(raws, pa.string()),
            "note": pa.array(notes, pa.string()),
        }
    )
    con.register("_usage_batch", batch)
    try:
        con.execute("INSERT INTO _usage_lines SELECT * FROM _usage_batch")
    finally:
        con.unregister("_usage_batch")
    if damage:
        _note_unreadable(con, file_no, damage)


def _note_unreadable(con: duckdb.DuckDBPyConnection, file_no: int, reason: str) -> None:
    con.execute("INSERT INTO _usage_lines VALUES (?, NULL, NULL, ?)", [file_no, reason])


def _jsonl_select(checks: list[_ValueCheck], props: list[str], lines: str = "_usage_lines") -> str:
    """The JSON lines of ``lines`` (file_no, line, raw, note) in the staged shape; blank
    lines stay, flagged, so one pass can also count them."""
    paths = [
        "$.id",
        "$.source",
        "$.type",
        "$.subject",
        "$.time",
        "$.data",
        *(f"$.data.{name}" for name in _FLATTENED),
    ]
    path_list = "[" + ", ".join(_literal(p) for p in paths) + "]"
    # A checked value is only used on the events of the types a metric reads it from (a small
    # share of the lines), so it is read only there: parsing those lines again costs less
    # than one more path in every line's list. f[3] is the type; f is NULL unless the line
    # parsed, so the second read cannot fail.
    values = ""
    for i, prop in enumerate(props):
        types = sorted({check.event_type for check in checks if check.prop == prop})
        type_list = ", ".join(_literal(t) for t in types)
        path = _literal(f'$.data."{prop}"')
        values += (
            f", CASE WHEN f[3] IN ({type_list}) THEN json_extract_string(raw, {path}) END AS v{i}"
        )
    # The attributes come out of one json_extract_string call, which parses the line once;
    # try() turns "not JSON" into a NULL list instead of an error.
    return f"""
        SELECT file_no, line, raw, note, is_blank,
               NOT is_blank AND note IS NULL AND f IS NULL AS not_json,
               f[1] AS id, f[2] AS source, f[3] AS type, f[4] AS subject, f[5] AS time,
               f[6] AS data, f[7] AS user_id, f[8] AS feature, f[9] AS region{values}
        FROM (
            SELECT *, CASE WHEN note IS NULL AND NOT is_blank
                           THEN try(json_extract_string(raw, {path_list})) END AS f
            FROM (SELECT *, note IS NULL AND {_BLANK} AS is_blank FROM {lines})
        )
    """


def _parquet_select(
    con: duckdb.DuckDBPyConnection, file_no: int, path: Path, props: list[str]
) -> str | None:
    """A SELECT giving one Parquet file the JSON lines' shape, or None if it cannot be read."""
    try:
        described = con.execute(
            "DESCRIBE SELECT * FROM read_parquet($path)", {"path": str(path)}
        ).fetchall()
    except duckdb.Error as exc:
        _note_unreadable(con, file_no, f"cannot read Parquet file: {str(exc).splitlines()[0]}")
        return None
    types = {str(row[0]): str(row[1]).upper() for row in described}

    def text(column: str) -> str:
        return f"CAST({_ident(column)} AS VARCHAR)" if column in types else "NULL::VARCHAR"

    time_type = types.get("time", "")
    iso = "'%Y-%m-%dT%H:%M:%S.%fZ'"
    if time_type.startswith("TIMESTAMP WITH TIME ZONE"):
        time_sql = f'strftime(make_timestamp(epoch_us("time")), {iso})'
    elif time_type.startswith("TIMESTAMP"):
        time_sql = f'strftime(CAST("time" AS TIMESTAMP), {iso})'  # no zone: taken as UTC
    else:
        time_sql = text("time")
    data_columns = [c for c in types if c not in _ATTRIBUTES]
    data_sql = (
        "json_object(" + ", ".join(f"{_literal(c)}, {_ident(c)}" for c in data_columns) + ")"
        if data_columns
        else "'{}'"
    )
    raw_sql = "json_object(" + ", ".join(f"{_literal(c)}, {_ident(c)}" for c in types) + ")"
    values = "".join(f", {text(prop)} AS v{i}" for i, prop in enumerate(props))
    return f"""
        SELECT {file_no} AS file_no, file_row_number + 1 AS line, {raw_sql}::VARCHAR AS raw,
               NULL::VARCHAR AS note, false AS is_blank, false AS not_json,
               {text("id")} AS id, {text("source")} AS source, {text("type")} AS type,
               {text("subject")} AS subject, {time_sql} AS time, {data_sql}::VARCHAR AS data,
               {text("user_id")} AS user_id, {text("feature")} AS feature,
               {text("region")} AS region{values}
        FROM read_parquet({_literal(str(path))}, file_row_number = true)
    """


def _problem_sql(checks: list[_ValueCheck], props: list[str], earliest: date) -> str:
    """One CASE giving the first problem of a record as a {field, reason} struct (NULL: good).

    A time before ``earliest`` (a clock reset to 1970, a year typed as 0001) is quarantined:
    it would open a tenant's history decades early, or fall outside what pandas can hold."""

    def problem(field: str | None, reason: str) -> str:
        field_sql = _literal(field) if field else "NULL::VARCHAR"
        return f"{{'field': {field_sql}, 'reason': {reason}}}"

    whens = [
        ("note IS NOT NULL", problem(None, "note")),
        ("not_json", problem(None, "'not valid JSON'")),
        (
            "id IS NULL AND source IS NULL AND type IS NULL AND subject IS NULL "
            "AND time IS NULL AND data IS NULL AND json_type(raw) <> 'OBJECT'",
            problem(None, "'not a JSON object'"),
        ),
    ]
    for attribute in ("id", "type", "subject", "time"):
        whens.append(
            (
                f"coalesce({attribute}, '') = ''",
                problem(attribute, _literal(f"missing required attribute '{attribute}'")),
            )
        )
    whens += [
        (
            "NOT time_ok",
            problem("time", "'time is not RFC 3339 with an offset (e.g. 2026-10-03T14:12:09Z)'"),
        ),
        ("ts IS NULL", problem("time", "'time is not a valid date-time'")),
        (
            f"ts < TIMESTAMP '{earliest.isoformat()}'",
            problem(
                "time",
                _literal(f"time is before {earliest.isoformat()} (LICENSING_EARLIEST_EVENT_DATE)"),
            ),
        ),
    ]
    for check in checks:
        column = f"v{props.index(check.prop)}"
        field = f"data.{check.prop}"
        is_type = f"type = {_literal(check.event_type)}"
        meters = ", ".join(check.metrics)
        number = f"try_cast({column} AS DOUBLE)"
        whens += [
            (
                f"{is_type} AND {column} IS NULL",
                problem(field, _literal(f"missing {field}, needed by metric {meters}")),
            ),
            (
                f"{is_type} AND ({number} IS NULL OR NOT isfinite({number}))",
                problem(field, _literal(f"{field} is not a number (metric {meters})")),
            ),
            (
                f"{is_type} AND {number} < 0",
                problem(field, _literal(f"{field} is negative (metric {meters})")),
            ),
            (
                f"{is_type} AND {number} > {MAX_QUANTITY}",
                problem(
                    field,
                    _literal(
                        f"{field} is above {MAX_QUANTITY:,}, the largest quantity accepted "
                        f"(metric {meters})"
                    ),
                ),
            ),
        ]
    body = "\n".join(f"WHEN {condition} THEN {result}" for condition, result in whens)
    return f"CASE {body} END"


def _csv_lines(path: str, max_line_size: int) -> str:
    """Lines of one file as a one-column CSV: the delimiter is a run of four control
    characters, which JSON never contains unescaped, so valid lines are never split (the
    rare line that holds the run is cut there; it was not valid JSON to begin with)."""
    return (
        f"read_csv({_literal(path)}, columns = {{'raw': 'VARCHAR'}}, quote = '', "
        "delim = chr(31) || chr(30) || chr(31) || chr(30), escape = '', header = false, "
        f"auto_detect = false, strict_mode = false, max_line_size = {max_line_size})"
    )


def _lines_union(jsonl_files: list[tuple[int, Path]]) -> str:
    """All JSON Lines files as (file_no, line, raw, note), numbered per file, plus the notes
    already staged (an unreadable Parquet file).

    ``row_number() OVER ()`` runs as a streaming window, which keeps each file's order.
    DuckDB sizes its read buffers by ``max_line_size``, so the files read together use a
    smaller limit than the file-by-file fallback.
    """
    parts = [
        f"SELECT {file_no} AS file_no, row_number() OVER () AS line, raw, NULL::VARCHAR AS note "
        f"FROM {_csv_lines(str(path), FAST_MAX_LINE_SIZE)}"
        for file_no, path in jsonl_files
    ]
    return "(" + " UNION ALL ".join([*parts, "SELECT * FROM _usage_lines"]) + ")"


def _staged_view(
    checks: list[_ValueCheck],
    props: list[str],
    parquet_selects: list[str],
    lines: str = "_usage_lines",
) -> str:
    return "CREATE OR REPLACE TEMP VIEW _usage_staged AS " + " UNION ALL BY NAME ".join(
        [_jsonl_select(checks, props, lines), *parquet_selects]
    )


def _checked_sql(checks: list[_ValueCheck], props: list[str], earliest: date) -> str:
    """Every staged record with its first problem (field, reason) or none; one row per line,
    blank lines included (flagged) so they can be counted."""
    # DuckDB reads only an upper-case T and Z, and a time with a lower-case one does not
    # cast as it is: only those few times are upper-cased (a copy of every time otherwise).
    return f"""
        CREATE OR REPLACE TEMP TABLE _usage_checked AS
        WITH timed AS (
            SELECT *,
                   coalesce(regexp_matches(time, {_literal(RFC3339_WITH_OFFSET)}), false)
                       AS time_ok,
                   make_timestamp(epoch_us(coalesce(
                       try_cast(time AS TIMESTAMPTZ), try_cast(upper(time) AS TIMESTAMPTZ)
                   ))) AS ts
            FROM _usage_staged
        ), checked AS (
            SELECT *,
                   CASE WHEN NOT is_blank THEN {_problem_sql(checks, props, earliest)} END
                       AS problem
            FROM timed
        )
        SELECT file_no, line, is_blank, id, source, type, subject, ts, data, user_id, feature,
               region, problem.field AS field, problem.reason AS reason,
               CASE WHEN problem IS NOT NULL THEN raw END AS raw,
               file_no::BIGINT * {_LINE_KEY} + coalesce(line, 0) AS line_key
        FROM checked
    """


def _setting(con: duckdb.DuckDBPyConnection, name: str) -> str:
    row = con.execute("SELECT current_setting(?)", [name]).fetchone()
    assert row is not None
    return str(row[0])


def load_usage_events(
    con: duckdb.DuckDBPyConnection,
    usage_dir: Path,
    catalog: Catalog,
    *,
    earliest: date = DEFAULT_EARLIEST_EVENT_DATE,
    full_refresh: bool = False,
    target: registry.IngestTarget | None = None,
) -> UsageLoadStats:
    """Bring ``main.usage_events`` and ``main.quarantine_usage_events`` up to ``usage_dir``,
    reading only the files the registry (``main.usage_files``) does not hold as they are.

    A repeated (source, id) is one event: an event already held stays, and within the files
    read the first by (file path, line) is kept. A changed file's earlier rows are replaced
    as a unit; a file no longer found keeps its rows. ``full_refresh`` (or a change of the
    checks: catalog meters, ``earliest``; or a registry of another usage folder) reads every
    file again. A file reached through a
    symbolic link that leads out of the data folder (``usage_dir``'s parent) is quarantined
    unread; events dated before ``earliest`` are quarantined.

    ``con`` reads and checks the files; the rows go to ``target`` (default: ``con`` itself).
    """
    usage_dir = Path(usage_dir)
    if not usage_dir.is_dir():
        raise MissingInputError(usage_dir, "usage folder (usage/ with *.jsonl, *.parquet)")
    into: registry.IngestTarget = target or registry.DuckDBTarget(con)
    checks = _value_checks(catalog)
    props = sorted({check.prop for check in checks})
    rules = _rules_fingerprint(checks, earliest)
    clock = _StageClock()
    current, next_id, refresh = registry.prepare(into.con, rules, full_refresh, usage_dir)
    found = [registry.FileState.of(path, usage_dir) for path in usage_files(usage_dir)]
    plan = registry.plan_ingest(found, current, next_id)
    clock.lap("plan")
    keep_order = _setting(con, "preserve_insertion_order")
    try:
        with registry.work_tables(into) as staged:
            _stage(con, usage_dir, plan, checks, props, earliest, rules, clock)
            into.receive(con, staged)
            added = registry.apply_plan(into, plan, _now(), refresh is not None)
            clock.lap("write")
            return _stats(con, into, plan, added, refresh, clock.laps)
    finally:
        con.execute(f"SET preserve_insertion_order = {keep_order}")
        _drop_work_tables(con)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _rules_fingerprint(checks: list[_ValueCheck], earliest: date) -> str:
    text = repr(([(c.event_type, c.prop, c.metrics) for c in checks], earliest.isoformat()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stage(
    con: duckdb.DuckDBPyConnection,
    usage_dir: Path,
    plan: registry.IngestPlan,
    checks: list[_ValueCheck],
    props: list[str],
    earliest: date,
    rules: str,
    clock: _StageClock,
) -> None:
    """Read and check the plan's files into ``_ingest_events`` (one row per (source, id)),
    ``_ingest_quarantine`` and ``_ingest_files`` (their registry rows)."""
    _create_work_tables(con)
    parquet_selects = []
    jsonl_files: list[tuple[int, Path]] = []
    for file_no, batch in enumerate(plan.read):
        path = Path(batch.found.file)
        kind = "parquet" if path.name.lower().endswith(".parquet") else "jsonl"
        con.execute(
            "INSERT INTO _usage_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                file_no,
                str(path),
                batch.found.delivery,
                kind,
                batch.batch_id,
                batch.found.size,
                batch.found.modified_at,
                batch.sha256,
            ],
        )
        if link_outside(path, usage_dir.parent):
            _note_unreadable(con, file_no, LINK_OUTSIDE)
        elif kind == "jsonl":
            jsonl_files.append((file_no, path))
        else:
            select = _parquet_select(con, file_no, path, props)
            if select:
                parquet_selects.append(select)
    checked_sql = _checked_sql(checks, props, earliest)
    # Order is carried by line_key, so DuckDB may write rows as its threads finish them
    # (keeping insertion order costs about a third of the load).
    con.execute("SET preserve_insertion_order = false")
    try:
        # Fast path: every JSON Lines file read, parsed and checked in one statement,
        # without storing the lines first; DuckDB reads the files in parallel.
        lines = _lines_union(jsonl_files)
        con.execute(_staged_view(checks, props, parquet_selects, lines))
        con.execute(checked_sql)
    except duckdb.Error:
        # A file DuckDB refuses (bad bytes, a damaged .gz, a line longer than the fast
        # path's limit): stage the lines file by file, each with its own fallback.
        for file_no, path in jsonl_files:
            _read_jsonl(con, file_no, path)
        con.execute(_staged_view(checks, props, parquet_selects))
        con.execute(checked_sql)
    clock.lap("read_and_check")
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _usage_dups AS
        SELECT source, id, min(line_key) AS keep
        FROM _usage_checked WHERE reason IS NULL AND NOT is_blank
        GROUP BY source, id HAVING count(*) > 1
        """
    )
    clock.lap("dedupe")
    events = ", ".join(f"{_ident(c)} {t}" for c, t in USAGE_EVENTS_SQL.items())
    quarantine = ", ".join(
        f"{_ident(c)} {registry.QUARANTINE_SQL[t]}" for c, t in QUARANTINED_RECORDS.items()
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _ingest_events ({events})")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _ingest_quarantine ({quarantine})")
    con.execute(
        """
        INSERT INTO _ingest_events
        SELECT c.source, c.id, c.type, c.subject, c.ts, c.user_id, c.feature, c.region,
               c.data, f.file, c.line
        FROM _usage_checked c
        JOIN _usage_files f USING (file_no)
        LEFT JOIN _usage_dups d ON c.source IS NOT DISTINCT FROM d.source AND c.id = d.id
        WHERE c.reason IS NULL AND NOT c.is_blank
          AND (d.keep IS NULL OR d.keep = c.line_key)
        """
    )
    con.execute(
        f"""
        INSERT INTO _ingest_quarantine
        SELECT {_literal(SOURCE)}, f.file, c.line, c.field, rtrim(c.raw, chr(13)), c.reason
        FROM _usage_checked c JOIN _usage_files f USING (file_no)
        WHERE c.reason IS NOT NULL
        ORDER BY c.line_key
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _ingest_files AS
        SELECT f.batch_id, f.file, f.delivery, f.size, f.modified_at, f.content_sha256,
               CAST(1 AS BIGINT) AS first_line,
               CAST(coalesce(max(c.line), 0) AS BIGINT) AS last_line,
               CAST(count(*) FILTER (WHERE c.file_no IS NOT NULL AND NOT c.is_blank) AS BIGINT)
                   AS lines_read,
               CAST(count(*) FILTER (WHERE c.is_blank) AS BIGINT) AS blank_lines,
               CAST(count(*) FILTER (WHERE c.reason IS NOT NULL) AS BIGINT) AS quarantined,
               $rules AS rules
        FROM _usage_files f LEFT JOIN _usage_checked c USING (file_no)
        GROUP BY ALL
        """,
        {"rules": rules},
    )


class _StageClock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round(now - self._last, 3)
        self._last = now


def _stats(
    con: duckdb.DuckDBPyConnection,
    target: registry.IngestTarget,
    plan: registry.IngestPlan,
    added: int,
    refresh: str | None,
    stage_seconds: dict[str, float],
) -> UsageLoadStats:
    counts = con.execute(
        "SELECT count(*) FILTER (WHERE NOT is_blank), count(*) FILTER (WHERE reason IS NOT NULL), "
        "count(*) FILTER (WHERE is_blank) FROM _usage_checked"
    ).fetchone()
    held = target.con.execute(
        f"SELECT count(*), min(time), max(time) FROM {registry.EVENTS_TABLE}"
    ).fetchone()
    assert counts is not None and held is not None
    lines_read, quarantined = int(counts[0]), int(counts[1])
    jsonl = sum(1 for b in plan.read if not b.found.file.lower().endswith(".parquet"))
    return UsageLoadStats(
        files=len(plan.read),
        jsonl_files=jsonl,
        parquet_files=len(plan.read) - jsonl,
        lines_read=lines_read,
        blank_lines=int(counts[2]),
        events_loaded=added,
        duplicates_dropped=lines_read - quarantined - added,
        quarantined=quarantined,
        first_event_time=_iso(held[1]),
        last_event_time=_iso(held[2]),
        events_held=int(held[0]),
        files_unchanged=len(plan.unchanged),
        files_changed=tuple(b.found.file for b in plan.changed),
        files_renamed=tuple((old.file, new.file) for old, new in plan.renamed),
        files_missing=tuple(r.file for r in plan.missing),
        full_refresh=refresh is not None,
        refresh_reason=refresh,
        stage_seconds=stage_seconds,
    )


def _iso(value: Any) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")
