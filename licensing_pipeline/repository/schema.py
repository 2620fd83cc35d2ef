"""Alembic migrations of the licensing repository: status, upgrade, and the check at start.

The environment lives in ``migrations/`` and is configured here, in code: there is no
alembic.ini, and the URL is always the repository's own. A process checks each database once;
only an empty one is upgraded without asking, anything behind is refused with the command
that fixes it, so a release never alters a production schema as a side effect of a run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError

from licensing_pipeline.repository.errors import SchemaNotCurrent
from licensing_pipeline.repository.tables import metadata

# Not "alembic_version": Dagster's own storage keeps one, possibly in the same database.
VERSION_TABLE = "licensing_alembic_version"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key: concurrent processes on a fresh database migrate one at a time.
_LOCK_KEY = 0x4C1C_E45E

State = Literal["current", "empty", "legacy", "behind", "unknown"]

# URLs this process found at head (the check costs a few queries).
_CHECKED: set[str] = set()


def full_metadata() -> sa.MetaData:
    """The shared ``metadata`` with every module's tables registered in it."""
    from licensing_pipeline.governance import tables as _governance  # noqa: F401
    from licensing_pipeline.policy import tables as _policy  # noqa: F401
    from licensing_pipeline.quality import tables as _quality  # noqa: F401
    from licensing_pipeline.remediation import tables as _remediation  # noqa: F401
    from licensing_pipeline.reports import tables as _reports  # noqa: F401

    return metadata


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Only the repository's tables: the database may also hold Dagster's and the warehouse's."""
    tables = full_metadata().tables
    if type_ == "table":
        return name in tables
    table = getattr(obj, "table", None)
    return table is None or table.name in tables


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the licensing repository has no migrations"
    return head


def display_url(url: sa.URL | str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class SchemaStatus:
    url: str
    current: str | None
    head: str
    state: State
    pending: tuple[str, ...] = ()  # revisions `db upgrade` would apply, oldest first

    def refusal(self) -> str:
        """One line for a database a run must not use as it is."""
        where = f"the licensing repository at {self.url}"
        if self.state == "legacy":
            return (
                f"{where} was created before schema migrations (no {VERSION_TABLE} table): "
                "run `licensing-pipeline db upgrade` to adopt it"
            )
        if self.state == "unknown":
            return (
                f"{where} is at schema revision {self.current}, which this release does not "
                f"know (its head is {self.head}): it was migrated by a newer licensing-pipeline"
            )
        if self.state == "empty":
            return f"{where} has no schema yet: run `licensing-pipeline db upgrade`"
        return (
            f"{where} is at schema revision {self.current}, behind {self.head} "
            f"({len(self.pending)} migration(s) pending): run `licensing-pipeline db upgrade`"
        )


def _status(con: sa.Connection) -> SchemaStatus:
    context = MigrationContext.configure(con, opts={"version_table": VERSION_TABLE})
    current = context.get_current_revision()
    script = ScriptDirectory.from_config(alembic_config())
    head = head_revision()
    url = display_url(con.engine.url)
    if current == head:
        return SchemaStatus(url, current, head, "current")
    if current is None:
        ours = set(sa.inspect(con).get_table_names()) & set(full_metadata().tables)
        state: State = "legacy" if ours else "empty"
        pending = tuple(reversed([s.revision for s in script.walk_revisions("base", head)]))
        return SchemaStatus(url, None, head, state, pending)
    try:
        pending = tuple(reversed([s.revision for s in script.iterate_revisions(head, current)]))
    except (CommandError, RevisionError):
        return SchemaStatus(url, current, head, "unknown")
    return SchemaStatus(url, current, head, "behind", pending)


def schema_status(engine: sa.Engine) -> SchemaStatus:
    with engine.connect() as con:
        return _status(con)


def _key(url: sa.URL) -> str:
    return url.render_as_string(hide_password=False)


def _in_memory(url: sa.URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


@contextlib.contextmanager
def _migration_connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction that holds the database against other migrating processes.

    PostgreSQL: an advisory lock. SQLite: ``BEGIN IMMEDIATE`` on a connection of its own, which
    also makes its DDL transactional (the driver would otherwise commit each statement).
    """
    url = engine.url
    if url.get_backend_name() == "sqlite" and not _in_memory(url):
        own = sa.create_engine(url, poolclass=sa.pool.NullPool)

        @sa.event.listens_for(own, "connect")
        def _manual_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(own, "begin")
        def _begin_immediate(connection: sa.Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        try:
            with own.begin() as con:
                yield con
        finally:
            own.dispose()
        return
    with engine.begin() as con:
        if con.dialect.name == "postgresql":
            con.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
        yield con


def upgrade(
    engine: sa.Engine, revision: str = "head", *, only_if_empty: bool = False
) -> tuple[SchemaStatus, SchemaStatus]:
    """Apply migrations up to ``revision``; returns the status before and after.

    A database created before migrations (``legacy``) is adopted by the first revision, which
    creates only what is missing. With ``only_if_empty`` nothing happens unless the database
    has none of the repository's tables (another process may have just migrated it).
    """
    with _migration_connection(engine) as con:
        before = _status(con)
        if before.state == "unknown":
            raise SchemaNotCurrent(before.refusal())
        if only_if_empty and before.state != "empty":
            return before, before
        command.upgrade(alembic_config(con), revision)
        after = _status(con)
    _CHECKED.discard(_key(engine.url))
    return before, after


def downgrade(engine: sa.Engine, revision: str) -> SchemaStatus:
    with _migration_connection(engine) as con:
        command.downgrade(alembic_config(con), revision)
        after = _status(con)
    _CHECKED.discard(_key(engine.url))
    return after


def ensure_current(engine: sa.Engine) -> None:
    """Refuse a schema behind head (``SchemaNotCurrent``); an empty database is upgraded."""
    key = _key(engine.url)
    if key in _CHECKED:
        return
    status = schema_status(engine)
    if status.state == "empty":
        _, status = upgrade(engine, only_if_empty=True)
    if status.state != "current":
        raise SchemaNotCurrent(status.refusal())
    if not _in_memory(engine.url):
        _CHECKED.add(key)
