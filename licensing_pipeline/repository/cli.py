"""`licensing-pipeline db upgrade|current|status|grant-reader|revision`: the repository schema."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from licensing_pipeline.settings import Settings

if TYPE_CHECKING:
    import sqlalchemy as sa

    from licensing_pipeline.repository.schema import SchemaStatus

EXIT_BEHIND = 1

Command = Callable[[argparse.Namespace, Settings], int]


@contextmanager
def _engine(settings: Settings) -> Iterator[sa.Engine]:
    """The configured repository, schema unchecked; a server that does not answer is one line."""
    import sqlalchemy as sa

    from licensing_pipeline.cli import CliError
    from licensing_pipeline.repository.resources import raw_engine
    from licensing_pipeline.repository.schema import display_url

    engine = raw_engine(settings.database_url)
    try:
        yield engine
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise CliError(f"cannot use {display_url(engine.url)}: {reason}") from None
    finally:
        engine.dispose()


def _describe(status: SchemaStatus) -> str:
    from licensing_pipeline.repository.schema import VERSION_TABLE

    lines = [
        f"database: {status.url}",
        f"current:  {status.current or f'none (no {VERSION_TABLE} row)'}",
        f"head:     {status.head}",
    ]
    if status.state == "current":
        lines.append("state:    at head")
    elif status.state == "unknown":
        lines.append("state:    " + status.refusal())
    else:
        what = {
            "empty": "empty; runs upgrade it on first use",
            "legacy": "created before migrations; `db upgrade` adopts it",
            "behind": "behind; runs refuse it until `db upgrade`",
        }[status.state]
        lines.append(f"state:    {what}")
        lines.append(f"pending:  {', '.join(status.pending)}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.repository.schema import schema_status

    with _engine(settings) as engine:
        status = schema_status(engine)
    print(_describe(status))
    return 0 if status.state == "current" else EXIT_BEHIND


def cmd_current(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.repository.schema import schema_status

    with _engine(settings) as engine:
        status = schema_status(engine)
    suffix = " (head)" if status.state == "current" else f" (head is {status.head})"
    print(f"{status.current or 'none'}{suffix}")
    return 0


def cmd_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.repository.schema import upgrade

    with _engine(settings) as engine:
        before, after = upgrade(engine, args.revision)
    if before.current == after.current:
        print(f"{after.url} is already at {after.current or 'base'}; nothing to do.")
        return 0
    adopted = " (adopted a database created before migrations)" if before.state == "legacy" else ""
    print(
        f"Upgraded {after.url} from {before.current or 'an empty schema'} to "
        f"{after.current}{' (head)' if after.state == 'current' else ''}{adopted}."
    )
    return 0


def cmd_grant_reader(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.repository.schema import ensure_current
    from licensing_pipeline.repository.tenancy import TENANT_TABLES, grant_reader

    with _engine(settings) as engine:
        ensure_current(engine)
        grant_reader(engine, args.role)
    print(
        f"Role {args.role}: SELECT on {', '.join(TENANT_TABLES)}, rows of the tenant in "
        "`licensing.tenant_id` only (NOLOGIN, no BYPASSRLS)."
    )
    return 0


def cmd_revision(args: argparse.Namespace, settings: Settings) -> int:
    from alembic import command

    from licensing_pipeline.repository.schema import alembic_config, ensure_current

    with _engine(settings) as engine:
        ensure_current(engine)
        with engine.begin() as con:
            command.revision(alembic_config(con), message=args.message, autogenerate=True)
    print("Review the new revision (and add row-level security if it holds tenant data).")
    return 0


def add_db_commands(sub: Any) -> None:
    """Add ``db`` to the ``licensing-pipeline`` parser."""
    from licensing_pipeline.repository.tenancy import READER_ROLE

    db = sub.add_parser("db", help="the licensing repository's schema: migrations, reader role")
    commands = db.add_subparsers(dest="db_command", required=True)

    up = commands.add_parser("upgrade", help="apply pending migrations (adopts a pre-migration db)")
    up.add_argument("--revision", default="head", help="target revision (default: head)")
    up.set_defaults(func=cmd_upgrade)

    current = commands.add_parser("current", help="print the database's schema revision")
    current.set_defaults(func=cmd_current)

    status = commands.add_parser(
        "status", help=f"current revision against head (exit {EXIT_BEHIND} when not at head)"
    )
    status.set_defaults(func=cmd_status)

    grant = commands.add_parser(
        "grant-reader", help="create/grant the role for per-tenant reads (PostgreSQL)"
    )
    grant.add_argument("--role", default=READER_ROLE, help=f"role name (default: {READER_ROLE})")
    grant.set_defaults(func=cmd_grant_reader)

    revision = commands.add_parser(
        "revision", help="developers: autogenerate a migration from the table models"
    )
    revision.add_argument("-m", "--message", required=True)
    revision.set_defaults(func=cmd_revision)
