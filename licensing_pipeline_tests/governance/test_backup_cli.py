"""`backup` and `restore` through the CLI, on the embedded profile and on PostgreSQL.

A small licensing state (findings, a ticket with its history, usage events, a usage registry
and a ledger, beside tables a run rebuilds) is backed up once per profile; each test restores
it, or a damaged copy, into a fresh target. A damaged or foreign archive, a wrong key and a
non-empty target are each refused in one line that names what and where, with exit status 2
and nothing written.
"""

import base64
import hashlib
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from licensing_pipeline import cli
from licensing_pipeline.contract.usage_registry import ensure_tables
from licensing_pipeline.governance import ledger
from licensing_pipeline.governance.backup import (
    MANIFEST,
    MANIFEST_HASH,
    _repository_not_empty,
    base_tables,
    repository_tables,
)
from licensing_pipeline.remediation.tables import remediation_tickets, ticket_history
from licensing_pipeline.repository.engines import shared_engine
from licensing_pipeline.repository.resources import checked_engine
from licensing_pipeline.repository.tables import compliance_findings
from licensing_pipeline.settings import DEFAULT_POLICY_PATH, Settings, load_settings
from licensing_pipeline.warehouse.resources import warehouse_for
from licensing_pipeline_tests.backends import backend_environment, backend_variables
from licensing_pipeline_tests.postgres import fresh_database
from licensing_pipeline_tests.test_unreachable import closed_port

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(1, 33))).decode()
AT = datetime(2026, 11, 3, 2, 0)


@dataclass
class Target:
    home: Path
    url: str | None

    def variables(self, key: str | None = KEY) -> dict[str, str]:
        variables = backend_variables(self.home, self.home / "data", self.url)
        return {**variables, "LICENSING_BACKUP_KEY": key} if key else variables

    def cli(self, *args: str, key: str | None = KEY) -> int:
        with backend_environment(self.variables(key)):
            return cli.main(list(args))

    def settings(self) -> Settings:
        with backend_environment(self.variables()):
            return load_settings()


def seed_state(settings: Settings) -> None:
    """A repository and a warehouse as a few runs leave them, in miniature."""
    with checked_engine(settings.database_url).begin() as con:
        con.execute(
            sa.insert(compliance_findings),
            [
                {
                    "finding_id": f"f{n}",
                    "tenant_id": "acme",
                    "check": "quota_exceeded",
                    "subject": "api_calls",
                    "period": "2026-10",
                    "observed": 120.5 + n,
                    "allowed": None,
                    "severity": "critical",
                    "action": "warn",
                    "status": "open",
                    "policy_version": "1",
                    "catalog_version": "1",
                    "first_detected_at": AT,
                    "last_detected_at": AT,
                    "details": "ünïcode, 'quotes'",
                }
                for n in range(3)
            ],
        )
        ticket = {
            "finding_id": "f0",
            "tenant_id": "acme",
            "check": "quota_exceeded",
            "subject": "api_calls",
            "period": "2026-10",
            "severity": "critical",
            "action": "warn",
            "owner": "ops",
            "channel": "#c",
            "escalation_channel": "#e",
            "status": "open",
            "opened_at": AT,
            "due_date": AT.date(),
            "updated_at": AT,
        }
        ticket_id = con.execute(sa.insert(remediation_tickets), ticket).inserted_primary_key[0]
        history = {"ticket_id": ticket_id, "at": AT, "actor": "pipeline", "event": "opened"}
        con.execute(sa.insert(ticket_history), [history, {**history, "event": "escalated"}])
    with warehouse_for(settings).connect() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS main")
        ensure_tables(con)
        con.execute(
            "INSERT INTO main.usage_events (source, id, type, tenant_id, time, file, line) "
            "VALUES ('s', 'e1', 'api.call', 'acme', '2026-11-01 10:00:00', 'u.jsonl', 1), "
            "('s', 'e2', 'api.call', 'acme', '2026-11-02 11:00:00', 'u.jsonl', 2)"
        )
        con.execute("INSERT INTO main.usage_files (batch_id, file) VALUES (1, 'u.jsonl')")
        # the ledger's entry of that batch, as ingest appends it
        con.execute("CREATE TEMP TABLE _batch AS SELECT 1 AS batch_id, 'u.jsonl' AS file")
        batch = ledger.NewBatch(1, "u.jsonl", "0" * 64, None)
        ledger.append(con, "main.usage_events", "_batch", [batch], False, AT)
        # rebuilt by the next run: not in the archive
        con.execute("CREATE TABLE main.usage_build_state (through_batch BIGINT)")
        con.execute("CREATE TABLE main.usage_daily (n BIGINT)")
        con.execute("CREATE TABLE main.tenants (tenant_id VARCHAR)")


