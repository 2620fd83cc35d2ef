"""The audit trail: appended in the caller's transaction, hash-chained, append-only, verified.

Each tampering is its own test, on the embedded profile (SQLite) and on PostgreSQL: an entry
edited in place (refused on PostgreSQL; on SQLite the test drops the trigger first, and
`audit verify` names the entry), an entry deleted, a forged entry appended with a wrong
predecessor or a wrong hash.
"""

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from licensing_pipeline import cli
from licensing_pipeline.governance import audit_trail
from licensing_pipeline.governance.tables import audit_log
from licensing_pipeline.repository import append_only
from licensing_pipeline.repository.resources import checked_engine
from licensing_pipeline_tests.backends import backend_environment, backend_variables
from licensing_pipeline_tests.postgres import fresh_database

T0 = datetime(2026, 12, 1, 9, 0)


@dataclass
class Trail:
    home: Path
    url: str | None
    engine: sa.Engine

    @property
    def postgres(self) -> bool:
        return self.url is not None

    def cli(self, *args: str) -> int:
        variables = backend_variables(self.home, self.home / "data", self.url)
        with backend_environment(variables):
            return cli.main(list(args))

    def tamper(self, sql: str) -> None:
        """Run ``sql`` with SQLite's append-only triggers out of the way (the attacker's move)."""
        with self.engine.begin() as con:
            append_only.remove(con, "audit_log")
            con.exec_driver_sql(sql)
            append_only.install(con, "audit_log")


@pytest.fixture
def trail(tmp_path: Path, database_url: str | None) -> Iterator[Trail]:
    """Three entries: two grants (no tenant), one tenant action a day later."""
    engine = checked_engine(database_url or f"sqlite:///{tmp_path / 'licensing.db'}")
    with engine.begin() as con:
        audit_trail.record(con, "root", "grant", "alice:admin", at=T0)
        audit_trail.record(con, "alice", "grant", "bob:viewer", details={"name": "Bob"}, at=T0)
        audit_trail.record(con, "bob", "propose", "quota", tenant_id="acme", at=T0.replace(day=2))
    yield Trail(tmp_path, database_url, engine)


def test_an_untouched_trail_verifies_and_names_its_head(trail: Trail, capsys):
    assert trail.cli("audit", "verify") == 0
    with trail.engine.connect() as con:
        head = audit_trail.verify(con).head
    assert f"audit trail intact: 3 entries, head {head}" in capsys.readouterr().out


def test_each_entry_carries_the_hash_of_the_previous_one(trail: Trail):
    with trail.engine.connect() as con:
        rows = audit_trail.entries(con)
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[0]["prev_hash"] == audit_trail.GENESIS
    assert [r["prev_hash"] for r in rows[1:]] == [r["entry_hash"] for r in rows[:-1]]
    assert all(audit_trail.entry_hash(r) == r["entry_hash"] for r in rows)


def test_an_entry_rolls_back_with_the_action_it_records(trail: Trail):
    with pytest.raises(RuntimeError), trail.engine.begin() as con:
        audit_trail.record(con, "alice", "grant", "carol:editor")
        raise RuntimeError("the grant failed")
    with trail.engine.connect() as con:
        assert audit_trail.verify(con).entries == 3


def refused(trail: Trail, statement: str) -> None:
    with (
        pytest.raises(sa.exc.DBAPIError, match="audit_log is append-only"),
        trail.engine.begin() as con,
    ):
        con.exec_driver_sql(statement)


def test_an_entry_edited_in_sql_is_refused_on_postgres_or_detected(trail: Trail, capsys):
    edit = "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"
    refused(trail, edit)
    if trail.postgres:
        assert trail.cli("audit", "verify") == 0
        return
    trail.tamper(edit)
    assert trail.cli("audit", "verify") == 1
    out = capsys.readouterr().out
    assert "audit entry 2 (2026-12-01T09:00:00, grant by mallory)" in out
    assert "entry_hash does not match its content" in out


def test_an_entry_deleted_in_sql_is_refused_on_postgres_or_detected(trail: Trail, capsys):
    delete = "DELETE FROM audit_log WHERE seq = 2"
    if trail.postgres:
        for statement in (delete, "TRUNCATE audit_log"):
            refused(trail, statement)
        assert trail.cli("audit", "verify") == 0
        return
    refused(trail, delete)
    trail.tamper(delete)
    assert trail.cli("audit", "verify") == 1
    assert "audit entry 3 (2026-12-02T09:00:00, propose by bob): expected entry 2" in (
        capsys.readouterr().out
    )


