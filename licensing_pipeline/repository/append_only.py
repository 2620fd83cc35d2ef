"""Tables that are only ever appended to: the database refuses to rewrite them.

For a history an auditor relies on (what a finding was at each run, what happened to a
ticket, the usage ledger), a bug or a hand-typed statement must not be able to change the
past. Two guards, both installed by a migration for each table:

- a trigger: on PostgreSQL one statement-level ``BEFORE UPDATE OR DELETE OR TRUNCATE``
  (so it fires even for a statement that matches no row, and for TRUNCATE, which row
  triggers never see); on SQLite ``BEFORE UPDATE`` and ``BEFORE DELETE`` row triggers
  (SQLite has no TRUNCATE; its ``DELETE`` without WHERE fires row triggers once triggers exist);
- on PostgreSQL, privileges: UPDATE, DELETE and TRUNCATE are revoked from PUBLIC, from every
  role that holds them and from the owner itself, so the application's login (in this project
  the owner) is refused before the trigger is reached.

Neither guard stops the owner from deliberately undoing them (``GRANT`` to itself, ``ALTER
TABLE ... DISABLE TRIGGER``) or a superuser: run the application as a login that owns nothing
to rule that out (docs/operations.md). A SQLite batch migration that copies the table drops
its triggers: install them again after one.

The functions return SQL for one table, so any migration (the repository's, the warehouse's
ledger) can install the same guards. Table names are quoted by the caller's dialect.
"""

from __future__ import annotations

import sqlalchemy as sa

# One function for every append-only table: its message names the table and the statement.
REFUSE_FUNCTION = "licensing_refuse_rewrite"
TRIGGER = "licensing_append_only"
REWRITES = ("UPDATE", "DELETE", "TRUNCATE")


def refusal(table: str, statement: str) -> str:
    """The message a refused statement carries (the same on both databases)."""
    return f"{table} is append-only: {statement} refused"


def postgres_function_sql() -> str:
    """The trigger function (idempotent): raises with the table's name and the statement."""
    return (
        f"CREATE OR REPLACE FUNCTION {REFUSE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        # no "%" placeholders: the driver would take them for its own
        "  RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only: ' || TG_OP\n"
        "    || ' refused', HINT = 'history is never rewritten; append a correcting row instead';\n"
        "END $$"
    )


def install_sql(table: str, dialect: sa.Dialect) -> list[str]:
    """The statements that make ``table`` refuse UPDATE, DELETE (and TRUNCATE)."""
    name = dialect.identifier_preparer.quote(table)
    if dialect.name == "postgresql":
        return [
            postgres_function_sql(),
            f"DROP TRIGGER IF EXISTS {TRIGGER} ON {name}",
            f"CREATE TRIGGER {TRIGGER} BEFORE UPDATE OR DELETE OR TRUNCATE ON {name} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {REFUSE_FUNCTION}()",
        ]
    if dialect.name == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS {_sqlite_trigger(table, statement)} "
            f"BEFORE {statement} ON {name} "
            f"BEGIN SELECT RAISE(ABORT, '{refusal(table, statement)}'); END"
            for statement in ("UPDATE", "DELETE")
        ]
    raise ValueError(f"append-only tables are not implemented on {dialect.name}")


def remove_sql(table: str, dialect: sa.Dialect) -> list[str]:
    """The statements that undo ``install_sql`` (for a migration's downgrade)."""
    name = dialect.identifier_preparer.quote(table)
    if dialect.name == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {TRIGGER} ON {name}"]
    return [
        f"DROP TRIGGER IF EXISTS {_sqlite_trigger(table, statement)}"
        for statement in ("UPDATE", "DELETE")
    ]


def _sqlite_trigger(table: str, statement: str) -> str:
    return f"{TRIGGER}_{table}_{statement.lower()}"


def install(con: sa.Connection, table: str) -> None:
    """Trigger, and on PostgreSQL the privileges: ``table`` refuses to be rewritten."""
    for statement in install_sql(table, con.dialect):
        con.exec_driver_sql(statement)
    if con.dialect.name == "postgresql":
        revoke_rewrites(con, table)


def revoke_rewrites(con: sa.Connection, table: str) -> list[str]:
    """Revoke UPDATE, DELETE and TRUNCATE on ``table`` from PUBLIC, every role holding one
    (column grants of UPDATE go with the table's) and the owner; the roles, PUBLIC first."""
    quote = con.dialect.identifier_preparer.quote
    holders: list[str] = list(
        con.execute(
            sa.text(
                "SELECT DISTINCT a.grantee::regrole::text FROM pg_class c, "
                "aclexplode(COALESCE(c.relacl, acldefault('r', c.relowner))) a "
                "WHERE c.oid = CAST(:table AS regclass) AND a.grantee <> 0 "
                "AND a.privilege_type = ANY(:rewrites) "
                "UNION SELECT c.relowner::regrole::text FROM pg_class c "
                "WHERE c.oid = CAST(:table AS regclass) ORDER BY 1"
            ),
            {"table": quote(table), "rewrites": list(REWRITES)},
        ).scalars()
    )
    rewrites = ", ".join(REWRITES)
    # regrole::text is already an identifier, quoted where it needs to be
    for grantee in ["PUBLIC", *holders]:
        con.exec_driver_sql(f"REVOKE {rewrites} ON {quote(table)} FROM {grantee}")
    return ["PUBLIC", *holders]


def restore_owner_rewrites(con: sa.Connection, table: str) -> None:
    """Give the owner back UPDATE, DELETE and TRUNCATE (a downgrade's undoing of ``install``)."""
    owner: str = con.execute(
        sa.text("SELECT relowner::regrole::text FROM pg_class WHERE oid = CAST(:t AS regclass)"),
        {"t": con.dialect.identifier_preparer.quote(table)},
    ).scalar_one()
    quote = con.dialect.identifier_preparer.quote
    con.exec_driver_sql(f"GRANT {', '.join(REWRITES)} ON {quote(table)} TO {owner}")


def drop_function_if_unused(con: sa.Connection) -> None:
    """Drop the trigger function once no table's trigger calls it (the ledger's may)."""
    used: int = con.execute(
        sa.text(
            "SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
            "WHERE p.proname = :name"
        ),
        {"name": REFUSE_FUNCTION},
    ).scalar_one()
    if not used:
        con.exec_driver_sql(f"DROP FUNCTION IF EXISTS {REFUSE_FUNCTION}()")
