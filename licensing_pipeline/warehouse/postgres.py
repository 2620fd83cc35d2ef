"""The PostgreSQL warehouse: tables move in and out in bulk (COPY), typed by DuckDB.

Every frame crosses the boundary through DuckDB on both sides: written with DuckDB's
column types (mapped to PostgreSQL's) and read back into DuckDB before it becomes a pandas
frame. So a table read from PostgreSQL has exactly the dtypes the same table has when read
from the DuckDB warehouse, and the compliance logic sees no difference between backends.
"""

import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import psycopg2
import psycopg2.errors
import psycopg2.extensions
import sqlalchemy as sa

# DuckDB column type -> PostgreSQL column type; anything else travels as text.
_TO_POSTGRES = {
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "SMALLINT": "smallint",
    "TINYINT": "smallint",
    "HUGEINT": "numeric",
    "UBIGINT": "numeric",
    "UINTEGER": "bigint",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "DOUBLE": "double precision",
    "FLOAT": "real",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "VARCHAR": "text",
}
# PostgreSQL type OID -> DuckDB type, for reading back; anything else is read as VARCHAR.
_FROM_POSTGRES = {
    16: "BOOLEAN",
    20: "BIGINT",
    21: "SMALLINT",
    23: "INTEGER",
    700: "FLOAT",
    701: "DOUBLE",
    1700: "DOUBLE",  # numeric: sums and averages in dbt models
    1082: "DATE",
    1114: "TIMESTAMP",
    1184: "TIMESTAMPTZ",
}


# libpq's TLS keywords, honoured wherever a URL's query parameters reach PostgreSQL.
TLS_PARAMETERS = ("sslmode", "sslrootcert", "sslcert", "sslkey")


def query_parameters(url: sa.URL) -> dict[str, str]:
    """The URL's query parameters (the last of a repeated one), as libpq keywords."""
    return {k: v if isinstance(v, str) else v[-1] for k, v in url.query.items()}


def tls_parameters(url: sa.URL) -> dict[str, str]:
    """The TLS keywords the URL sets (``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``)."""
    return {k: v for k, v in query_parameters(url).items() if k in TLS_PARAMETERS}


def dsn(url: str) -> str:
    """A libpq ``key=value`` connection string from a SQLAlchemy-style URL.

    The URL's query parameters (``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``,
    ``connect_timeout``, ...) become libpq's keywords as they are: rendered back into a URI,
    SQLAlchemy would write a space in a certificate's path as "+", which libpq keeps.
    """
    parsed = sa.make_url(url)
    fields = parsed.translate_connect_args(username="user", database="dbname")
    fields = {k: str(v) for k, v in fields.items()}
    return psycopg2.extensions.make_dsn(**fields, **query_parameters(parsed))


def is_query(sql: str) -> bool:
    """A statement that returns rows (as the warehouse's SQL is written)."""
    return sql.lstrip().lower().startswith(("select", "with"))


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def postgres_type(duckdb_type: str) -> str:
    if duckdb_type.startswith("DECIMAL"):
        return duckdb_type.replace("DECIMAL", "numeric")
    return _TO_POSTGRES.get(duckdb_type, "text")


def copy_from_duckdb(
    pg: psycopg2.extensions.connection,
    duck: duckdb.DuckDBPyConnection,
    select_sql: str,
    schema: str,
    table: str,
) -> int:
    """Replace ``schema.table`` with the rows of a DuckDB query, in one transaction.

    Readers see the old table or the new one, never a half-written one: a load killed
    halfway leaves the previous table in place. Returns the rows copied.
    """
    columns = duck.execute(f"DESCRIBE {select_sql}").fetchall()
    casts = ", ".join(
        quote(name)
        if kind in _TO_POSTGRES or kind.startswith("DECIMAL")
        # lists, structs and other nested values travel as their JSON text
        else f"CAST(to_json({quote(name)}) AS VARCHAR) AS {quote(name)}"
        for name, kind, *_ in columns
    )
    definition = ", ".join(f"{quote(name)} {postgres_type(kind)}" for name, kind, *_ in columns)
    target = f"{quote(schema)}.{quote(table)}"
    with tempfile.TemporaryDirectory(prefix="licensing-copy-") as scratch:
        csv_path = Path(scratch) / f"{table}.csv"
        duck.execute(
            f"COPY (SELECT {casts} FROM ({select_sql}) AS _rows) TO '{csv_path}' "
            "(FORMAT csv, HEADER false)"
        )
        with pg.cursor() as cur, csv_path.open("rb") as rows:
            _ensure_schema(cur, schema)
            cur.execute(f"DROP TABLE IF EXISTS {target} CASCADE")
            cur.execute(f"CREATE TABLE {target} ({definition})")
            cur.copy_expert(f"COPY {target} FROM STDIN WITH (FORMAT csv)", rows)
            copied = cur.rowcount
            # Fresh tables have no statistics: without them the planner picks nested loops
            # over dbt's joins (minutes instead of seconds at 100k events).
            cur.execute(f"ANALYZE {target}")
        pg.commit()
    return int(copied)


