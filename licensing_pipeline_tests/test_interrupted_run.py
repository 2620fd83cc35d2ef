"""A run killed during the warehouse step, then run again, ends where an uninterrupted run
ends: the same findings, no event or finding twice. Statements read in a loop during the
uninterrupted run never fail it."""

import io
import os
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from licensing_pipeline import cli
from licensing_pipeline.instance import ensure_dagster_home
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.settings import load_settings
from licensing_pipeline.warehouse.resources import warehouse_for
from licensing_pipeline_tests.backends import (
    backend_environment,
    backend_variables,
    process_environment,
)

AS_OF = "2026-11-20"
pytestmark = pytest.mark.e2e
COMPARED = ["finding_id", "check", "subject", "period", "observed", "allowed", "status"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("exports") / "data"
    args = ["demo", "--tenants", "22", "--months", "3", "--as-of", AS_OF, "--out", str(folder)]
    assert cli.main(args) == 0
    return folder


def environment(home: Path, data_dir: Path, database_url: str | None) -> dict[str, str]:
    return process_environment(backend_variables(home, data_dir, database_url))


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "licensing_pipeline.cli", *args]


def dbt_is_running(group: int) -> bool:
    """A `dbt build` in the run's process group: the warehouse step is under way."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if os.getpgid(int(entry.name)) != group:
                continue
        except (OSError, ProcessLookupError):
            continue
        if any(a.endswith(b"dbt") for a in argv) and b"build" in argv:
            return True
    return False


def kill_during_warehouse_step(env: dict[str, str]) -> None:
    run = subprocess.Popen(
        command("run", "--as-of", AS_OF),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: dbt dies with it
    )
    deadline = time.monotonic() + 120
    try:
        while not dbt_is_running(run.pid):
            assert run.poll() is None, "the run ended before its warehouse step"
            assert time.monotonic() < deadline, "the warehouse step never started"
            time.sleep(0.05)
        time.sleep(1.0)  # well inside dbt: models half built
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert run.returncode == -signal.SIGKILL


def state(env: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The findings, and per (source, id) how many times usage_events holds the event."""
    with backend_environment(env):
        settings = load_settings()
        findings = LicensingRepository(database_url=settings.database_url).load_findings()
        events = warehouse_for(settings).read_frame(
            "SELECT source, id, count(*) AS copies FROM main.usage_events GROUP BY source, id"
        )
    return findings, events


def run_statuses(env: dict[str, str]) -> list[str]:
    with backend_environment(env):
        ensure_dagster_home(load_settings())
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs(dg.RunsFilter(job_name="nightly_compliance"))
    return sorted(run.status.value for run in runs)


@dataclass(frozen=True)
class ReadNight:
    """The uninterrupted run, with a customer's statement read again and again meanwhile."""

    findings: pd.DataFrame
    events: pd.DataFrame
    reads: list[int]
    readers_err: str


@pytest.fixture(scope="module")
def uninterrupted(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ReadNight:
    """Each read opens the warehouse for a moment while the run rebuilds it, and the run waits
    that moment out (the readers share this night: a night of their own would cost as much)."""
    home = tmp_path_factory.mktemp("uninterrupted")
    env = environment(home, data_dir, None)
    run = subprocess.Popen(
        command("run", "--as-of", AS_OF),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    statement = ["statement", "t-0001", "--format", "json", "--out", str(home / "s.json")]
    reads = []
    readers_err = io.StringIO()
    with (
        backend_environment({**backend_variables(home, data_dir, None), "LICENSING_AS_OF": AS_OF}),
        redirect_stdout(io.StringIO()),
        redirect_stderr(readers_err),
    ):
        while run.poll() is None:
            reads.append(cli.main(statement))
            time.sleep(0.05)
    err = run.communicate()[1]
    assert run.returncode == 0, err[-3000:]
    return ReadNight(*state(env), reads, readers_err.getvalue())


def test_statements_read_in_a_loop_during_a_run_never_fail_it(uninterrupted: ReadNight) -> None:
    assert 0 in uninterrupted.reads  # statements were read while the run went on
    # Readers may be told to come back (the tables are not built yet, or a long step holds
    # the file): in one line, never with a traceback.
    assert "Traceback" not in uninterrupted.readers_err
    assert set(uninterrupted.reads) <= {0, cli.EXIT_USAGE}


def test_a_killed_run_rerun_gives_the_uninterrupted_findings(
    data_dir: Path,
    tmp_path: Path,
    database_url: str | None,
    uninterrupted: ReadNight,
) -> None:
    reference, reference_events = uninterrupted.findings, uninterrupted.events

    env = environment(tmp_path / "killed", data_dir, database_url)
    kill_during_warehouse_step(env)
    rerun = subprocess.run(
        command("run", "--as-of", AS_OF), env=env, capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    findings, events = state(env)

    assert len(reference) > 0
    assert not findings["finding_id"].duplicated().any()
    pd.testing.assert_frame_equal(
        findings[COMPARED].sort_values("finding_id").reset_index(drop=True),
        reference[COMPARED].sort_values("finding_id").reset_index(drop=True),
    )
    assert (events["copies"] == 1).all()
    assert len(events) == len(reference_events)
    # The killed run does not stay "started" in the UI: the rerun marked it failed.
    assert run_statuses(env) == ["FAILURE", "SUCCESS"]
    assert "abandoned by a killed process" in rerun.stderr