@dataclass
class Archives:
    encrypted: Path
    unencrypted: Path
    source: Target


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def archives(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Archives]:
    folder = tmp_path_factory.mktemp("backup")
    with _database(request.param) as url:
        source = Target(folder / "home", url)
        seed_state(source.settings())
        encrypted, unencrypted = folder / "state.lpb", folder / "state.tar"
        assert source.cli("backup", str(encrypted)) == 0
        assert source.cli("backup", str(unencrypted), "--unencrypted", key=None) == 0
        yield Archives(encrypted, unencrypted, source)


def _database(profile: str):  # type: ignore[no-untyped-def]
    if profile == "embedded":
        return _no_database()
    return fresh_database()


class _no_database:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def target(archives: Archives, tmp_path: Path) -> Iterator[Target]:
    """A fresh home (and database, on PostgreSQL) of the archives' profile."""
    with _database("postgres" if archives.source.url else "embedded") as url:
        yield Target(tmp_path / "restored", url)


def assert_nothing_written(target: Target, *, tables: list[str] | None = None) -> None:
    settings = target.settings()
    with shared_engine(settings.database_url).connect() as con:
        assert _repository_not_empty(con, repository_tables()) == []
    assert base_tables(warehouse_for(settings)) == (tables or [])


def refused(target: Target, capsys: pytest.CaptureFixture[str], *args: str, **kw: str) -> str:
    capsys.readouterr()
    assert target.cli("restore", *args, **kw) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def _rows(settings: Settings, sql: str) -> list[tuple]:
    with shared_engine(settings.database_url).connect() as con:
        return [tuple(r) for r in con.execute(sa.text(sql))]


def _findings(settings: Settings) -> list[tuple]:
    """Typed by the table model (SQLite gives a raw SELECT's timestamps as text)."""
    query = sa.select(compliance_findings).order_by(compliance_findings.c.finding_id)
    with shared_engine(settings.database_url).connect() as con:
        return [tuple(r) for r in con.execute(query)]


def _usage(settings: Settings, sql: str) -> list[tuple]:
    with warehouse_for(settings).connect() as con:
        return [tuple(r) for r in con.execute(sql).fetchall()]


# --- what a restore brings back -------------------------------------------------------------


def test_a_restore_brings_back_every_row_and_nothing_a_run_rebuilds(
    archives: Archives, target: Target, capsys: pytest.CaptureFixture[str]
):
    assert target.cli("restore", str(archives.encrypted)) == 0
    out = capsys.readouterr().out
    assert "ledger head 1 verified" in out and "is the archived one" in out
    before, after = archives.source.settings(), target.settings()
    findings = "SELECT * FROM compliance_findings ORDER BY finding_id"
    history = "SELECT * FROM ticket_history ORDER BY history_id"
    assert _rows(after, findings) == _rows(before, findings)
    assert _rows(after, history) == _rows(before, history)
    events = "SELECT * FROM main.usage_events ORDER BY id"
    assert _usage(after, events) == _usage(before, events)
    entries = "SELECT * FROM main.usage_ledger ORDER BY seq"
    assert _usage(after, entries) == _usage(before, entries)
    assert len(_usage(after, entries)) == 1
    assert base_tables(warehouse_for(after)) == [
        "quarantine_usage_events",
        "usage_batch_days",
        "usage_events",
        "usage_files",
        "usage_ledger",
        "usage_ledger_checkpoints",
        "usage_ledger_leaves",
    ]


