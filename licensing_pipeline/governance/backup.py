"""Backup and restore of all licensing state, as one portable archive.

What a lost database cannot be rebuilt from: the repository's tables (every table of its
metadata: findings, tickets, outbox, policy history, exceptions, enforcement, ...), the
warehouse's usage tables (``main.usage_*`` and ``main.quarantine_usage_*``: the events, the
usage registry, the ledger) and the policy bundle in force. Not in it: what a run rebuilds
(the dbt models, the source tables read from the exports, ``main.usage_build_state``, whose
absence makes the next run rebuild the models whole) and Dagster's own storage.

The archive is a tar of Parquet members (written by DuckDB or pyarrow, column by column), the
policy files and ``manifest.json`` (row counts and SHA-256 of every member, the schema
revision, the ledger head), sealed with the backup key (``sealed.py``). Every byte of the tar
is covered by something checked: member data by the manifest's hashes, the manifest by
``manifest.sha256``, tar headers by their checksums, and the padding must be zeros. A
restore checks all of it before it writes anything.

LICENSING_BACKUP_KEY  the backup key: 32 random bytes, base64
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from licensing_pipeline import environment as env
from licensing_pipeline.contract.usage_registry import BUILD_STATE_TABLE, file_sha256
from licensing_pipeline.file_modes import PRIVATE_FILE, own_folder, set_mode
from licensing_pipeline.governance import sealed
from licensing_pipeline.settings import Settings
from licensing_pipeline.warehouse import postgres
from licensing_pipeline.warehouse.resources import SCHEMA, Warehouse, warehouse_for

KEY_VARIABLE = "LICENSING_BACKUP_KEY"
FORMAT = "licensing-pipeline-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_HASH = "manifest.sha256"
USAGE_PREFIXES = ("usage_", "quarantine_usage_")
LEDGER_TABLE = "usage_ledger"
RESTORED_POLICY = "restored-policy"  # under LICENSING_HOME
_COPY_CHUNK = 1 << 20


class BackupError(Exception):
    """An archive or a target that cannot be used; the message names the file and what."""


@dataclass(frozen=True)
class LedgerHead:
    entries: int
    chain_hash: str

    def as_json(self) -> dict[str, Any]:
        return {"entries": self.entries, "chain_hash": self.chain_hash}


def ledger_head(con: Any) -> LedgerHead | None:
    """The ledger's last entry (its ``seq`` and ``chain_hash``), None without a ledger."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [SCHEMA, LEDGER_TABLE],
    ).fetchone()
    if not found or not found[0]:
        return None
    row = con.execute(
        f"SELECT seq, chain_hash FROM {SCHEMA}.{LEDGER_TABLE} ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return LedgerHead(int(row[0]), str(row[1])) if row else LedgerHead(0, "")


def _head_from_json(value: dict[str, Any] | None) -> LedgerHead | None:
    return LedgerHead(int(value["entries"]), str(value["chain_hash"])) if value else None


# --- what goes in -------------------------------------------------------------------------


def repository_tables() -> list[sa.Table]:
    """Every table of the repository's metadata, parents before children."""
    from licensing_pipeline.repository.schema import full_metadata

    return list(full_metadata().sorted_tables)


def rebuilt_models() -> set[str]:
    """The dbt models' table names: a run rebuilds them, so they stay out of the archive."""
    from licensing_pipeline.warehouse.manifest import prepare_manifest

    nodes = json.loads(prepare_manifest().read_text())["nodes"].values()
    return {n.get("alias") or n["name"] for n in nodes if n["resource_type"] == "model"}


def usage_tables(names: Sequence[str], models: set[str]) -> list[str]:
    """The warehouse tables that hold usage state: ``usage_*`` and ``quarantine_usage_*``,
    less the dbt models and the build state (rebuilt by the next run)."""
    build_state = BUILD_STATE_TABLE.split(".")[1]
    return sorted(
        n for n in names if n.startswith(USAGE_PREFIXES) and n not in models and n != build_state
    )


def base_tables(warehouse: Warehouse) -> list[str]:
    if not warehouse.is_postgres and not Path(warehouse.path).expanduser().exists():
        return []
    with warehouse.connect(read_only=not warehouse.is_postgres) as con:
        rows = con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name",
            [SCHEMA],
        ).fetchall()
    return [str(r[0]) for r in rows]


# --- Parquet, both ways -------------------------------------------------------------------


