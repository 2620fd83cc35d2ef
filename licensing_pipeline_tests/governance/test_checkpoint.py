"""Signed checkpoints and the nightly mark: a ledger must extend them, signed by the pinned key."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from licensing_pipeline.cli import main
from licensing_pipeline.governance import checkpoint, checks, ledger_verify
from licensing_pipeline.warehouse.resources import Warehouse
from licensing_pipeline_tests.contract.test_incremental_ingest import ingest, night
from licensing_pipeline_tests.governance.test_ledger import cli_env, rows, run, two_nights

__all__ = ["cli_env", "two_nights"]  # fixtures used here


def keygen(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    path = tmp_path / name
    assert main(["ledger", "keygen", "--out", str(path)]) == 0
    out = capsys.readouterr().out
    return path, out.rsplit(": ", 1)[1].strip()


@pytest.fixture
def signer(
    cli_env: Warehouse,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """A signing key in a file, its public key pinned (after ``cli_env`` cleared them);
    returns the public key."""
    path, public = keygen(tmp_path, "ledger.key", capsys)
    monkeypatch.setenv("LICENSING_LEDGER_SIGNING_KEY_FILE", str(path))
    monkeypatch.setenv("LICENSING_LEDGER_PUBLIC_KEY", public)
    return public


def checkpoint_of(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "checkpoint.json"
    assert main(["ledger", "checkpoint", "--out", str(out)]) == 0, capsys.readouterr()
    capsys.readouterr()
    return out


def verify_against(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["ledger", "verify", "--checkpoint", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_keygen_writes_a_private_key_and_never_overwrites_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, public = keygen(tmp_path, "k.pem", capsys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----") and len(public) == 44
    assert main(["ledger", "keygen", "--out", str(path)]) == 2
    assert "exists; not overwritten" in capsys.readouterr().err


def test_a_ledger_extends_its_signed_checkpoint_as_it_grows(
    two_nights: Warehouse, signer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "checkpoint.json"
    assert main(["ledger", "checkpoint", "--out", str(path)]) == 0
    assert f"public key: {signer}" in capsys.readouterr().out
    document = json.loads(path.read_text())
    assert (document["entries"], document["public_key"]) == (2, signer)
    night(tmp_path / "usage", "c.jsonl", ["c1"], day="2026-10-05")
    ingest(two_nights, tmp_path / "usage")
    code, out = verify_against(path, capsys)
    assert code == 0, out
    assert "3 entries" in out and "extends" in out


def test_a_checkpoint_signed_with_another_key_is_refused(
    two_nights: Warehouse,
    signer: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other, _ = keygen(tmp_path, "other.key", capsys)
    monkeypatch.setenv("LICENSING_LEDGER_SIGNING_KEY_FILE", str(other))
    path = checkpoint_of(tmp_path, capsys)  # the pinned public key stays the first one
    code, out = verify_against(path, capsys)
    assert code == 2
    assert f"{path}: the signature does not hold under the pinned public key {signer}" in out


def test_an_edited_checkpoint_is_refused(
    two_nights: Warehouse, signer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = checkpoint_of(tmp_path, capsys)
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "entries": 1}))
    code, out = verify_against(path, capsys)
    assert code == 2 and "the signature does not hold" in out


@pytest.mark.usefixtures("signer")
def test_a_checkpoint_from_a_different_ledger_is_refused(
    two_nights: Warehouse,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = tmp_path / "other"
    monkeypatch.setenv("LICENSING_WAREHOUSE_URL", "")
    monkeypatch.setenv("LICENSING_WAREHOUSE_PATH", str(other / "warehouse.duckdb"))
    other_warehouse = Warehouse(path=str(other / "warehouse.duckdb"))
    night(other / "usage", "a.jsonl", ["z1", "z2"])
    night(other / "usage", "b.jsonl", ["z3"])
    ingest(other_warehouse, other / "usage")
    path = checkpoint_of(other, capsys)
    if two_nights.is_postgres:
        monkeypatch.setenv("LICENSING_WAREHOUSE_URL", two_nights.url)
    else:
        monkeypatch.setenv("LICENSING_WAREHOUSE_PATH", two_nights.path)
    code, out = verify_against(path, capsys)
    assert code == 1
    assert "ledger entry 2: chain hash differs from the checkpoint" in out
    assert "a different or rewritten ledger" in out


def test_a_history_rolled_back_consistently_is_caught_by_the_checkpoint(
    two_nights: Warehouse, signer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Batch 2 removed everywhere (events, leaves, entry, registry): consistent, but shorter
    than what was signed."""
    path = checkpoint_of(tmp_path, capsys)
    for statement in (
        "DELETE FROM main.usage_events WHERE file LIKE '%b.jsonl'",
        "DELETE FROM main.usage_ledger_leaves WHERE batch_id = 2",
        "DELETE FROM main.usage_ledger WHERE seq = 2",
        "DELETE FROM main.usage_files WHERE batch_id = 2",
    ):
        run(two_nights, statement)
    assert main(["ledger", "verify"]) == 0
    capsys.readouterr()
    code, out = verify_against(path, capsys)
    assert code == 1
    assert "the ledger has 1 entries, fewer than the checkpoint" in out