def test_the_next_ids_follow_the_restored_ones(
    archives: Archives, target: Target, capsys: pytest.CaptureFixture[str]
):
    assert target.cli("restore", str(archives.unencrypted), "--unencrypted", key=None) == 0
    settings = target.settings()
    with shared_engine(settings.database_url).begin() as con:
        restored = con.execute(sa.select(sa.func.max(ticket_history.c.history_id))).scalar_one()
        entry = {"ticket_id": 1, "at": AT, "actor": "ops", "event": "acknowledged"}
        new_id = con.execute(sa.insert(ticket_history), entry).inserted_primary_key[0]
    assert new_id == restored + 1


def test_a_different_policy_in_force_is_left_alone_and_the_archived_one_written_beside(
    archives: Archives, target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    other = tmp_path / "other-policy.yaml"
    other.write_text("version: other\n")
    variables = {**target.variables(), "LICENSING_POLICY_PATH": str(other)}
    with backend_environment(variables):
        assert cli.main(["restore", str(archives.encrypted)]) == 0
    out = capsys.readouterr().out
    written = target.home / "restored-policy" / "default_policy.yaml"
    assert f"set LICENSING_POLICY_PATH={written} to run under it" in out
    assert written.read_bytes() == DEFAULT_POLICY_PATH.read_bytes()
    assert other.read_text() == "version: other\n"


def test_the_archive_is_private_and_does_not_hold_the_data_in_clear(archives: Archives):
    assert archives.encrypted.stat().st_mode & 0o777 == 0o600
    assert b"acme" not in archives.encrypted.read_bytes()
    assert b"acme" in archives.unencrypted.read_bytes()


def test_backup_needs_the_key_or_unencrypted(
    archives: Archives, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    assert archives.source.cli("backup", str(tmp_path / "x.lpb"), key=None) == 2
    assert "LICENSING_BACKUP_KEY is not set" in capsys.readouterr().err
    assert not (tmp_path / "x.lpb").exists()


# --- refused --------------------------------------------------------------------------------


def assert_refused(
    target: Target,
    capsys: pytest.CaptureFixture[str],
    archive: Path,
    expected: str,
    *,
    key: str | None = KEY,
) -> str:
    """Exit 2, one line naming the archive and what, and nothing written."""
    options = ["--unencrypted"] if key is None else []
    err = refused(target, capsys, str(archive), *options, key=key)
    assert f"{archive}{expected}" in err
    assert_nothing_written(target)
    return err


def altered(archive: Path, folder: Path, change: Callable[[bytearray], None]) -> Path:
    """A copy of the archive with ``change`` done to its bytes."""
    data = bytearray(archive.read_bytes())
    change(data)
    out = folder / f"altered{archive.suffix}"
    out.write_bytes(bytes(data))
    return out


def flip(offset: int) -> Callable[[bytearray], None]:
    def change(data: bytearray) -> None:
        data[offset] ^= 0x01

    return change


def test_a_truncated_archive_is_refused_naming_the_chunk(
    archives: Archives, target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    cut = altered(archives.encrypted, tmp_path, lambda data: data.__delitem__(slice(-100, None)))
    assert_refused(target, capsys, cut, ": chunk 0 is truncated")


def test_one_flipped_byte_in_an_encrypted_archive_is_refused_naming_the_chunk(
    archives: Archives, target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    middle = archives.encrypted.stat().st_size // 2
    flipped = altered(archives.encrypted, tmp_path, flip(middle))
    assert_refused(target, capsys, flipped, ": chunk 0 fails authentication (damaged or altered)")


def test_one_flipped_byte_in_an_unencrypted_archive_is_refused_naming_the_member(
    archives: Archives, target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    member = "repository/compliance_findings.parquet"
    with tarfile.open(archives.unencrypted) as tar:
        offset = tar.getmember(member).offset_data + 40
    flipped = altered(archives.unencrypted, tmp_path, flip(offset))
    expected = f": member {member}: SHA-256 differs from manifest.json's (damaged)"
    assert_refused(target, capsys, flipped, expected, key=None)


def test_one_flipped_byte_in_the_padding_of_an_unencrypted_archive_is_refused(
    archives: Archives, target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    size = archives.unencrypted.stat().st_size
    flipped = altered(archives.unencrypted, tmp_path, flip(size - 10))  # the closing zeros
    assert_refused(target, capsys, flipped, ": damaged bytes before the end", key=None)


def repack(archive: Path, folder: Path, change: Callable[[Path, dict], None]) -> Path:
    """The unencrypted archive unpacked, changed (files and manifest), and packed again with
    a consistent manifest hash."""
    unpacked = folder / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    manifest = json.loads((unpacked / MANIFEST).read_text())
    change(unpacked, manifest)
    names = [MANIFEST, MANIFEST_HASH, *(m["name"] for m in manifest["members"])]
    text = json.dumps(manifest).encode()
    (unpacked / MANIFEST).write_bytes(text)
    (unpacked / MANIFEST_HASH).write_text(hashlib.sha256(text).hexdigest())
    out = folder / "repacked.tar"
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in names:
            tar.add(unpacked / name, arcname=name)
    return out


def test_a_manifest_whose_member_hash_differs_is_refused_naming_the_member(
    archives: Archives, target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    member = "warehouse/usage_events.parquet"

    def forge(_: Path, manifest: dict) -> None:
        entry = next(m for m in manifest["members"] if m["name"] == member)
        entry["sha256"] = hashlib.sha256(b"something else").hexdigest()

    forged = repack(archives.unencrypted, tmp_path, forge)
    expected = f": member {member}: SHA-256 differs from manifest.json's"
    assert_refused(target, capsys, forged, expected, key=None)


def test_a_manifest_that_would_restore_a_table_other_than_usage_is_refused(
    archives: Archives, target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    def smuggle(unpacked: Path, manifest: dict) -> None:
        entry = next(m for m in manifest["members"] if m["name"] == "warehouse/usage_files.parquet")
        entry["name"] = "warehouse/tenants.parquet"
        (unpacked / "warehouse" / "usage_files.parquet").rename(unpacked / entry["name"])

    forged = repack(archives.unencrypted, tmp_path, smuggle)
    expected = ": member warehouse/tenants.parquet is not a usage table"
    assert_refused(target, capsys, forged, expected, key=None)


def test_a_wrong_key_is_refused_as_a_wrong_key(
    archives: Archives, target: Target, capsys: pytest.CaptureFixture[str]
):
    expected = " was sealed with another key"
    err = assert_refused(target, capsys, archives.encrypted, expected, key=OTHER_KEY)
    assert OTHER_KEY not in err and KEY not in err


def test_a_foreign_archive_is_refused(
    archives: Archives, target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    foreign = tmp_path / "foreign.zip"
    foreign.write_bytes(b"PK\x03\x04" + os.urandom(300))
    assert_refused(target, capsys, foreign, ": not a licensing-pipeline backup (unknown format)")


def test_a_foreign_tar_is_refused(
    archives: Archives, target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    foreign = tmp_path / "foreign.tar"
    (tmp_path / "notes.txt").write_text("not a backup")
    with tarfile.open(foreign, "w") as tar:
        tar.add(tmp_path / "notes.txt", arcname="notes.txt")
    expected = ": no manifest.json: not a licensing-pipeline backup"
    assert_refused(target, capsys, foreign, expected, key=None)


def test_an_unencrypted_archive_needs_the_flag(
    archives: Archives, target: Target, capsys: pytest.CaptureFixture[str]
):
    expected = " is not encrypted: restore it with --unencrypted"
    assert_refused(target, capsys, archives.unencrypted, expected)


def test_a_non_empty_repository_is_refused_naming_its_table(
    archives: Archives, target: Target, capsys: pytest.CaptureFixture[str]
):
    target.cli("restore", str(archives.encrypted))
    settings = target.settings()
    tables = base_tables(warehouse_for(settings))
    with warehouse_for(settings).connect() as con:
        for table in tables:
            con.execute(f"DROP TABLE main.{table}")
    err = refused(target, capsys, str(archives.encrypted))
    assert (
        "the licensing repository at" in err and "is not empty: compliance_findings (3 rows)" in err
    )
    assert base_tables(warehouse_for(settings)) == []


def test_a_non_empty_warehouse_is_refused_naming_its_table(
    archives: Archives, target: Target, capsys: pytest.CaptureFixture[str]
):
    settings = target.settings()
    with warehouse_for(settings).connect() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS main")
        con.execute("CREATE TABLE main.tenants (tenant_id VARCHAR)")
    err = refused(target, capsys, str(archives.encrypted))
    assert f"the warehouse {warehouse_for(settings).location} is not empty (tables tenants)" in err
    assert_nothing_written(target, tables=["tenants"])


def test_a_failure_while_writing_leaves_both_empty(
    archives: Archives, target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """A finding without its tenant (an archive consistent in itself, but not with the
    schema) fails the repository's transaction after the warehouse's committed: the
    warehouse's tables go again."""
    member = "repository/compliance_findings.parquet"

    def break_findings(unpacked: Path, manifest: dict) -> None:
        path = unpacked / member
        table = pq.read_table(path)
        column = table.schema.get_field_index("tenant_id")
        table = table.set_column(column, "tenant_id", pa.nulls(len(table), pa.string()))
        pq.write_table(table, path)
        entry = next(m for m in manifest["members"] if m["name"] == member)
        entry.update(sha256=hashlib.sha256(path.read_bytes()).hexdigest(), size=path.stat().st_size)

    broken = repack(archives.unencrypted, tmp_path, break_findings)
    err = refused(target, capsys, str(broken), "--unencrypted", key=None)
    assert "restore failed writing the repository" in err and "nothing was kept" in err
    assert_nothing_written(target)


def test_a_home_where_nothing_ran_yet_backs_up_and_restores(tmp_path: Path):
    empty, restored = Target(tmp_path / "empty", None), Target(tmp_path / "restored", None)
    assert empty.cli("backup", str(tmp_path / "empty.lpb")) == 0
    assert restored.cli("restore", str(tmp_path / "empty.lpb")) == 0
    assert_nothing_written(restored)


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_an_unreachable_postgresql_is_one_line(
    command: str, archives: Archives, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    port = closed_port()
    variables = {
        "LICENSING_HOME": str(tmp_path),
        "LICENSING_DATABASE_URL": f"postgresql://app:s3cret@127.0.0.1:{port}/licensing",
    }
    archive = archives.unencrypted if command == "restore" else tmp_path / "new.tar"
    with backend_environment(variables):
        assert cli.main([command, str(archive), "--unencrypted"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"licensing-pipeline: cannot reach PostgreSQL at 127.0.0.1:{port} database licensing: "
        "connection refused\n"
    )
    assert not (tmp_path / "new.tar").exists()


def test_an_embedded_archive_restores_onto_postgresql(tmp_path: Path):
    """The archive is portable: Parquet tables and a repository schema both databases share."""
    source = Target(tmp_path / "embedded", None)
    seed_state(source.settings())
    assert source.cli("backup", str(tmp_path / "state.lpb")) == 0
    with fresh_database() as url:
        target = Target(tmp_path / "postgres", url)
        assert target.cli("restore", str(tmp_path / "state.lpb")) == 0
        assert _findings(target.settings()) == _findings(source.settings())
        events = "SELECT * FROM main.usage_events ORDER BY id"
        assert _usage(target.settings(), events) == _usage(source.settings(), events)
