"""TLS to PostgreSQL: ``sslmode``, ``sslrootcert``, ``sslcert`` and ``sslkey`` in a URL reach
every connection (SQLAlchemy, the warehouse's psycopg2, dbt, Dagster's storage), and a failed
TLS handshake is one line that says TLS.

The local server runs with ssl off: ``sslmode=disable`` must work against it and
``sslmode=require`` must fail. Tests of a working TLS connection would need a server with
ssl on; none is started here.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg2.extensions
import pytest
import sqlalchemy as sa

from licensing_pipeline import cli
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.settings import load_settings
from licensing_pipeline.warehouse import postgres
from licensing_pipeline.warehouse.assets import dbt_connection
from licensing_pipeline.warehouse.manifest import dbt_executable
from licensing_pipeline.warehouse.resources import Warehouse
from licensing_pipeline_tests.backends import backend_environment, process_environment
from licensing_pipeline_tests.postgres import fresh_database
from licensing_pipeline_tests.test_unreachable import assert_one_line, licensing_pipeline

PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"
CERTS = {
    "sslmode": "verify-full",
    "sslrootcert": "/etc/licensing tls/root.crt",  # a space: kept, not turned into "+"
    "sslcert": "/etc/licensing tls/app.crt",
    "sslkey": "/etc/licensing tls/app.key",
}


def with_query(url: str, **query: str) -> str:
    return sa.make_url(url).update_query_dict(query).render_as_string(hide_password=False)


def server_ssl(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as con:
            return str(con.execute(sa.text("SHOW ssl")).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
def plain_server() -> Iterator[str]:
    """A fresh database on the local server, which must have ssl off for these tests."""
    with fresh_database() as url:
        if server_ssl(url) != "off":
            pytest.skip("the local server has ssl on: sslmode=require would succeed")
        yield url


def test_the_warehouse_connection_string_carries_the_tls_parameters():
    url = with_query("postgresql+psycopg2://app:pw@db.internal:5433/licensing", **CERTS)
    parsed = psycopg2.extensions.parse_dsn(postgres.dsn(url))
    assert {k: parsed[k] for k in CERTS} == CERTS
    assert (parsed["host"], parsed["port"], parsed["dbname"], parsed["user"]) == (
        "db.internal",
        "5433",
        "licensing",
        "app",
    )


def test_the_dbt_connection_carries_the_tls_parameters():
    url = with_query("postgresql+psycopg2://app@db.internal:5432/licensing", **CERTS)
    connection = dbt_connection(Warehouse(url=url))
    assert {k: connection[f"LICENSING_PG_{k.upper()}"] for k in CERTS} == CERTS


def test_without_tls_parameters_the_dbt_connection_leaves_them_empty():
    connection = dbt_connection(Warehouse(url="postgresql+psycopg2://app@db:5432/licensing"))
    assert {k: connection[f"LICENSING_PG_{k.upper()}"] for k in CERTS} == dict.fromkeys(CERTS, "")


def rendered_profile(variables: dict[str, str]) -> dict:
    """The postgres output of profiles.yml as dbt renders it under ``variables``."""
    from dbt.adapters.postgres.connections import PostgresCredentials
    from dbt.config.profile import read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context

    with backend_environment({}):
        saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("PGSSL")}
        os.environ.update(variables)
        try:
            set_invocation_context(dict(os.environ))
            raw = read_profile(str(PROJECT))["licensing_warehouse"]["outputs"]["postgres"]
            credentials = PostgresCredentials.from_dict(ProfileRenderer({}).render_data(raw))
        finally:
            for name in variables:
                os.environ.pop(name, None)
            os.environ.update(saved)
    return {k: getattr(credentials, k) for k in CERTS}


def test_the_dbt_profile_passes_the_urls_tls_parameters_to_dbt_postgres():
    url = with_query("postgresql+psycopg2://app@db.internal:5432/licensing", **CERTS)
    assert rendered_profile(dbt_connection(Warehouse(url=url))) == CERTS


def test_the_dbt_profile_falls_back_to_libpqs_variables():
    connection = dbt_connection(Warehouse(url="postgresql+psycopg2://app@db:5432/licensing"))
    libpq = {"PGSSLMODE": "require", "PGSSLROOTCERT": "/ca.crt"}
    assert rendered_profile({**connection, **libpq}) == {
        "sslmode": "require",
        "sslrootcert": "/ca.crt",
        "sslcert": "",
        "sslkey": "",
    }


def test_dagsters_storage_url_keeps_the_tls_parameters(tmp_path: Path):
    url = with_query("postgresql://app@db.internal:5432/licensing", **CERTS)
    variables = {
        "LICENSING_HOME": str(tmp_path),
        "LICENSING_PROFILE": "postgres",
        "LICENSING_DATABASE_URL": url,
    }
    with backend_environment(variables):
        settings = load_settings()
    for value in (settings.dagster_storage_url, settings.warehouse_url, settings.database_url):
        assert value is not None
        query = sa.make_url(value).query
        assert {k: query[k] for k in CERTS} == CERTS


def test_sslmode_disable_works_against_a_server_without_ssl(plain_server: str):
    url = with_query(plain_server, sslmode="disable")
    assert LicensingRepository(database_url=url).load_findings().empty
    with postgres.connect(url) as pg, pg.cursor() as cur:
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchone() == (False,)


TLS_REFUSED = "over TLS (sslmode=require): server does not support SSL, but SSL was required"


@pytest.mark.parametrize("profile", ["postgres", "embedded"])
@pytest.mark.parametrize("command", [["run"], ["db", "status"]])
def test_sslmode_require_against_a_server_without_ssl_is_one_line_naming_tls(
    plain_server: str, command: list[str], profile: str, tmp_path: Path
):
    parsed = sa.make_url(plain_server)
    variables = {
        "LICENSING_HOME": str(tmp_path),
        "LICENSING_DATABASE_URL": with_query(plain_server, sslmode="require"),
    }
    if profile == "postgres":
        variables["LICENSING_PROFILE"] = "postgres"
    args = [*command, "--data-dir", str(tmp_path)] if command == ["run"] else command
    result = licensing_pipeline(args, variables)
    where = f"{parsed.host}:{parsed.port or 5432} database {parsed.database}"
    assert_one_line(result, f"cannot reach PostgreSQL at {where} {TLS_REFUSED}")


def test_a_warehouse_that_requires_tls_fails_the_run_in_one_line(plain_server: str, tmp_path):
    """Only the warehouse URL asks for TLS: the message names its database."""
    parsed = sa.make_url(plain_server)
    variables = {
        "LICENSING_HOME": str(tmp_path),
        "LICENSING_WAREHOUSE_URL": with_query(plain_server, sslmode="require"),
    }
    result = licensing_pipeline(["run", "--data-dir", str(tmp_path)], variables)
    where = f"{parsed.host}:{parsed.port or 5432} database {parsed.database}"
    assert_one_line(result, f"cannot reach PostgreSQL at {where} {TLS_REFUSED}")


def test_an_unknown_sslmode_is_one_line_naming_the_parameter(
    plain_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    parsed = sa.make_url(plain_server)
    variables = {
        "LICENSING_HOME": str(tmp_path),
        "LICENSING_DATABASE_URL": with_query(plain_server, sslmode="requir"),
    }
    with backend_environment(variables):
        exit_code = cli.main(["findings"])
    out, err = capsys.readouterr()
    where = f"{parsed.host}:{parsed.port or 5432} database {parsed.database}"
    assert_one_line(
        subprocess.CompletedProcess([], exit_code, out, err),
        f'bad PostgreSQL connection parameter in the URL ({where}): invalid sslmode value: "requir"',
    )


@pytest.mark.parametrize(("mode", "connects"), [("disable", True), ("require", False)])
def test_dbt_connects_with_the_urls_sslmode(plain_server: str, mode: str, connects: bool):
    connection = dbt_connection(Warehouse(url=with_query(plain_server, sslmode=mode)))
    folders = ["--profiles-dir", str(PROJECT), "--project-dir", str(PROJECT)]
    done = subprocess.run(
        [dbt_executable(), "debug", "--connection", "--target", "postgres", *folders],
        env=process_environment({**connection, "DO_NOT_TRACK": "1"}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode == 0) is connects, done.stdout
    if not connects:
        assert "server does not support SSL, but SSL was required" in done.stdout