def forged(trail: Trail, hasher=audit_trail.entry_hash, **wrong: str) -> None:
    """Append entry 4 by hand, hashed by ``hasher``, valid but for ``wrong``."""
    with trail.engine.begin() as con:
        head = audit_trail.verify(con).head
        entry = {
            "seq": 4,
            "at": T0.replace(day=3),
            "actor": "mallory",
            "action": "grant",
            "tenant_id": None,
            "subject": "mallory:admin",
            "details": "{}",
            "prev_hash": head,
        }
        entry["entry_hash"] = hasher(entry)
        con.execute(sa.insert(audit_log).values(**{**entry, **wrong}))


def test_a_forged_entry_with_a_wrong_predecessor_is_detected(trail: Trail, capsys):
    forged(trail, prev_hash="f" * 64)
    assert trail.cli("audit", "verify") == 1
    out = capsys.readouterr().out
    assert "audit entry 4 (2026-12-03T09:00:00, grant by mallory): prev_hash ffffffffffff" in out


def test_a_forged_entry_with_a_wrong_hash_is_detected(trail: Trail, capsys):
    forged(trail, entry_hash="e" * 64)
    assert trail.cli("audit", "verify") == 1
    assert "audit entry 4 (2026-12-03T09:00:00, grant by mallory): entry_hash does not" in (
        capsys.readouterr().out
    )


def test_a_fork_of_the_chain_is_refused_by_the_database(trail: Trail):
    with trail.engine.connect() as con:
        second = audit_trail.entries(con)[1]
    with pytest.raises(sa.exc.IntegrityError), trail.engine.begin() as con:
        con.execute(sa.insert(audit_log).values(**{**second, "seq": 9, "entry_hash": "a" * 64}))


def test_the_log_filters_by_tenant_and_day_as_jsonl(trail: Trail, capsys):
    assert trail.cli("audit", "log", "--tenant", "acme", "--format", "jsonl") == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["seq"], x["actor"], x["tenant_id"]) for x in lines] == [(3, "bob", "acme")]
    assert trail.cli("audit", "log", "--since", "2026-12-02", "--format", "jsonl") == 0
    assert [json.loads(x)["seq"] for x in capsys.readouterr().out.splitlines()] == [3]


def test_the_log_prints_a_table_with_details(trail: Trail, capsys):
    assert trail.cli("audit", "log") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "seq",
        "at",
        "actor",
        "action",
        "tenant_id",
        "subject",
        "details",
    ]
    assert '{"name": "Bob"}' in out
    assert len(out.splitlines()) == 4


def test_a_bad_since_is_refused_in_one_line(trail: Trail, capsys):
    with pytest.raises(SystemExit) as exit_:
        trail.cli("audit", "log", "--since", "yesterday")
    assert exit_.value.code == 2
    assert "not a date like 2026-11-27: 'yesterday'" in capsys.readouterr().err


def test_concurrent_appends_on_postgres_queue_into_one_chain(tmp_path: Path):
    with fresh_database() as url:
        engine = checked_engine(url)

        def append(worker: int) -> None:
            for n in range(10):
                with engine.begin() as con:
                    audit_trail.record(con, f"w{worker}", "grant", f"p{n}")

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(append, range(4)))
        with engine.connect() as con:
            assert audit_trail.verify(con).entries == 40


def test_entries_hashed_before_v2_still_verify(tmp_path: Path, database_url: str | None):
    """A trail begun before migration 0010 (v1 JSON hashes) verifies and goes on in v2."""
    engine = checked_engine(database_url or f"sqlite:///{tmp_path / 'licensing.db'}")
    with engine.begin() as con:
        prev = audit_trail.GENESIS
        for seq in (1, 2):
            entry = {
                "seq": seq,
                "at": T0,
                "actor": "root",
                "action": "grant",
                "tenant_id": None,
                "subject": f"p{seq}:viewer",
                "details": '{"name":"Zoë"}',
                "prev_hash": prev,
            }
            entry["entry_hash"] = prev = audit_trail.entry_hash_v1(entry)
            con.execute(sa.insert(audit_log).values(**entry))
        audit_trail.record(con, "root", "grant", "p3:viewer", at=T0)
    with engine.connect() as con:
        assert audit_trail.verify(con).entries == 3
        third = audit_trail.entries(con)[2]
    assert third["entry_hash"] == audit_trail.entry_hash(third) != audit_trail.entry_hash_v1(third)


def test_a_forged_v1_entry_after_a_v2_one_is_detected(trail: Trail, capsys):
    """The older encoding is no way around the newer one: v1 is accepted only before v2."""
    forged(trail, audit_trail.entry_hash_v1)
    assert trail.cli("audit", "verify") == 1
    assert "audit entry 4 (2026-12-03T09:00:00, grant by mallory): entry_hash does not" in (
        capsys.readouterr().out
    )