def _arrow_type(column: sa.Column[Any]) -> pa.DataType | None:
    """The Parquet type of a repository column (None: pyarrow infers it)."""
    kind = column.type
    for sql, arrow in (
        (sa.Boolean, pa.bool_()),
        (sa.Integer, pa.int64()),
        (sa.Float, pa.float64()),
        (sa.DateTime, pa.timestamp("us")),
        (sa.Date, pa.date32()),
        (sa.String, pa.string()),
    ):
        if isinstance(kind, sql):
            return arrow
    return None


def dump_repository_table(con: sa.Connection, table: sa.Table, path: Path) -> int:
    rows = con.execute(sa.select(table)).fetchall()
    values = list(zip(*rows, strict=True)) if rows else [() for _ in table.columns]
    arrays = [
        pa.array(list(v), type=_arrow_type(c)) for c, v in zip(table.columns, values, strict=True)
    ]
    pq.write_table(pa.Table.from_arrays(arrays, names=[c.name for c in table.columns]), path)
    return len(rows)


def load_repository_table(con: sa.Connection, table: sa.Table, path: Path) -> None:
    records = pq.read_table(path).to_pylist()
    if records:
        con.execute(sa.insert(table), records)


def reset_sequences(con: sa.Connection, tables: Sequence[sa.Table]) -> None:
    """PostgreSQL: each serial id continues past the restored rows (SQLite needs nothing)."""
    if con.dialect.name != "postgresql":
        return
    for table in tables:
        column = table.autoincrement_column
        if column is None:
            continue
        con.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence(:table, :column), "
                f'COALESCE((SELECT max("{column.name}") FROM "{table.name}"), 0) + 1, false)'
            ),
            {"table": table.name, "column": column.name},
        )


def dump_warehouse_tables(
    warehouse: Warehouse, tables: Sequence[str], folder: Path
) -> dict[str, int]:
    """Each table to ``folder/<table>.parquet`` in one snapshot; returns the row counts."""
    counts: dict[str, int] = {}
    if not tables:
        return counts
    if not warehouse.is_postgres:
        with warehouse.connect(read_only=True) as con:
            con.execute("BEGIN TRANSACTION")
            for table in tables:
                target = folder / f"{table}.parquet"
                con.execute(f"COPY {SCHEMA}.\"{table}\" TO '{target}' (FORMAT parquet)")
                counts[table] = int(
                    con.execute(f'SELECT count(*) FROM {SCHEMA}."{table}"').fetchone()[0]
                )
            con.execute("COMMIT")
        return counts
    with postgres.connect(warehouse.url) as pg, _duck() as duck:
        pg.set_session(isolation_level="REPEATABLE READ", readonly=True)
        for table in tables:
            counts[table] = _postgres_to_parquet(pg, duck, table, folder)
    return counts


@contextlib.contextmanager
def _duck() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def _postgres_to_parquet(pg: Any, duck: duckdb.DuckDBPyConnection, table: str, folder: Path) -> int:
    """One PostgreSQL table to Parquet through COPY and DuckDB, typed as DuckDB types it."""
    sql = f"SELECT * FROM {postgres.quote(SCHEMA)}.{postgres.quote(table)}"
    csv_path = folder / f"{table}.csv"
    with pg.cursor() as cur:
        columns = postgres._describe(cur, sql)
        with csv_path.open("wb") as out:
            cur.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER false)", out)
    spec = "{" + ", ".join(f"'{n}': '{t}'" for n, t in columns) + "}"
    target = folder / f"{table}.parquet"
    duck.execute(
        f"COPY (SELECT * FROM read_csv('{csv_path}', columns={spec}, header=false, "
        "auto_detect=false, allow_quoted_nulls=false, quote='\"', escape='\"', delim=',', "
        f"nullstr='')) TO '{target}' (FORMAT parquet)"
    )
    csv_path.unlink()
    return int(pq.read_metadata(target).num_rows)


