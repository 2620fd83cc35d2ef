"""One nightly run at a time, on both profiles: a `run` started while another is in progress
stops in one line naming it (or, with --wait, waits for it), and a run the schedule launches
then fails before any step; the run in progress finishes as if alone."""

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from licensing_pipeline import cli
from licensing_pipeline_tests.backends import backend_variables, process_environment

AS_OF = "2026-11-20"

HOLD = """
import sys
from licensing_pipeline.run_lock import run_lock
from licensing_pipeline.settings import load_settings

with run_lock(load_settings()):
    print("held", flush=True)
    sys.stdin.read()  # until the test is done
"""


# What the daemon's run worker does with the schedule's request: the job's own executor.
LAUNCH = """
import json
from datetime import UTC, datetime

import dagster as dg

from licensing_pipeline.definitions import nightly_compliance_job
from licensing_pipeline.instance import ensure_dagster_home
from licensing_pipeline.jobs import nightly_compliance_schedule
from licensing_pipeline.settings import load_settings

ensure_dagster_home(load_settings())
tick = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 21, 2, tzinfo=UTC))
request = nightly_compliance_schedule(tick)
with dg.DagsterInstance.get() as instance:
    result = dg.execute_job(
        dg.reconstructable(nightly_compliance_job),
        instance=instance,
        run_config=request.run_config,
        tags=request.tags,
    )
    events = result.all_events
print(json.dumps({
    "success": result.success,
    "step_events": sum(e.is_step_event for e in events),
    "failures": [
        e.event_specific_data.error.message
        for e in events
        if e.event_type_value == "PIPELINE_FAILURE"
    ],
}))
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smallest demo dataset: these tests are about runs meeting, not about findings."""
    folder = tmp_path_factory.mktemp("exports") / "data"
    args = ["--tenants", "22", "--months", "3", "--events-per-tenant", "600"]
    assert cli.main(["demo", *args, "--as-of", AS_OF, "--out", str(folder)]) == 0
    return folder


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "licensing_pipeline.cli", *args]


def start_run(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command("run", "--as-of", AS_OF, *args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: its steps' processes stop with it
    )


def stop(run: subprocess.Popen[str]) -> tuple[str, str]:
    """Kill ``run`` and its process group; what it printed."""
    with contextlib.suppress(ProcessLookupError):  # it ended by itself: its output tells why
        os.killpg(run.pid, signal.SIGKILL)
    return run.communicate(timeout=60)


@contextmanager
def lock_held_elsewhere(env: dict[str, str]) -> Iterator[int]:
    """The run lock held by another process, as a run in progress holds it; its pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        yield holder.pid
    finally:
        holder.communicate(timeout=60)


def test_a_run_while_another_holds_the_lock_stops_in_one_line(
    tmp_path: Path, data_dir: Path, database_url: str | None
) -> None:
    env = process_environment(backend_variables(tmp_path, data_dir, database_url))
    with lock_held_elsewhere(env) as holder:
        second = subprocess.run(
            command("run", "--as-of", AS_OF), env=env, capture_output=True, text=True
        )
    assert second.returncode == cli.EXIT_USAGE
    assert len(second.stderr.splitlines()) == 1, second.stderr
    assert f"another nightly run is in progress (process {holder} on " in second.stderr
    assert "add --wait" in second.stderr
    assert not (tmp_path / "warehouse.duckdb").exists()  # the lock came before anything


@pytest.mark.e2e
def test_runs_started_during_a_run_stop_or_wait_and_the_first_wins(
    tmp_path: Path, data_dir: Path, database_url: str | None
) -> None:
    env = process_environment(backend_variables(tmp_path, data_dir, database_url))
    first = start_run(env)
    assert first.stdout is not None
    # printed once the run holds the lock: it holds it until it exits
    assert first.stdout.readline().startswith("Running nightly_compliance on ")
    second = start_run(env)
    waiting = start_run(env, "--wait")
    second_err = second.communicate(timeout=600)[1]
    first_err = first.communicate(timeout=900)[1]
    assert waiting.stdout is not None
    # The waiting run takes the lock once the first lets go: its night would be one more
    # whole night like the first's, so it is stopped as soon as it has started.
    started = waiting.stdout.readline()
    waited_err = stop(waiting)[1]

    assert first.returncode == 0, first_err[-3000:]
    assert second.returncode == cli.EXIT_USAGE, second_err[-3000:]
    assert len(second_err.splitlines()) == 1, second_err
    assert f"another nightly run is in progress (process {first.pid} on " in second_err
    assert started.startswith("Running nightly_compliance on "), waited_err[-3000:]
    assert f"Another nightly run is in progress (process {first.pid} on " in waited_err


def test_a_run_the_schedule_launches_during_a_run_fails_before_any_step(
    tmp_path: Path, data_dir: Path, database_url: str | None
) -> None:
    """The daemon runs the job with its own executor, in a process of its own (not the
    shell's `run`): the lock is taken there too, and the run in progress wins."""
    env = process_environment(backend_variables(tmp_path, data_dir, database_url))
    with lock_held_elsewhere(env) as holder:
        launched = subprocess.run(
            [sys.executable, "-c", LAUNCH], env=env, capture_output=True, text=True
        )
    assert launched.returncode == 0, launched.stderr[-3000:]
    run = json.loads(launched.stdout.splitlines()[-1])
    assert run["success"] is False
    assert run["step_events"] == 0
    [failure] = run["failures"]
    assert f"another nightly run is in progress (process {holder} on " in failure
