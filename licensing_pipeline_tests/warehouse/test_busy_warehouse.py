"""The embedded warehouse admits one writing process: a command that meets a file another
process holds says so in one line instead of a traceback or a run of failed steps. That
readers (`statement`) never fail a run is tested on test_interrupted_run's uninterrupted
night."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster._utils.error import SerializableErrorInfo

from licensing_pipeline import cli
from licensing_pipeline.cli_progress import error_summary
from licensing_pipeline_tests.backends import backend_environment

HOLD = (
    "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
    "print('ready', flush=True); time.sleep(120)"
)


@pytest.fixture
def held_warehouse(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """LICENSING_HOME whose warehouse file another process has open for writing."""
    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield tmp_path, holder.pid
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(
    "command", [["run", "--as-of", "2026-10-02"], ["snapshots", "--to", "2026-10-02"]]
)
def test_a_held_warehouse_stops_the_command_in_one_line(
    held_warehouse: tuple[Path, int], command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    home, pid = held_warehouse
    (home / "data").mkdir()
    with backend_environment({"LICENSING_HOME": str(home)}):
        assert cli.main(command) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert f"the warehouse {home / 'warehouse.duckdb'} is in use by process {pid}" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_failed_step_is_summarised_by_its_innermost_cause() -> None:
    cause = SerializableErrorInfo("licensing.WarehouseBusy: the warehouse is in use\n", [], "X")
    wrapper = SerializableErrorInfo(
        "dagster.DagsterExecutionStepExecutionError: Error occurred while executing op\n",
        [],
        "DagsterExecutionStepExecutionError",
        cause=cause,
    )
    assert error_summary(wrapper) == "licensing.WarehouseBusy: the warehouse is in use"
    failure = SerializableErrorInfo("dagster.Failure: contracts.csv not found\n", [], "Failure")
    assert error_summary(failure) == "contracts.csv not found"
    assert error_summary(None) == "unknown error"
