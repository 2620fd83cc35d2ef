"""Dagster's instance configuration: the files shipped at the top level and the copies the
package falls back to when installed without them (a wheel) must say the same thing; the
instance's first set-up survives commands starting at once."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from alembic.util.exc import CommandError
from dagster._core.storage.sqlite import LAST_KNOWN_STAMPED_SQLITE_ALEMBIC_REVISION

from licensing_pipeline.instance import (
    EMBEDDED_TEMPLATE,
    POSTGRES_TEMPLATE,
    InstanceError,
    ensure_dagster_home,
)
from licensing_pipeline.settings import PROJECT_DIR, load_settings
from licensing_pipeline_tests.backends import (
    backend_environment,
    backend_variables,
    process_environment,
)


@pytest.mark.parametrize(
    ("shipped", "fallback"),
    [("dagster.yaml", EMBEDDED_TEMPLATE), ("dagster.postgres.yaml", POSTGRES_TEMPLATE)],
)
def test_the_fallback_templates_match_the_shipped_files(shipped: str, fallback: str) -> None:
    config = yaml.safe_load((PROJECT_DIR / shipped).read_text())
    assert config == yaml.safe_load(fallback)
    assert config["telemetry"] == {"enabled": False}


def test_a_sqlite_instance_is_refused_on_the_postgres_profile(tmp_path: Path) -> None:
    home = {"LICENSING_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster")}
    with backend_environment(home):
        ensure_dagster_home(load_settings())  # embedded: writes the SQLite dagster.yaml
    config = yaml.safe_load((tmp_path / "dagster" / "dagster.yaml").read_text())
    assert "storage" not in config
    postgres = {
        **home,
        "LICENSING_PROFILE": "postgres",
        "LICENSING_DATABASE_URL": "postgresql://app@127.0.0.1:5432/none",
    }
    with backend_environment(postgres), pytest.raises(InstanceError, match="in SQLite"):
        ensure_dagster_home(load_settings())


FIRST_USE = """
import dagster as dg
from licensing_pipeline.instance import ensure_dagster_home
from licensing_pipeline.settings import load_settings

ensure_dagster_home(load_settings())
with dg.DagsterInstance.get() as instance:
    instance.get_runs(limit=1)
    instance.all_instigator_state()
"""
STORAGES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")
RACERS = 5  # processes starting on one fresh DAGSTER_HOME at once


def first_use(home: Path, database_url: str | None) -> subprocess.Popen[str]:
    variables = backend_variables(home, home / "data", database_url)
    return subprocess.Popen(
        [sys.executable, "-c", FIRST_USE],
        env=process_environment(variables),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def alembic_versions(storage: Path) -> list[str]:
    con = sqlite3.connect(storage)
    try:
        return [row[0] for row in con.execute("SELECT version_num FROM alembic_version")]
    finally:
        con.close()


def test_commands_starting_at_once_on_a_fresh_home_leave_a_working_instance(
    tmp_path: Path, database_url: str | None
) -> None:
    """Before the set-up lock, most such races left a storage every later command failed on
    (or failed one of the racers)."""
    racers = [first_use(tmp_path, database_url) for _ in range(RACERS)]
    outputs = [racer.communicate(timeout=600)[0] for racer in racers]
    assert [r.returncode for r in racers] == [0] * RACERS, "\n".join(outputs)[-3000:]
    later = first_use(tmp_path, database_url)
    output = later.communicate(timeout=600)[0]
    assert later.returncode == 0, output[-3000:]
    if database_url is None:
        for name in STORAGES:
            assert len(alembic_versions(tmp_path / "dagster" / name)) == 1, name


def break_storage(storage: Path, versions: list[str]) -> None:
    """What two processes creating the storage at once left: several stamped versions."""
    con = sqlite3.connect(storage)
    with con:
        con.execute("DELETE FROM alembic_version")
        con.executemany("INSERT INTO alembic_version VALUES (?)", [(v,) for v in versions])
    con.close()


def test_a_storage_stamped_twice_by_a_race_is_repaired(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with backend_environment({"LICENSING_HOME": str(tmp_path)}):
        ensure_dagster_home(load_settings())
        with dg.DagsterInstance.get():
            pass
        schedules = tmp_path / "dagster" / "schedules" / "schedules.db"
        [head] = alembic_versions(schedules)
        break_storage(schedules, [head, LAST_KNOWN_STAMPED_SQLITE_ALEMBIC_REVISION])
        with pytest.raises(CommandError, match="more than one head"):
            dg.DagsterInstance.get()  # what every command met from then on

        ensure_dagster_home(load_settings())
        with dg.DagsterInstance.get() as instance:
            assert instance.all_instigator_state() == []
    assert alembic_versions(schedules) == [head]
    assert f"Repaired {schedules}" in capsys.readouterr().err


def test_a_storage_stamped_with_unknown_versions_stops_in_one_line(tmp_path: Path) -> None:
    with backend_environment({"LICENSING_HOME": str(tmp_path)}):
        ensure_dagster_home(load_settings())
        with dg.DagsterInstance.get():
            pass
        runs = tmp_path / "dagster" / "history" / "runs.db"
        break_storage(runs, ["f495c27d5019", LAST_KNOWN_STAMPED_SQLITE_ALEMBIC_REVISION])
        with pytest.raises(InstanceError, match="schema versions at once") as stopped:
            ensure_dagster_home(load_settings())
    assert "\n" not in str(stopped.value)
    assert "aside" in str(stopped.value)