def _ensure_schema(cur: psycopg2.extensions.cursor, schema: str) -> None:
    """Create the schema unless it exists. Steps on several workers write their first tables
    at the same moment, and two concurrent CREATE SCHEMA IF NOT EXISTS can still collide on
    the catalog's unique index: the loser finds the schema made and carries on."""
    cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
    if cur.fetchone():
        return
    cur.execute("SAVEPOINT licensing_schema")
    try:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
    except (psycopg2.errors.UniqueViolation, psycopg2.errors.DuplicateSchema):
        cur.execute("ROLLBACK TO SAVEPOINT licensing_schema")
    else:
        cur.execute("RELEASE SAVEPOINT licensing_schema")


def _describe(cur: psycopg2.extensions.cursor, sql: str) -> list[tuple[str, str]]:
    cur.execute(f"SELECT * FROM ({sql}) AS _q LIMIT 0")
    assert cur.description is not None
    return [(c.name, _FROM_POSTGRES.get(c.type_code, "VARCHAR")) for c in cur.description]


def read_into_duckdb(pg: psycopg2.extensions.connection, sql: str) -> pd.DataFrame:
    """A PostgreSQL query's rows as the frame DuckDB would give for the same table."""
    with pg.cursor() as cur:
        columns = _describe(cur, sql)
        with tempfile.TemporaryDirectory(prefix="licensing-copy-") as scratch:
            csv_path = Path(scratch) / "rows.csv"
            with csv_path.open("wb") as out:
                cur.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER false)", out)
            spec = (
                "{"
                + ", ".join(f"'{n.replace(chr(39), chr(39) * 2)}': '{t}'" for n, t in columns)
                + "}"
            )
            duck = duckdb.connect()
            try:
                duck.execute("SET TimeZone = 'UTC'")
                return duck.execute(
                    f"SELECT * FROM read_csv('{csv_path}', columns={spec}, header=false, "
                    "auto_detect=false, allow_quoted_nulls=false, quote='\"', escape='\"', "
                    "delim=',', nullstr='')"
                ).df()
            finally:
                duck.close()


_PLACEHOLDER = re.compile(r"\?")


class PostgresConnection:
    """The slice of DuckDB's connection API the warehouse-wide SQL uses (``execute`` with
    ``?`` placeholders, then ``df``/``fetchone``/``fetchall``), over psycopg2."""

    def __init__(self, pg: psycopg2.extensions.connection) -> None:
        self._pg = pg
        self._cursor = pg.cursor()
        self._sql: str | None = None
        self._pending = False

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> "PostgresConnection":
        """Run a statement now; a query (SELECT / WITH) runs once, when its rows are asked
        for: through the cursor for ``fetch*``, through COPY for ``df``."""
        statement = _PLACEHOLDER.sub("%s", sql.replace("%", "%%")) if parameters else sql
        self._sql = self._cursor.mogrify(statement, parameters or None).decode()
        self._pending = is_query(sql)
        if not self._pending:
            self._cursor.execute(self._sql)
        return self

    def _ran(self) -> psycopg2.extensions.cursor:
        if self._pending:
            assert self._sql is not None
            self._cursor.execute(self._sql)
            self._pending = False
        return self._cursor

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._ran().fetchone()
        return tuple(_plain(v) for v in row) if row is not None else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(_plain(v) for v in row) for row in self._ran().fetchall()]

    def df(self) -> pd.DataFrame:
        assert self._sql is not None and self._pending, "df() needs a query not yet fetched"
        self._pending = False
        return read_into_duckdb(self._pg, self._sql)

    def close(self) -> None:
        self._cursor.close()


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


@contextmanager
def connect(url: str) -> Iterator[psycopg2.extensions.connection]:
    pg = psycopg2.connect(dsn(url))
    try:
        with pg.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'")
        pg.commit()
        yield pg
        pg.commit()
    except BaseException:
        pg.rollback()
        raise
    finally:
        pg.close()


class PostgresIngestTarget:
    """Usage batches staged in DuckDB, written to PostgreSQL: the staged tables are copied
    (COPY, streamed from a file) into ``main._ingest_*``, then merged in one transaction."""

    def __init__(self, pg: psycopg2.extensions.connection) -> None:
        self._pg = pg
        with pg.cursor() as cur:
            _ensure_schema(cur, "main")
        pg.commit()
        self.con = PostgresConnection(pg)

    def staged(self, table: str) -> str:
        return f"main.{quote(table)}"

    def receive(self, staging: duckdb.DuckDBPyConnection, tables: Sequence[str]) -> None:
        for table in tables:
            copy_from_duckdb(self._pg, staging, f"SELECT * FROM {table}", "main", table)

    def commit(self) -> None:
        self._pg.commit()

    def rollback(self) -> None:
        self._pg.rollback()

    def discard(self, tables: Sequence[str]) -> None:
        self._pg.rollback()
        with self._pg.cursor() as cur:
            for table in tables:
                cur.execute(f"DROP TABLE IF EXISTS main.{quote(table)}")
        self._pg.commit()


def describe(url: str) -> str:
    """The URL without its password, for logs."""
    return sa.make_url(url).render_as_string(hide_password=True)