def load_warehouse_tables(warehouse: Warehouse, members: dict[str, Path]) -> None:
    """Create each table from its Parquet file, all in one transaction."""
    if not warehouse.is_postgres:
        with warehouse.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for table, path in members.items():
                    con.execute(
                        f'CREATE TABLE {SCHEMA}."{table}" AS SELECT * FROM read_parquet(?)',
                        [str(path)],
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return
    with postgres.connect(warehouse.url) as pg, _duck() as duck, pg.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {postgres.quote(SCHEMA)}")
        for table, path in members.items():
            _parquet_to_postgres(cur, duck, table, path)
        # committed by postgres.connect when the block ends, rolled back if it raises


def _parquet_to_postgres(cur: Any, duck: duckdb.DuckDBPyConnection, table: str, path: Path) -> None:
    columns = duck.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
    definition = ", ".join(
        f"{postgres.quote(n)} {postgres.postgres_type(t)}" for n, t, *_ in columns
    )
    target = f"{postgres.quote(SCHEMA)}.{postgres.quote(table)}"
    csv_path = path.with_suffix(".csv")
    duck.execute(
        f"COPY (SELECT * FROM read_parquet('{path}')) TO '{csv_path}' (FORMAT csv, HEADER false)"
    )
    cur.execute(f"CREATE TABLE {target} ({definition})")
    with csv_path.open("rb") as rows:
        cur.copy_expert(f"COPY {target} FROM STDIN WITH (FORMAT csv)", rows)
    cur.execute(f"ANALYZE {target}")
    csv_path.unlink()


def drop_warehouse_tables(warehouse: Warehouse, tables: Sequence[str]) -> None:
    with warehouse.connect() as con:
        for table in tables:
            con.execute(f'DROP TABLE IF EXISTS {SCHEMA}."{table}"')


# --- the archive --------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    name: str  # inside the archive, e.g. repository/compliance_findings.parquet
    kind: str  # repository, warehouse or policy
    rows: int | None  # Parquet members
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    created_at: str
    profile: str
    schema_revision: str
    ledger_head: LedgerHead | None
    policy_hash: str
    policy_folder: bool
    members: tuple[Member, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at,
            "profile": self.profile,
            "schema_revision": self.schema_revision,
            "ledger_head": self.ledger_head.as_json() if self.ledger_head else None,
            "policy": {"content_hash": self.policy_hash, "folder": self.policy_folder},
            "members": [m.__dict__ for m in self.members],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            created_at=str(data["created_at"]),
            profile=str(data["profile"]),
            schema_revision=str(data["schema_revision"]),
            ledger_head=_head_from_json(data["ledger_head"]),
            policy_hash=str(data["policy"]["content_hash"]),
            policy_folder=bool(data["policy"]["folder"]),
            members=tuple(Member(**m) for m in data["members"]),
        )

    def of_kind(self, kind: str) -> list[Member]:
        return [m for m in self.members if m.kind == kind]


def _member(folder: Path, name: str, kind: str, rows: int | None) -> Member:
    path = folder / name
    return Member(name, kind, rows, file_sha256(str(path)), path.stat().st_size)


def write_tar(folder: Path, manifest: Manifest, out: Path) -> None:
    """The manifest, its hash, then every member, in the manifest's order (USTAR: no
    extended headers, so every header is one checksummed block)."""
    text = json.dumps(manifest.as_json(), indent=2, sort_keys=True).encode()
    (folder / MANIFEST).write_bytes(text)
    (folder / MANIFEST_HASH).write_text(hashlib.sha256(text).hexdigest() + "\n")
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in (MANIFEST, MANIFEST_HASH, *(m.name for m in manifest.members)):
            info = tar.gettarinfo(str(folder / name), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = PRIVATE_FILE
            with (folder / name).open("rb") as handle:
                tar.addfile(info, handle)


def _safe_name(name: str, where: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise BackupError(f"{where}: member {name!r} points outside the archive")
    return path.as_posix()


def _check_padding(tar_path: Path, covered: list[tuple[int, int, str]], where: str) -> None:
    """Every byte no header or member covers is zero: a flipped byte in padding shows too."""
    size = tar_path.stat().st_size
    with tar_path.open("rb") as handle:
        position = 0
        for start, end, name in [*sorted(covered), (size, size, "the end")]:
            if start > position:
                handle.seek(position)
                if handle.read(start - position).strip(b"\0"):
                    raise BackupError(f"{where}: damaged bytes before {name} (offset {position})")
            position = max(position, end)


def read_tar(tar_path: Path, into: Path, where: str) -> Manifest:
    """Extract and check every member against the manifest; nothing unchecked comes out."""
    covered: list[tuple[int, int, str]] = []
    digests: dict[str, tuple[str, int]] = {}
    try:
        with tarfile.open(tar_path, "r:") as tar:
            for info in tar:
                name = _safe_name(info.name, where)
                if not info.isfile():
                    raise BackupError(f"{where}: member {name} is not a regular file")
                if name in digests:
                    raise BackupError(f"{where}: member {name} appears twice")
                covered.append((info.offset, info.offset_data + info.size, name))
                source = tar.extractfile(info)
                assert source is not None
                target = into / name
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with target.open("wb") as out:
                    while chunk := source.read(_COPY_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                digests[name] = (digest.hexdigest(), info.size)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupError(f"{where}: not a readable archive ({exc})") from None
    _check_padding(tar_path, covered, where)
    if MANIFEST not in digests or MANIFEST_HASH not in digests:
        raise BackupError(f"{where}: no {MANIFEST}: not a licensing-pipeline backup")
    manifest_text = (into / MANIFEST).read_bytes()
    stated = (into / MANIFEST_HASH).read_bytes().strip()
    if stated != hashlib.sha256(manifest_text).hexdigest().encode():
        raise BackupError(f"{where}: member {MANIFEST} does not match {MANIFEST_HASH} (damaged)")
    manifest = _parse_manifest(manifest_text, where)
    _check_members(manifest, digests, into, where)
    return manifest


def _parse_manifest(text: bytes, where: str) -> Manifest:
    try:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise BackupError(f"{where}: {MANIFEST} is not a licensing-pipeline backup's")
        if data.get("format_version") != FORMAT_VERSION:
            raise BackupError(
                f"{where}: backup format version {data.get('format_version')}, this release "
                f"reads {FORMAT_VERSION}"
            )
        return Manifest.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackupError(f"{where}: {MANIFEST} is malformed ({exc})") from None


def _check_members(
    manifest: Manifest, digests: dict[str, tuple[str, int]], into: Path, where: str
) -> None:
    listed = {m.name for m in manifest.members}
    extra = sorted(set(digests) - listed - {MANIFEST, MANIFEST_HASH})
    if extra:
        raise BackupError(f"{where}: member {extra[0]} is not in {MANIFEST}")
    for member in manifest.members:
        name = f"member {member.name}"
        if member.kind == "warehouse" and not PurePosixPath(member.name).stem.startswith(
            USAGE_PREFIXES
        ):
            raise BackupError(f"{where}: {name} is not a usage table")
        if member.name not in digests:
            raise BackupError(f"{where}: {name} is missing")
        if digests[member.name] != (member.sha256, member.size):
            raise BackupError(f"{where}: {name}: SHA-256 differs from {MANIFEST}'s (damaged)")
        if member.rows is not None:
            try:
                rows = pq.read_metadata(into / member.name).num_rows
            except (pa.ArrowException, OSError) as exc:
                raise BackupError(f"{where}: {name} is not Parquet ({exc})") from None
            if rows != member.rows:
                raise BackupError(
                    f"{where}: {name} holds {rows} rows, {MANIFEST} says {member.rows}"
                )


# --- backup -------------------------------------------------------------------------------


def backup_key(required: bool) -> bytes | None:
    """The key from LICENSING_BACKUP_KEY (never logged); None when unset and not required."""
    text = env.text(KEY_VARIABLE)
    if text is None:
        if required:
            raise BackupError(
                f"{KEY_VARIABLE} is not set: set it to the backup key (32 random bytes, "
                "base64), or pass --unencrypted to do without encryption"
            )
        return None
    try:
        return sealed.parse_key(text, KEY_VARIABLE)
    except sealed.SealError as exc:
        raise BackupError(str(exc)) from None


def _policy_members(policy_path: Path, folder: Path) -> tuple[str, bool, list[Member]]:
    from licensing_pipeline.policy.bundle import bundle_content_hash, bundle_files

    members = []
    for path, raw in bundle_files(policy_path):
        name = f"policy/{path.name}"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(raw)
        members.append(_member(folder, name, "policy", None))
    return bundle_content_hash(policy_path), policy_path.is_dir(), members


def collect(settings: Settings, folder: Path) -> Manifest:
    """Every member written into ``folder``; returns the manifest that lists them."""
    from licensing_pipeline.repository.resources import checked_engine
    from licensing_pipeline.repository.schema import head_revision

    members: list[Member] = []
    (folder / "repository").mkdir()
    engine = checked_engine(settings.database_url)
    with engine.connect() as con:
        if con.dialect.name == "postgresql":
            con = con.execution_options(isolation_level="REPEATABLE READ")
        with con.begin():
            for table in repository_tables():
                name = f"repository/{table.name}.parquet"
                rows = dump_repository_table(con, table, folder / name)
                members.append(_member(folder, name, "repository", rows))
    warehouse = warehouse_for(settings)
    tables = usage_tables(base_tables(warehouse), rebuilt_models())
    (folder / "warehouse").mkdir()
    counts = dump_warehouse_tables(warehouse, tables, folder / "warehouse")
    members += [_member(folder, f"warehouse/{t}.parquet", "warehouse", counts[t]) for t in tables]
    head = None
    if LEDGER_TABLE in tables:
        with warehouse.connect(read_only=not warehouse.is_postgres) as con:
            head = ledger_head(con)
    policy_hash, policy_folder, policy = _policy_members(settings.policy_path, folder)
    return Manifest(
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        profile=settings.profile,
        schema_revision=head_revision(),
        ledger_head=head,
        policy_hash=policy_hash,
        policy_folder=policy_folder,
        members=(*members, *policy),
    )


def backup(settings: Settings, out: Path, *, unencrypted: bool) -> Manifest:
    """Write the archive to ``out`` (0600; through a temporary file, renamed when complete),
    holding the run lock: no nightly run changes the state while it is read."""
    if out.exists():
        raise BackupError(f"{out} exists: give the backup a new name")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent}: no such folder")
    from licensing_pipeline.run_lock import run_lock

    key = None if unencrypted else backup_key(required=True)
    with run_lock(settings), tempfile.TemporaryDirectory(prefix="licensing-backup-") as scratch:
        work = Path(scratch)
        (work / "members").mkdir()
        manifest = collect(settings, work / "members")
        tar_path = work / "archive.tar"
        write_tar(work / "members", manifest, tar_path)
        partial = out.with_name(f".{out.name}.partial")
        if key is None:
            shutil.copyfile(tar_path, partial)
        else:
            sealed.seal(tar_path, partial, key)
        set_mode(partial, PRIVATE_FILE)
        partial.replace(out)
    return manifest


# --- restore ------------------------------------------------------------------------------


def open_archive(archive: Path, into: Path, *, unencrypted: bool) -> Manifest:
    """Decrypt (unless ``unencrypted``) and check every member into ``into``."""
    where = str(archive)
    if not archive.is_file():
        raise BackupError(f"{archive}: no such file")
    is_sealed = sealed.is_sealed(archive)
    tar_path = into / "archive.tar"
    if is_sealed and unencrypted:
        raise BackupError(f"{where} is encrypted: restore it without --unencrypted")
    if is_sealed:
        key = backup_key(required=True)
        assert key is not None
        try:
            sealed.unseal(archive, tar_path, key)
        except sealed.SealError as exc:
            raise BackupError(str(exc)) from None
    elif not unencrypted:
        if tarfile.is_tarfile(archive):
            raise BackupError(
                f"{where} is not encrypted: restore it with --unencrypted if it was written so"
            )
        raise BackupError(f"{where}: not a licensing-pipeline backup (unknown format)")
    else:
        tar_path = archive
    members = into / "members"
    members.mkdir()
    return read_tar(tar_path, members, where)


def _repository_not_empty(con: sa.Connection, tables: Sequence[sa.Table]) -> list[str]:
    present = set(sa.inspect(con).get_table_names())
    held = []
    for table in tables:
        if table.name in present:
            rows = con.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            if rows:
                held.append(f"{table.name} ({rows} rows)")
    return held


def check_targets_empty(settings: Settings) -> None:
    """Refuse a repository that holds rows, or is at another schema revision, and a
    warehouse that holds tables; each named."""
    from licensing_pipeline.repository.engines import shared_engine
    from licensing_pipeline.repository.schema import display_url, schema_status

    engine = shared_engine(settings.database_url)
    status = schema_status(engine)
    url = display_url(engine.url)
    if status.state not in ("empty", "current"):
        raise BackupError(f"the licensing repository at {url} is not empty: {status.refusal()}")
    with engine.connect() as con:
        held = _repository_not_empty(con, repository_tables())
    if held:
        raise BackupError(
            f"the licensing repository at {url} is not empty: {', '.join(held[:5])}"
            f"{' and more' if len(held) > 5 else ''}; restore needs an empty one"
        )
    warehouse = warehouse_for(settings)
    tables = base_tables(warehouse)
    if tables:
        shown = ", ".join(tables[:5]) + (" and more" if len(tables) > 5 else "")
        raise BackupError(
            f"the warehouse {warehouse.location} is not empty (tables {shown}); "
            "restore needs an empty one"
        )


def write_state(settings: Settings, manifest: Manifest, folder: Path) -> None:
    """The warehouse in one transaction, then the repository in one; if the repository's
    fails, the warehouse's tables are dropped again, so a failure leaves both empty."""
    from licensing_pipeline.repository.engines import shared_engine
    from licensing_pipeline.repository.schema import ensure_current

    engine = shared_engine(settings.database_url)
    ensure_current(engine)  # an empty database gets the schema (no rows)
    warehouse = warehouse_for(settings)
    usage = {PurePosixPath(m.name).stem: folder / m.name for m in manifest.of_kind("warehouse")}
    load_warehouse_tables(warehouse, usage)
    tables = {t.name: t for t in repository_tables()}
    try:
        with engine.begin() as con:
            for member in manifest.of_kind("repository"):
                table = tables.get(PurePosixPath(member.name).stem)
                if table is None:
                    raise BackupError(f"member {member.name}: no such table in this release")
                load_repository_table(con, table, folder / member.name)
            reset_sequences(con, list(tables.values()))
    except sa.exc.DBAPIError as exc:
        drop_warehouse_tables(warehouse, list(usage))
        reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
        raise BackupError(
            f"restore failed writing the repository ({reason}); nothing was kept"
        ) from None
    except BaseException:
        drop_warehouse_tables(warehouse, list(usage))
        raise


def restore_policy(settings: Settings, manifest: Manifest, folder: Path) -> str:
    """The archived bundle: nothing to do when the bundle in force is the same; else written
    under LICENSING_HOME/restored-policy for the operator to point LICENSING_POLICY_PATH at
    (the archive never overwrites a bundle in force). Returns what to tell."""
    from licensing_pipeline.contract.errors import ContractError
    from licensing_pipeline.policy.bundle import bundle_content_hash

    with contextlib.suppress(ContractError):
        if bundle_content_hash(settings.policy_path) == manifest.policy_hash:
            return f"The policy bundle in force ({settings.policy_path}) is the archived one."
    target = settings.home / RESTORED_POLICY
    if target.exists():
        shutil.rmtree(target)
    own_folder(target)
    files = manifest.of_kind("policy")
    for member in files:
        shutil.copyfile(folder / member.name, target / PurePosixPath(member.name).name)
        set_mode(target / PurePosixPath(member.name).name, PRIVATE_FILE)
    path = target if manifest.policy_folder else target / PurePosixPath(files[0].name).name
    return (
        f"The archived policy bundle differs from the one in force ({settings.policy_path}): "
        f"it is in {path}; set LICENSING_POLICY_PATH={path} to run under it."
    )


def verify_after_restore(settings: Settings, archived: LedgerHead | None) -> None:
    """The restored ledger's head is the archived one, and ``ledger verify`` holds over it."""
    from licensing_pipeline.governance import ledger_verify

    warehouse = warehouse_for(settings)
    with warehouse.connect() as con:
        restored = ledger_head(con)
        if restored != archived:
            raise BackupError(
                f"the restored ledger's head ({restored}) differs from the archived one "
                f"({archived})"
            )
        if restored is None:
            return
        try:
            ledger_verify.verify(con)
        except ledger_verify.LedgerMismatch as exc:
            raise BackupError(f"the restored ledger does not verify: {exc}") from None


def restore(settings: Settings, archive: Path, *, unencrypted: bool) -> tuple[Manifest, str]:
    """Check the whole archive, then the targets' emptiness, then write; returns the manifest
    and what to tell about the policy bundle."""
    from licensing_pipeline.repository.schema import head_revision
    from licensing_pipeline.run_lock import run_lock

    with tempfile.TemporaryDirectory(prefix="licensing-restore-") as scratch:
        work = Path(scratch)
        manifest = open_archive(archive, work, unencrypted=unencrypted)
        if manifest.schema_revision != head_revision():
            raise BackupError(
                f"{archive}: repository schema revision {manifest.schema_revision}, this "
                f"release's is {head_revision()}: restore with the release that wrote it"
            )
        with run_lock(settings):
            check_targets_empty(settings)
            write_state(settings, manifest, work / "members")
            policy = restore_policy(settings, manifest, work / "members")
            verify_after_restore(settings, manifest.ledger_head)
    return manifest, policy
