"""One SQLAlchemy engine per process and repository URL.

A run, a sensor tick or a CLI command reaches the repository many times, and an engine (on
PostgreSQL, a new connection) for each use costs far more than the use. Engines are kept for
the process: a forked child (Celery's prefork pool, Dagster's subprocesses) leaves its parent's
connections alone and opens its own, as SQLAlchemy advises for multiprocessing, and every
engine is disposed at exit.

SQLite files get no pool (a connection is a file open; a pooled one would outlive a database file
replaced under it); PostgreSQL's pool checks a connection before lending it, so a server restarted
between two uses costs a reconnect, not an error.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path

import sqlalchemy as sa

from licensing_pipeline.file_modes import private_file

_ENGINES: dict[str, sa.Engine] = {}
_LOCK = threading.Lock()


def _key(url: sa.URL) -> str:
    return url.render_as_string(hide_password=False)


def _sqlite_file(url: sa.URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database)).expanduser()


def _create(url: sa.URL) -> sa.Engine:
    if _sqlite_file(url) is not None:
        return sa.create_engine(url, poolclass=sa.pool.NullPool)
    if url.get_backend_name() == "sqlite":
        return sa.create_engine(url)
    return sa.create_engine(url, pool_pre_ping=True)


def shared_engine(database_url: str) -> sa.Engine:
    """This process's engine on ``database_url``, schema unchecked. Callers do not dispose it."""
    url = sa.make_url(database_url)
    path = _sqlite_file(url)
    if path is not None:  # checked on every use: the file may have been removed since
        path.parent.mkdir(parents=True, exist_ok=True)
        private_file(path)  # every tenant's findings: the owner's only
    key = _key(url)
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = _create(url)
    return engine


def dispose_engine(database_url: str) -> None:
    """Close and forget this process's engine on ``database_url`` (before dropping the database)."""
    with _LOCK:
        engine = _ENGINES.pop(_key(sa.make_url(database_url)), None)
    if engine is not None:
        engine.dispose()


def _dispose_all() -> None:
    with _LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.dispose()


def _after_fork_in_child() -> None:
    """The parent's pooled connections are the parent's: drop them without closing them."""
    global _LOCK
    _LOCK = threading.Lock()
    for engine in _ENGINES.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_dispose_all)
