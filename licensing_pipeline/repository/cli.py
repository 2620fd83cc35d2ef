"""`licensing-pipeline db upgrade|current|status|grant-reader|grant-tenant|revoke-tenant|revision`:
the repository schema and who may read which tenant's rows."""

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
    from licensing_pipeline.repository.engines import shared_engine
    from licensing_pipeline.repository.schema import display_url
    from licensing_pipeline.unreachable import unreachable_postgres

    engine = shared_engine(settings.database_url)
    try:
        yield engine
    except sa.exc.OperationalError as exc:
        unreachable = unreachable_postgres(exc, [settings.database_url])
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise CliError(unreachable or f"cannot use {display_url(engine.url)}: {reason}") from None


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
        f"Role {args.role}: SELECT on {', '.join(TENANT_TABLES)} (NOLOGIN, no BYPASSRLS); "
        "the owner switched to it reads the tenant in `licensing.tenant_id` only, any other "
        "member no rows."
    )
    return 0


def _check_known_tenant(settings: Settings, tenant: str) -> None:
    """A binding to a mistyped tenant would show its login nothing, silently."""
    from licensing_pipeline.cli import CliError
    from licensing_pipeline.warehouse.resources import SCHEMA, warehouse_for

    warehouse = warehouse_for(settings)
    if not warehouse.table_exists("tenants"):
        raise CliError(
            "the warehouse has no tenants yet to check the tenant against: "
            "run `licensing-pipeline run` first"
        )
    with warehouse.connect(read_only=True) as con:
        sql = f"SELECT 1 FROM {SCHEMA}.tenants WHERE tenant_id = ?"
        if con.execute(sql, [tenant]).fetchone() is None:
            raise CliError(
                f"no tenant {tenant!r} in the warehouse's tenants (tenants.csv): check the id"
            )


def cmd_grant_tenant(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.repository.schema import ensure_current
    from licensing_pipeline.repository.tenancy import grant_tenant, require_postgres

    with _engine(settings) as engine:
        require_postgres(engine)
        ensure_current(engine)
        _check_known_tenant(settings, args.tenant)
        added = grant_tenant(engine, args.tenant, args.role)
    state = "is now bound" if added else "was already bound"
    print(
        f"Role {args.role} {state} to tenant {args.tenant}: logged in as it, any SQL reads "
        "that tenant's rows of the tenant tables and nothing else."
    )
    return 0


def cmd_revoke_tenant(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.repository.schema import ensure_current
    from licensing_pipeline.repository.tenancy import revoke_tenant

    with _engine(settings) as engine:
        ensure_current(engine)
        tenant = revoke_tenant(engine, args.role)
    if tenant is None:
        print(f"Role {args.role} was bound to no tenant; nothing changed.")
    else:
        print(f"Role {args.role} is no longer bound to tenant {tenant} and reads no tenant table.")
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

    db = sub.add_parser(
        "db", help="the licensing repository's schema: migrations, reader and tenant roles"
    )
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

    tenant = commands.add_parser(
        "grant-tenant",
        help="bind a tenant's login role to its tenant: it reads that tenant's rows only",
    )
    tenant.add_argument("tenant", help="the tenant_id, as in tenants.csv")
    tenant.add_argument("role", help="an existing LOGIN role, exactly as named in PostgreSQL")
    tenant.set_defaults(func=cmd_grant_tenant)

    untenant = commands.add_parser(
        "revoke-tenant", help="unbind a tenant's login role and revoke its SELECT"
    )
    untenant.add_argument("role")
    untenant.set_defaults(func=cmd_revoke_tenant)

    revision = commands.add_parser(
        "revision", help="developers: autogenerate a migration from the table models"
    )
    revision.add_argument("-m", "--message", required=True)
    revision.set_defaults(func=cmd_revision)
