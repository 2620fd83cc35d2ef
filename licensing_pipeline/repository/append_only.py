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
TABLE ... DISABLE TRIGGER``), nor a superuser: they stop accidents and every other login
(docs/operations.md, "Append-only histories"). A SQLite batch migration that copies the
table drops its triggers: install them again after one.

``postgres_sql`` and ``sqlite_sql`` return plain SQL for one table (no bind placeholders, no
"%"), so any code can install the same guards through any driver: the repository's migrations
through SQLAlchemy (``install``), the warehouse's ledger through a psycopg2 cursor.
"""

from __future__ import annotations

import sqlalchemy as sa

# One function for every append-only table: its message names the table and the statement.
REFUSE_FUNCTION = "licensing_refuse_rewrite"
TRIGGER = "licensing_append_only"
REWRITES = ("UPDATE", "DELETE", "TRUNCATE")

FUNCTION_SQL = (
    f"CREATE OR REPLACE FUNCTION {REFUSE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "  RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only: ' || TG_OP\n"
    "    || ' refused', HINT = 'history is never rewritten; append a correcting row instead';\n"
    "END $$"
)


def refusal(table: str, statement: str) -> str:
    """The message a refused statement carries (the same on both databases)."""
    return f"{table} is append-only: {statement} refused"


def _privileges_sql(table: str, body: str) -> str:
    """A DO block that runs ``body`` with ``target`` (the table's regclass) and ``rewrites``."""
    literal = table.replace("'", "''")
    return (
        "DO $$\nDECLARE\n"
        f"  target regclass := '{literal}'::regclass;\n"
        f"  rewrites text := '{', '.join(REWRITES)}';\n"
        "  holder text;\n"
        f"BEGIN\n{body}\nEND $$"
    )


def postgres_sql(table: str) -> list[str]:
    """Make ``table`` (as written in SQL: quoted where needed, schema-qualified if it is not on
    the search path) refuse UPDATE, DELETE and TRUNCATE: the function, the statement-level
    trigger, and the revoke from PUBLIC, every role holding one of them and the owner."""
    revoke = (
        "  EXECUTE 'REVOKE ' || rewrites || ' ON ' || target::text || ' FROM PUBLIC';\n"
        "  FOR holder IN\n"
        "    SELECT a.grantee::regrole::text FROM pg_class c,\n"
        "      aclexplode(COALESCE(c.relacl, acldefault('r', c.relowner))) a\n"
        "    WHERE c.oid = target AND a.grantee <> 0\n"
        "      AND a.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')\n"
        "    UNION SELECT c.relowner::regrole::text FROM pg_class c WHERE c.oid = target\n"
        "  LOOP\n"
        "    EXECUTE 'REVOKE ' || rewrites || ' ON ' || target::text || ' FROM ' || holder;\n"
        "  END LOOP;"
    )
    return [
        FUNCTION_SQL,
        f"DROP TRIGGER IF EXISTS {TRIGGER} ON {table}",
        f"CREATE TRIGGER {TRIGGER} BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {REFUSE_FUNCTION}()",
        _privileges_sql(table, revoke),
    ]


def postgres_remove_sql(table: str) -> list[str]:
    """Undo ``postgres_sql`` for ``table``: no trigger, the owner's rewrites given back."""
    grant = (
        "  SELECT relowner::regrole::text INTO holder FROM pg_class WHERE oid = target;\n"
        "  EXECUTE 'GRANT ' || rewrites || ' ON ' || target::text || ' TO ' || holder;"
    )
    return [f"DROP TRIGGER IF EXISTS {TRIGGER} ON {table}", _privileges_sql(table, grant)]


def sqlite_sql(table: str) -> list[str]:
    """``BEFORE UPDATE`` and ``BEFORE DELETE`` triggers that abort with ``refusal``'s message."""
    return [
        f"CREATE TRIGGER IF NOT EXISTS {_sqlite_trigger(table, statement)} "
        f"BEFORE {statement} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{refusal(table, statement)}'); END"
        for statement in ("UPDATE", "DELETE")
    ]


def sqlite_remove_sql(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {_sqlite_trigger(table, statement)}"
        for statement in ("UPDATE", "DELETE")
    ]


def _sqlite_trigger(table: str, statement: str) -> str:
    return f"{TRIGGER}_{table}_{statement.lower()}"


def _statements(con: sa.Connection, table: str, *, remove: bool) -> list[str]:
    if con.dialect.name == "postgresql":
        name = con.dialect.identifier_preparer.quote(table)
        return postgres_remove_sql(name) if remove else postgres_sql(name)
    if con.dialect.name == "sqlite":
        return sqlite_remove_sql(table) if remove else sqlite_sql(table)
    raise ValueError(f"append-only tables are not implemented on {con.dialect.name}")


def install(con: sa.Connection, table: str) -> None:
    """Make the repository's ``table`` refuse to be rewritten (trigger; privileges too on
    PostgreSQL)."""
    for statement in _statements(con, table, remove=False):
        con.exec_driver_sql(statement)


def remove(con: sa.Connection, table: str) -> None:
    """Undo ``install`` (a downgrade)."""
    for statement in _statements(con, table, remove=True):
        con.exec_driver_sql(statement)


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