def test_checkpoint_without_a_signing_key_is_one_line(
    two_nights: Warehouse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ledger", "checkpoint", "--out", str(tmp_path / "c.json")]) == 2
    assert capsys.readouterr().err.startswith("licensing-pipeline: no signing key: set ")
    assert not (tmp_path / "c.json").exists()


def test_a_malformed_signing_key_is_named(
    two_nights: Warehouse,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LICENSING_LEDGER_SIGNING_KEY", "not a key")
    assert main(["ledger", "checkpoint", "--out", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("licensing-pipeline: LICENSING_LEDGER_SIGNING_KEY: not an Ed25519 key")
    assert "not a key" not in err.split(":", 2)[2]  # the secret is not echoed


# --- the nightly mark -----------------------------------------------------------------------


def test_a_night_recomputes_only_the_batches_after_the_last_mark(
    two_nights: Warehouse, tmp_path: Path
) -> None:
    keys = checkpoint.Keys(None, None)
    with two_nights.connect() as con:
        first = checks.verify_since_mark(con, keys)
    assert (first.batches_checked, first.events_checked) == (2, 5)
    night(tmp_path / "usage", "c.jsonl", ["c1"], day="2026-10-05")
    ingest(two_nights, tmp_path / "usage")
    with two_nights.connect() as con:
        second = checks.verify_since_mark(con, keys)
    assert (second.batches_checked, second.events_checked, second.entries) == (1, 1, 3)
    marks = rows(two_nights, "SELECT entries, signature FROM main.usage_ledger_checkpoints")
    assert sorted(marks) == [(2, None), (3, None)]


def test_a_night_catches_an_event_deleted_from_a_batch_before_the_mark(
    two_nights: Warehouse,
) -> None:
    keys = checkpoint.Keys(None, None)
    with two_nights.connect() as con:
        checks.verify_since_mark(con, keys)
    run(two_nights, "DELETE FROM main.usage_events WHERE id = 'e2'")
    expected = "holds 4 events, the ledger's live batches 5"
    mismatch = pytest.raises(ledger_verify.LedgerMismatch, match=expected)
    with mismatch, two_nights.connect() as con:
        checks.verify_since_mark(con, keys)


def test_a_signed_mark_is_checked_against_the_pinned_key(
    two_nights: Warehouse, signer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with two_nights.connect() as con:
        checks.verify_since_mark(con, checkpoint.load_keys())
    _, public = keygen(tmp_path, "other.key", capsys)
    pinned_elsewhere = checkpoint.Keys(None, checkpoint.parse_key(public, "k", private=False))
    refused = pytest.raises(checkpoint.CheckpointError, match="does not hold under the pinned")
    with refused, two_nights.connect() as con:
        checks.verify_since_mark(con, pinned_elsewhere)


def test_a_missing_checkpoint_file_is_one_line(
    two_nights: Warehouse, signer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = verify_against(tmp_path / "nowhere.json", capsys)
    assert code == 2
    assert (
        out
        == f"licensing-pipeline: {tmp_path / 'nowhere.json'}: cannot read: No such file or directory\n"
    )


def test_a_file_that_is_not_a_checkpoint_is_one_line(
    two_nights: Warehouse, signer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.json"
    path.write_text('{"entries": 2}')
    code, out = verify_against(path, capsys)
    assert code == 2
    assert out.strip().endswith(f"{path}: not a usage ledger checkpoint ({checkpoint.FORMAT})")


def test_verify_without_a_warehouse_is_one_line(
    cli_env: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ledger", "verify"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run `licensing-pipeline run`" in err
