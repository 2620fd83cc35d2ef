"""`licensing-pipeline db ...`, and how other commands refuse a schema that is behind."""

from pathlib import Path

import pytest

from licensing_pipeline import cli
from licensing_pipeline.repository import schema
from licensing_pipeline.repository.resources import raw_engine


@pytest.fixture
def url(repository_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LICENSING_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LICENSING_DATABASE_URL", repository_url)
    monkeypatch.delenv("LICENSING_PROFILE", raising=False)
    return repository_url


def test_status_upgrade_current(url: str, capsys: pytest.CaptureFixture[str]):
    head = schema.head_revision()
    assert cli.main(["db", "status"]) == 1
    out = capsys.readouterr().out
    assert "current:  none" in out and f"head:     {head}" in out and "empty" in out

    assert cli.main(["db", "upgrade"]) == 0
    assert f"from an empty schema to {head} (head)" in capsys.readouterr().out
    assert cli.main(["db", "upgrade"]) == 0
    assert "already at" in capsys.readouterr().out

    assert cli.main(["db", "current"]) == 0
    assert capsys.readouterr().out.strip() == f"{head} (head)"
    assert cli.main(["db", "status"]) == 0
    assert "at head" in capsys.readouterr().out


def test_a_behind_schema_stops_commands_with_one_line_and_exit_2(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    engine = raw_engine(url)
    try:
        schema.upgrade(engine, "0001")
    finally:
        engine.dispose()
    capsys.readouterr()
    assert cli.main(["findings"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("licensing-pipeline: the licensing repository at ")
    assert err.strip().endswith("run `licensing-pipeline db upgrade`")
    assert cli.main(["run", "--data-dir", str(tmp_path)]) == 2  # before the job starts
    assert "behind 0004" in capsys.readouterr().err

    assert cli.main(["db", "status"]) == 1
    assert "pending:  0002, 0003, 0004" in capsys.readouterr().out
    assert cli.main(["db", "upgrade"]) == 0
    assert "from 0001 to 0004 (head)" in capsys.readouterr().out
    assert cli.main(["findings"]) == 0


def test_grant_reader_needs_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("LICENSING_HOME", str(tmp_path))
    monkeypatch.setenv("LICENSING_DATABASE_URL", f"sqlite:///{tmp_path / 'licensing.db'}")
    monkeypatch.delenv("LICENSING_PROFILE", raising=False)
    assert cli.main(["db", "grant-reader"]) == 2
    assert "row-level security" in capsys.readouterr().err
