"""A PostgreSQL server that does not answer: every command says so in one line, exit 2.

Against a port on 127.0.0.1 nothing listens on: the real command in a process of its own
(what a user sees, logging included), and every command through ``cli.main``.
"""

import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from licensing_pipeline import cli
from licensing_pipeline_tests.backends import backend_environment, process_environment
from licensing_pipeline_tests.postgres import SERVER_URL, fresh_database, server_available

PASSWORD = "s3cret-never-shown"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def licensing_pipeline(args: list[str], variables: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "licensing_pipeline.cli", *args],
        env=process_environment(variables),
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line(result: subprocess.CompletedProcess, expected: str) -> None:
    assert (result.returncode, result.stderr) == (2, f"licensing-pipeline: {expected}\n")
    assert result.stdout == ""
    assert PASSWORD not in result.stdout + result.stderr


# Commands that open the repository; on the postgres profile also the warehouse and Dagster.
REPOSITORY_COMMANDS = [
    ["findings"],
    ["run", "--data-dir", "."],
    ["tickets", "list"],
    ["quality"],
    ["policy", "exceptions", "list"],
    ["db", "status"],
    ["db", "upgrade"],
    ["db", "revoke-tenant", "acme_portal"],
]
POSTGRES_PROFILE_COMMANDS = [
    *REPOSITORY_COMMANDS,
    ["db", "grant-tenant", "acme", "acme_portal"],
    ["statement", "acme"],
    ["snapshots"],
]


def environment(home: Path, port: int, *, profile: str) -> dict[str, str]:
    variables = {
        "LICENSING_HOME": str(home),
        "LICENSING_DATABASE_URL": f"postgresql://app:{PASSWORD}@127.0.0.1:{port}/licensing",
    }
    if profile == "postgres":
        variables["LICENSING_PROFILE"] = "postgres"
    return variables


def refused(port: int) -> str:
    return f"cannot reach PostgreSQL at 127.0.0.1:{port} database licensing: connection refused"


@pytest.mark.parametrize("profile", ["postgres", "embedded"])
@pytest.mark.parametrize("command", ["run", "findings"])
def test_run_and_findings_in_a_process_of_their_own(command: str, profile: str, tmp_path: Path):
    port = closed_port()
    args = [command, "--data-dir", str(tmp_path)] if command == "run" else [command]
    result = licensing_pipeline(args, environment(tmp_path, port, profile=profile))
    assert_one_line(result, refused(port))


@pytest.mark.parametrize("profile", ["postgres", "embedded"])
def test_every_command_that_opens_postgresql(
    profile: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    port = closed_port()
    commands = REPOSITORY_COMMANDS if profile == "embedded" else POSTGRES_PROFILE_COMMANDS
    with backend_environment(environment(tmp_path, port, profile=profile)):
        for args in commands:
            exit_code = cli.main(args)
            out, err = capsys.readouterr()
            assert_one_line(subprocess.CompletedProcess(args, exit_code, out, err), refused(port))


def test_dagster_storage_alone_unreachable(tmp_path: Path):
    """Named by its own URL, in one line: not after dagster-postgres's retries and warnings."""
    port = closed_port()
    with fresh_database() as url:
        variables = {
            "LICENSING_HOME": str(tmp_path),
            "LICENSING_PROFILE": "postgres",
            "LICENSING_DATABASE_URL": url,
            "LICENSING_DAGSTER_STORAGE_URL": (
                f"postgresql://dagster:{PASSWORD}@127.0.0.1:{port}/dagster_runs"
            ),
        }
        result = licensing_pipeline(["run", "--data-dir", str(tmp_path)], variables)
    assert_one_line(
        result,
        f"cannot reach PostgreSQL at 127.0.0.1:{port} database dagster_runs: connection refused",
    )


def test_a_server_that_refuses_the_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    if not server_available():
        pytest.skip(f"no PostgreSQL server at {SERVER_URL}")
    missing = f"licensing_missing_{uuid.uuid4().hex[:10]}"
    url = sa.make_url(SERVER_URL).set(database=missing)
    variables = {
        "LICENSING_HOME": str(tmp_path),
        "LICENSING_DATABASE_URL": url.render_as_string(hide_password=False),
    }
    with backend_environment(variables):
        exit_code = cli.main(["findings"])
    out, err = capsys.readouterr()
    assert_one_line(
        subprocess.CompletedProcess([], exit_code, out, err),
        f"cannot reach PostgreSQL at {url.host}:{url.port or 5432} database {missing}: "
        f'database "{missing}" does not exist',
    )
