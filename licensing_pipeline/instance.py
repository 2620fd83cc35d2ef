"""Dagster's own storage: SQLite files under DAGSTER_HOME, or PostgreSQL.

`licensing-pipeline run` and `licensing-pipeline dev` both go through here, so runs started
from the shell and from the UI land in the same instance whichever profile is chosen.
"""

import fcntl
import os
import socket
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from licensing_pipeline.settings import DAGSTER_SCHEMA, PROJECT_DIR, Settings

if TYPE_CHECKING:
    import dagster as dg

STORAGE_URL_VARIABLE = "LICENSING_DAGSTER_STORAGE_URL"

EMBEDDED_TEMPLATE = "telemetry:\n  enabled: false\n\nrun_queue:\n  max_concurrent_runs: 1\n"
POSTGRES_TEMPLATE = (
    EMBEDDED_TEMPLATE
    + f"\nstorage:\n  postgres:\n    postgres_url:\n      env: {STORAGE_URL_VARIABLE}\n"
)


# Dagster's SQLite storages (the embedded profile), relative to DAGSTER_HOME.
SQLITE_STORAGES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")
SETUP_LOCK = ".licensing-setup.lock"
STORAGE_READY = ".licensing-storage-ready"  # which PostgreSQL storage was set up from here


class InstanceError(Exception):
    """DAGSTER_HOME does not match the chosen profile, or its storage is damaged; the
    message says how to fix it."""


def _template(on_postgres: bool) -> str:
    name = "dagster.postgres.yaml" if on_postgres else "dagster.yaml"
    shipped = PROJECT_DIR / name
    if shipped.exists():
        return shipped.read_text()
    return POSTGRES_TEMPLATE if on_postgres else EMBEDDED_TEMPLATE


def _prepare_storage(storage_url: str) -> None:
    """Dagster creates its tables but not the schema its search_path names. Connecting here
    also makes a server that does not answer one error now, not a minute of Dagster's retries."""
    url = sa.make_url(storage_url)
    options = str(url.query.get("options", ""))
    engine = sa.create_engine(url.difference_update_query(["options"]))
    try:
        with engine.begin() as con:
            if f"search_path={DAGSTER_SCHEMA}" in options:
                con.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{DAGSTER_SCHEMA}"'))
    finally:
        engine.dispose()


@contextmanager
def _setup_lock(home: Path) -> Iterator[None]:
    """One process at a time sets DAGSTER_HOME up: Dagster creating its storage from two
    processes at once can stamp two schema versions on it. The kernel drops the lock when
    the process ends, however it ends."""
    with open(home / SETUP_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_dagster_home(settings: Settings) -> Path:
    """Create DAGSTER_HOME with the profile's dagster.yaml and Dagster's storage on first use,
    and export what Dagster reads (DAGSTER_HOME, the storage URL) to this process and its
    children."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    on_postgres = bool(settings.dagster_storage_url)
    with _setup_lock(home):
        if not config.exists():
            config.write_text(_template(on_postgres))
        elif on_postgres and "postgres" not in config.read_text():
            raise InstanceError(
                f"{config} keeps Dagster's storage in SQLite, but the postgres profile puts it "
                "in PostgreSQL: unset DAGSTER_HOME (the default is "
                "LICENSING_HOME/dagster-postgres) or copy dagster.postgres.yaml there"
            )
        os.environ["DAGSTER_HOME"] = str(home)
        if settings.dagster_storage_url:
            os.environ[STORAGE_URL_VARIABLE] = settings.dagster_storage_url
            _prepare_storage(settings.dagster_storage_url)
        else:
            for name in SQLITE_STORAGES:
                repair_alembic_versions(home, name)
        if not _storage_ready(home, settings.dagster_storage_url):
            import dagster as dg  # not at import: the CLI's other commands start faster

            with dg.DagsterInstance.get():  # creates every storage the instance uses
                pass
            if settings.dagster_storage_url:
                (home / STORAGE_READY).write_text(_fingerprint(settings.dagster_storage_url))
    return home


def _fingerprint(storage_url: str) -> str:
    """The storage's URL without its password."""
    return sa.make_url(storage_url).render_as_string(hide_password=True)


def _storage_ready(home: Path, storage_url: str | None) -> bool:
    if storage_url:
        marker = home / STORAGE_READY
        return marker.exists() and marker.read_text() == _fingerprint(storage_url)
    return all((home / name).exists() for name in SQLITE_STORAGES)


def _alembic_head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from dagster._core.storage.sql import ALEMBIC_SCRIPTS_LOCATION

    config = Config()
    config.set_main_option("script_location", ALEMBIC_SCRIPTS_LOCATION)
    return str(ScriptDirectory.from_config(config).get_current_head())


def repair_alembic_versions(home: Path, name: str) -> None:
    """A SQLite storage that records several schema versions (two processes created it at
    once, before the set-up lock) fails every later command with Alembic's "more than one
    head". When one of them is Dagster's current version, the tables are at that version
    (created whole by the first process): keep it alone. Otherwise stop in one line."""
    storage = home / name
    if not storage.exists():
        return
    con = sqlite3.connect(storage)
    try:
        try:
            versions = [row[0] for row in con.execute("SELECT version_num FROM alembic_version")]
        except sqlite3.OperationalError:  # not stamped (yet): nothing to repair
            return
        if len(versions) <= 1:
            return
        head = _alembic_head()
        if head not in versions:
            raise InstanceError(
                f"{storage} records {len(versions)} schema versions at once "
                f"({', '.join(versions)}), none of them Dagster's current one ({head}): "
                f"move DAGSTER_HOME ({home}) aside (its run history goes with it) and run again"
            )
        with con:
            con.execute("DELETE FROM alembic_version")
            con.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (head,))
    finally:
        con.close()
    print(
        f"Repaired {storage}: it recorded {len(versions)} schema versions at once "
        f"(two first runs at the same time); kept Dagster's current one, {head}.",
        file=sys.stderr,
    )


HOST_TAG = "licensing/host"
PID_TAG = "licensing/pid"


def process_tags() -> dict[str, str]:
    """Tags a run started by this process carries, so a later start can tell it was abandoned."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_abandoned_runs(instance: "dg.DagsterInstance", job_name: str) -> list[str]:
    """Mark as failed the runs of ``job_name`` still STARTED whose process on this host is
    gone (killed, or the machine went down): otherwise they show as running forever."""
    import dagster as dg  # not at import: the CLI's other commands start faster without it

    host = socket.gethostname()
    abandoned = []
    for run in instance.get_runs(
        dg.RunsFilter(job_name=job_name, statuses=[dg.DagsterRunStatus.STARTED])
    ):
        pid = run.tags.get(PID_TAG, "")
        if run.tags.get(HOST_TAG) != host or not pid.isdigit() or _alive(int(pid)):
            continue
        instance.report_run_failed(
            run, f"process {pid} on {host} ended without finishing the run (killed?)"
        )
        abandoned.append(run.run_id)
    return abandoned
