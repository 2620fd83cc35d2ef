"""`licensing-pipeline db ...`, and how other commands refuse a schema that is behind."""

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from licensing_pipeline import cli
from licensing_pipeline.repository import schema
from licensing_pipeline.repository.engines import shared_engine
from licensing_pipeline_tests.postgres import SERVER_URL, fresh_database


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
    engine = shared_engine(url)
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
    head = schema.head_revision()
    assert f"behind {head}" in capsys.readouterr().err

    assert cli.main(["db", "status"]) == 1
    assert "pending:  0002, 0003, 0004, 0005" in capsys.readouterr().out
    assert cli.main(["db", "upgrade"]) == 0
    assert f"from 0001 to {head} (head)" in capsys.readouterr().out
    assert cli.main(["findings"]) == 0


def test_grant_reader_needs_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("LICENSING_HOME", str(tmp_path))
    monkeypatch.setenv("LICENSING_DATABASE_URL", f"sqlite:///{tmp_path / 'licensing.db'}")
    monkeypatch.delenv("LICENSING_PROFILE", raising=False)
    assert cli.main(["db", "grant-reader"]) == 2
    assert "row-level security" in capsys.readouterr().err


def test_grant_tenant_binds_a_login_of_a_known_tenant_and_revoke_tenant_unbinds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    role = f"licensing_test_portal_{uuid.uuid4().hex[:10]}"
    server = sa.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with fresh_database() as url:
            with server.connect() as con:
                con.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
            monkeypatch.setenv("LICENSING_HOME", str(tmp_path))
            monkeypatch.setenv("LICENSING_PROFILE", "postgres")
            monkeypatch.setenv("LICENSING_DATABASE_URL", url)
            assert cli.main(["db", "grant-tenant", "acme", role]) == 2
            assert "no tenants yet" in capsys.readouterr().err
            engine = sa.create_engine(url)
            with engine.begin() as con:  # as the first run leaves it
                con.exec_driver_sql("CREATE SCHEMA main")
                con.exec_driver_sql("CREATE TABLE main.tenants (tenant_id text)")
                con.exec_driver_sql("INSERT INTO main.tenants VALUES ('acme'), ('globex')")
            engine.dispose()
            assert cli.main(["db", "grant-tenant", "acme-typo", role]) == 2
            assert "no tenant 'acme-typo'" in capsys.readouterr().err
            assert cli.main(["db", "grant-tenant", "acme", role + "x"]) == 2
            assert "no role" in capsys.readouterr().err

            assert cli.main(["db", "grant-tenant", "acme", role]) == 0
            assert f"Role {role} is now bound to tenant acme" in capsys.readouterr().out
            assert cli.main(["db", "grant-tenant", "acme", role]) == 0
            assert "was already bound" in capsys.readouterr().out
            assert cli.main(["db", "grant-tenant", "globex", role]) == 2
            assert "bound to tenant 'acme'" in capsys.readouterr().err

            assert cli.main(["db", "revoke-tenant", role]) == 0
            assert "no longer bound to tenant acme" in capsys.readouterr().out
            assert cli.main(["db", "revoke-tenant", role]) == 0
            assert "bound to no tenant" in capsys.readouterr().out
    finally:
        with server.connect() as con:
            con.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        server.dispose()


def test_grant_tenant_needs_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("LICENSING_HOME", str(tmp_path))
    monkeypatch.setenv("LICENSING_DATABASE_URL", f"sqlite:///{tmp_path / 'licensing.db'}")
    monkeypatch.delenv("LICENSING_PROFILE", raising=False)
    for command in (["grant-tenant", "acme", "acme_portal"], ["revoke-tenant", "acme_portal"]):
        assert cli.main(["db", *command]) == 2
        assert "row-level security" in capsys.readouterr().err
