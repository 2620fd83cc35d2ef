"""The usage ledger on both warehouses: what ingest appends, what `ledger verify` recomputes,
and each attack on the stored history, detected with a message naming what and where."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from licensing_pipeline.cli import main
from licensing_pipeline.governance import ledger
from licensing_pipeline.warehouse.resources import Warehouse
from licensing_pipeline_tests.contract.test_incremental_ingest import ingest, night
from licensing_pipeline_tests.contract.test_usage import event, write_lines


def run(con_of: Warehouse, sql: str, parameters: list[Any] | None = None) -> None:
    """A statement as someone with write access to the warehouse (on PostgreSQL, the tables'
    owner, who can switch the ledger's triggers off)."""
    with con_of.connect() as con:
        if con_of.is_postgres:
            for table in (ledger.LEDGER_TABLE, ledger.LEAVES_TABLE):
                con.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        con.execute(sql, parameters)


def rows(warehouse: Warehouse, sql: str) -> list[tuple[Any, ...]]:
    with warehouse.connect() as con:
        return [tuple(r) for r in con.execute(sql).fetchall()]


@pytest.fixture
def cli_env(any_warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    """`licensing-pipeline` pointed at the test's warehouse."""
    monkeypatch.setenv("LICENSING_HOME", str(tmp_path / "home"))
    if any_warehouse.is_postgres:
        monkeypatch.setenv("LICENSING_WAREHOUSE_URL", any_warehouse.url)
    else:
        monkeypatch.setenv("LICENSING_WAREHOUSE_PATH", any_warehouse.path)
    for name in (
        "LICENSING_LEDGER_SIGNING_KEY",
        "LICENSING_LEDGER_SIGNING_KEY_FILE",
        "LICENSING_LEDGER_PUBLIC_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    return any_warehouse


@pytest.fixture
def two_nights(cli_env: Warehouse, tmp_path: Path) -> Iterator[Warehouse]:
    """Two batches: a.jsonl (e1..e3) and b.jsonl (b1, b2)."""
    usage = tmp_path / "usage"
    write_lines(usage / "a.jsonl", [event("e1", gb=1), event("e2"), event("e3")])
    ingest(cli_env, usage)
    night(usage, "b.jsonl", ["b1", "b2"], day="2026-10-04")
    ingest(cli_env, usage)
    yield cli_env


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["ledger", "verify", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# --- what ingest appends ------------------------------------------------------------------


def test_each_batch_is_one_chained_entry_and_verify_holds(
    two_nights: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = rows(two_nights, "SELECT seq, batch_id, events, retires FROM main.usage_ledger")
    assert sorted(entries) == [(1, 1, 3, ""), (2, 2, 2, "")]
    code, out = verify(capsys)
    assert code == 0, out
    assert "2 entries" in out and "5 events held" in out


def test_a_leaf_is_sha256_of_zero_and_the_documented_canonical_bytes(
    two_nights: Warehouse,
) -> None:
    """Recomputed here from the event's fields with hashlib, as a third party would."""
    (source, id_, type_, tenant, time, user, feature, region, data, leaf) = rows(
        two_nights,
        "SELECT e.source, e.id, e.type, e.tenant_id, e.time, e.user_id, e.feature, e.region, "
        "e.data, l.leaf FROM main.usage_events e JOIN main.usage_ledger_leaves l "
        "ON l.id = e.id WHERE e.id = 'e1'",
    )[0]

    def netstring(value: str | None) -> bytes:
        if value is None:
            return b"~,"
        raw = value.encode()
        return str(len(raw)).encode() + b":" + raw + b","

    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields = (source, id_, type_, tenant, stamp, user, feature, region, data)
    assert stamp == "2026-10-03T12:12:09.000000Z"
    expected = hashlib.sha256(b"\x00" + b"".join(netstring(f) for f in fields)).hexdigest()
    assert leaf == expected


def test_a_full_refresh_keeps_the_ledger_retires_the_old_batches_and_ids_keep_growing(
    two_nights: Warehouse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest(two_nights, tmp_path / "usage", full_refresh=True)
    entries = sorted(
        rows(two_nights, "SELECT seq, batch_id, retires, events FROM main.usage_ledger")
    )
    assert entries[2:] == [(3, None, "*", 0), (4, 3, "", 3), (5, 4, "", 2)]
    code, out = verify(capsys)
    assert code == 0, out


def test_a_changed_file_s_new_batch_retires_the_old_one(
    two_nights: Warehouse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "usage" / "a.jsonl"
    write_lines(path, [event("e1", gb=1), event("e4")])
    os.utime(path, ns=(1, 10**18))
    ingest(two_nights, tmp_path / "usage")
    assert sorted(rows(two_nights, "SELECT seq, batch_id, retires FROM main.usage_ledger"))[2] == (
        3,
        3,
        "1",
    )
    code, out = verify(capsys)
    assert code == 0, out


# --- attacks, each detected and named -------------------------------------------------------


ATTACKS = {
    "a quantity edited in place": (
        "UPDATE main.usage_events SET data = replace(data, '1', '9') WHERE id = 'e1'",
        "batch 1 (a.jsonl), position 0: event source 'api-gateway', id 'e1' changed",
    ),
    "an event deleted": (
        "DELETE FROM main.usage_events WHERE id = 'b2'",
        "batch 2 (b.jsonl), position 1: event source 'api-gateway', id 'b2' deleted",
    ),
    "an event added": (
        "INSERT INTO main.usage_events SELECT source, 'x9', type, tenant_id, time, user_id, "
        "feature, region, data, file, 99 FROM main.usage_events WHERE id = 'e1'",
        "a.jsonl, line 99: event source 'api-gateway', id 'x9' is held but in no batch",
    ),
    "two batches swapped": (
        "UPDATE main.usage_ledger SET seq = 3 - seq",
        "ledger entry 1 (batch 2, b.jsonl): does not link to the entry before",
    ),
    "a forged chain head": (
        f"UPDATE main.usage_ledger SET chain_hash = '{'ab' * 32}' WHERE seq = 2",
        "ledger entry 2 (batch 2, b.jsonl): chain hash does not match",
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_an_attack_on_the_history_is_named_and_exits_non_zero(
    two_nights: Warehouse, capsys: pytest.CaptureFixture[str], attack: str
) -> None:
    statement, message = ATTACKS[attack]
    run(two_nights, statement)
    code, out = verify(capsys)
    assert code == 1
    assert message in out


def test_an_edited_event_with_its_leaf_rewritten_fails_on_the_root(
    two_nights: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    run(two_nights, "UPDATE main.usage_events SET tenant_id = 't-2' WHERE id = 'b1'")
    d = ledger.POSTGRES if two_nights.is_postgres else ledger.DUCKDB
    run(
        two_nights,
        f"UPDATE main.usage_ledger_leaves SET leaf = (SELECT {ledger.leaf_sql(d, 'e')} "
        "FROM main.usage_events e WHERE e.id = 'b1') WHERE id = 'b1'",
    )
    code, out = verify(capsys)
    assert code == 1
    assert "batch 2 (b.jsonl): its leaves no longer give the ledger's root" in out


def test_verify_from_a_batch_skips_the_earlier_ones(
    two_nights: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    run(two_nights, "UPDATE main.usage_events SET data = '{}' WHERE id = 'e2'")
    code, out = verify(capsys, "--from", "2")
    assert code == 0, out
    assert "1 live batch(es) from batch 2 recomputed (2 events)" in out
    assert verify(capsys)[0] == 1


# --- PostgreSQL: the ledger refuses changes -------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE main.usage_ledger SET events = 0",
        "DELETE FROM main.usage_ledger",
        "TRUNCATE main.usage_ledger",
        "UPDATE main.usage_ledger_leaves SET leaf = ''",
        "DELETE FROM main.usage_ledger_leaves",
        "TRUNCATE main.usage_ledger_leaves",
        "DELETE FROM main.usage_ledger_checkpoints",
        "TRUNCATE main.usage_ledger_checkpoints",
    ],
)
@pytest.mark.parametrize("any_warehouse", ["postgres"], indirect=True)
def test_postgres_ledger_tables_refuse_update_delete_and_truncate(
    two_nights: Warehouse, statement: str
) -> None:
    import psycopg2

    assert two_nights.is_postgres
    refused = pytest.raises(psycopg2.errors.RaiseException, match=r"is append-only: \w+ refused")
    with refused, two_nights.connect() as con:
        con.execute(statement)
    assert len(rows(two_nights, "SELECT * FROM main.usage_ledger")) == 2


# --- proofs ---------------------------------------------------------------------------------


def check_proof(proof: dict[str, Any]) -> bool:
    """An independent verifier: a few lines of hashlib, nothing of the pipeline's."""
    h = hashlib.sha256(b"\x00" + bytes.fromhex(proof["canonical_bytes_hex"])).digest()
    if h.hex() != proof["leaf"]:
        return False
    for step in proof["audit_path"]:
        sibling = bytes.fromhex(step["hash"])
        pair = sibling + h if step["side"] == "left" else h + sibling
        h = hashlib.sha256(b"\x01" + pair).digest()
    return h.hex() == proof["root"]


def test_an_inclusion_proof_checks_out_independently_for_every_position(
    cli_env: Warehouse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    usage = tmp_path / "usage"
    night(usage, "n.jsonl", [f"n{i}" for i in range(7)])  # 7: an odd node promoted twice
    ingest(cli_env, usage)
    roots = {r[0] for r in rows(cli_env, "SELECT merkle_root FROM main.usage_ledger")}
    for i in range(7):
        assert main(["ledger", "proof", "t-1", f"n{i}"]) == 0
        proof = json.loads(capsys.readouterr().out)
        assert proof["position"] == i and proof["tree_size"] == 7
        assert proof["root"] in roots
        assert check_proof(proof), proof
        forged = {**proof, "canonical_bytes_hex": proof["canonical_bytes_hex"].replace("31", "32")}
        assert not check_proof({**forged, "leaf": hashlib.sha256(b"\x00").hexdigest()})


def test_a_proof_of_an_unknown_event_is_one_line(
    two_nights: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ledger", "proof", "t-1", "nope"]) == 2
    assert capsys.readouterr().err.strip() == (
        "licensing-pipeline: tenant 't-1' has no event 'nope' in a live batch"
    )


def test_the_documented_canonical_example_is_what_the_sql_writes() -> None:
    import duckdb

    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    documented = text.split("2:gw,", 1)[1].split("`", 1)[0]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    row = con.execute(
        f"SELECT {ledger.canonical_sql(ledger.DUCKDB, 'e')} FROM (SELECT 'gw' AS source, "
        "'e1' AS id, 'api.request' AS type, 't-1' AS tenant_id, "
        "TIMESTAMP '2026-10-03 12:12:09' AS time, NULL::VARCHAR AS user_id, 'sso' AS feature, "
        """'eu-west-1' AS region, '{"n": 1}' AS data) AS e"""
    ).fetchone()
    assert row is not None and row[0] == "2:gw," + documented


def test_a_reset_whose_load_never_committed_is_finished_by_the_next_run(
    two_nights: Warehouse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The registry and events dropped (``--full-refresh``'s first step) and the run killed:
    the next run reads everything and retires the ledger's batches."""
    from licensing_pipeline.contract import usage_registry as registry

    with two_nights.connect() as con:
        registry.reset(con)
        registry.ensure_tables(con)
    assert verify(capsys)[0] == 1  # the ledger's batches have no events
    stats = ingest(two_nights, tmp_path / "usage")
    assert stats.refresh_reason == "an empty usage registry while the ledger holds batches"
    code, out = verify(capsys)
    assert code == 0, out


def rfc6962_root(leaves: list[bytes]) -> bytes:
    """MTH of RFC 6962, section 2.1, by its recursive definition (split at the largest power
    of two below n)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + rfc6962_root(leaves[:k]) + rfc6962_root(leaves[k:])).digest()


def test_the_set_wise_tree_is_rfc_6962_s_for_every_size_up_to_33() -> None:
    import duckdb

    con = duckdb.connect()
    leaves = {
        n: [hashlib.sha256(b"\x00" + bytes([n, i])).digest() for i in range(n)]
        for n in range(1, 34)
    }
    con.execute("CREATE TABLE t (batch_id BIGINT, pos BIGINT, h VARCHAR)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?)",
        [(n, i, leaf.hex()) for n, hashes in leaves.items() for i, leaf in enumerate(hashes)],
    )
    found = ledger.roots(con, "SELECT * FROM t")
    assert found == {n: rfc6962_root(hashes).hex() for n, hashes in leaves.items()}


def test_a_warehouse_from_before_the_ledger_is_read_once_into_it(
    two_nights: Warehouse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with two_nights.connect() as con:
        for table in (ledger.LEDGER_TABLE, ledger.LEAVES_TABLE, ledger.CHECKPOINTS_TABLE):
            con.execute(f"DROP TABLE {table}")
    stats = ingest(two_nights, tmp_path / "usage")
    assert stats.refresh_reason is not None
    assert stats.refresh_reason.startswith("a registry from before the usage ledger")
    assert stats.events_loaded == 5
    code, out = verify(capsys)
    assert code == 0, out
    assert "2 entries" in out
