"""One nightly run at a time, however it was started (the shell, the schedule, the UI).

Two runs at once rebuild the same tables and decide the same findings under each other's
feet. The first to take the lock runs; the second stops in one line naming the holder, or
(``licensing-pipeline run --wait``) waits for it. The lock lives where the runs' state lives:

- embedded: an ``flock`` on ``LICENSING_HOME/run.lock``, which also records who holds it;
- PostgreSQL repository: a session advisory lock in that database, so that machines sharing
  the repository exclude each other too (their LICENSING_HOME folders are their own).

The holder's death releases either (the kernel drops the flock, the server ends the session),
so a run killed with ``kill -9`` never leaves a stale lock.

The process that orchestrates a run holds the lock: the shell's ``run`` takes it before
anything else, and the nightly job's executor (``with_run_lock``) takes it before its first
step, which covers runs the daemon launches from the schedule or the UI. A process that
already holds it (the shell's run, then its own job) goes on.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

import dagster as dg
import sqlalchemy as sa

from licensing_pipeline.settings import Settings

LOCK_FILE = "run.lock"  # under LICENSING_HOME
# pg_advisory_lock(class, object): the project's class, and the nightly run in it
ADVISORY_KEYS = {"class": zlib.crc32(b"licensing-pipeline") & 0x7FFFFFFF, "object": 1}
APPLICATION = "licensing-pipeline run"  # application_name of the holding session
WAIT_POLL_SECONDS = 1.0


class RunLocked(Exception):
    """Another nightly run holds the lock; the message names it."""


def _holder(pid: object, host: object, started: datetime | None) -> str:
    since = f", started {started.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if started else ""
    return f"process {pid} on {host}{since}"


class _Lock(Protocol):
    key: str  # the same lock, for the process that holds it
    where: str

    def try_acquire(self) -> bool: ...

    def holder(self) -> str: ...

    def release(self) -> None: ...


class _FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.key = f"file:{path}"
        self.where = f"lock file {path}"
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held past this call)
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        file.seek(0)
        file.truncate()
        started = datetime.now(UTC).isoformat()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": started}, file)
        file.flush()
        self._file = file
        return True

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
            return _holder(info["pid"], info["host"], datetime.fromisoformat(info["started"]))
        except (OSError, ValueError, KeyError, TypeError):  # taken, not yet written
            return "a process that has just started"

    def release(self) -> None:
        if self._file is not None:
            self._file.truncate(0)  # no stale holder for the next one to read
            self._file.close()  # drops the flock
            self._file = None


class _AdvisoryLock:
    def __init__(self, url: str) -> None:
        self.url = url
        shown = sa.make_url(url).render_as_string(hide_password=True)
        self.key = f"postgresql:{shown}"
        self.where = f"advisory lock in {shown}"
        self._engine: sa.Engine | None = None
        self._con: sa.Connection | None = None

    def _connection(self) -> sa.Connection:
        if self._con is None:
            name = f"{APPLICATION} {os.getpid()}@{socket.gethostname()}"[:63]
            self._engine = sa.create_engine(
                self.url,
                poolclass=sa.pool.NullPool,
                isolation_level="AUTOCOMMIT",  # no transaction left idle for the run's length
                connect_args={"application_name": name},
            )
            self._con = self._engine.connect()
        return self._con

    def try_acquire(self) -> bool:
        sql = sa.text("SELECT pg_try_advisory_lock(:class, :object)")
        return bool(self._connection().execute(sql, ADVISORY_KEYS).scalar())

    def holder(self) -> str:
        row = (
            self._connection()
            .execute(
                sa.text(
                    "SELECT a.pid, a.application_name, a.backend_start FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
                    "AND l.classid = :class AND l.objid = :object "
                    "AND l.database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())"
                ),
                ADVISORY_KEYS,
            )
            .first()
        )
        if row is None:  # released since
            return "a run that has just ended"
        ours = re.fullmatch(rf"{APPLICATION} (\d+)@(.+)", row.application_name or "")
        if ours is None:
            return f"PostgreSQL session {row.pid}"
        return _holder(ours.group(1), ours.group(2), row.backend_start)

    def release(self) -> None:
        if self._con is not None:
            self._con.close()  # the session ends, and its advisory locks with it
            self._con = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _lock_for(settings: Settings) -> _Lock:
    if sa.make_url(settings.database_url).get_backend_name() == "postgresql":
        return _AdvisoryLock(settings.database_url)
    return _FileLock(settings.home / LOCK_FILE)


_HELD: set[str] = set()  # keys of the locks this process holds


@contextmanager
def run_lock(
    settings: Settings, *, wait: bool = False, waiting: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the nightly run lock for the block: at once, or (``wait``) as soon as its holder
    lets go, after telling ``waiting`` who that is. Raises ``RunLocked`` if held and not
    ``wait``."""
    lock = _lock_for(settings)
    if lock.key in _HELD:
        yield
        return
    told = False
    try:
        while not lock.try_acquire():
            holder = lock.holder()
            if not wait:
                raise RunLocked(f"another nightly run is in progress ({holder}; {lock.where})")
            if waiting is not None and not told:
                waiting(holder)
                told = True
            time.sleep(WAIT_POLL_SECONDS)
        _HELD.add(lock.key)
        yield
    finally:
        _HELD.discard(lock.key)
        lock.release()


class _LockedExecutor(dg.Executor):
    """``inner`` under the run lock, after ``before_steps`` (given the run's config); anything
    else is ``inner``'s (the Celery execution loop asks the run's executor for its app
    settings)."""

    def __init__(
        self,
        inner: dg.Executor,
        settings: Settings,
        before_steps: Callable[[Mapping[str, Any]], None] | None,
    ) -> None:
        self._inner = inner
        self._settings = settings
        self._before_steps = before_steps

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[Any]:
        with run_lock(self._settings):
            if self._before_steps is not None:
                self._before_steps(plan_context.dagster_run.run_config)
            yield from self._inner.execute(plan_context, execution_plan)

    @property
    def retries(self) -> Any:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self._inner.step_dependency_config


def with_run_lock(
    executor_def: dg.ExecutorDefinition,
    settings: Settings,
    before_steps: Callable[[Mapping[str, Any]], None] | None = None,
) -> dg.ExecutorDefinition:
    """``executor_def`` whose runs hold the run lock from before their first step to after
    their last, in the process that orchestrates them (the daemon's run worker, or the
    shell's run). A run started while another holds it fails before any step, naming it;
    so does one that ``before_steps`` (called with the run's config) raises on."""
    creation = executor_def.executor_creation_fn
    if creation is None:
        raise ValueError(f"executor {executor_def.name} has no creation function")

    def create(init_context: dg.InitExecutorContext) -> dg.Executor:
        return _LockedExecutor(creation(init_context), settings, before_steps)

    return dg.ExecutorDefinition(
        name=executor_def.name,
        # already converted: taken as is, with a configured executor's config mapping
        config_schema=executor_def.config_schema,  # type: ignore[arg-type]
        requirements=executor_def.get_requirements,
        executor_creation_fn=create,
        description=executor_def.description,
    )
