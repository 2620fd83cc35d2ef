"""The warehouse: where every table of the graph lives between steps.

Embedded, it is one DuckDB file; in the PostgreSQL profile, a schema of that database.
Source assets write their tables here, dbt builds its models here, and the compliance
assets read dbt's aggregates back. DuckDB allows one writing process per file, so every
connection is short-lived and the embedded jobs run their steps in one process. Readers
(``licensing-pipeline statement``) open the file read-only for a moment; an open that meets
another process's lock waits for it (``BUSY_WAIT_SECONDS``), so a reader never fails a run,
and a reader waits out a run's step boundaries.
"""

import importlib.metadata
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
from dagster_dbt import DbtCliResource
from packaging import version

from licensing_pipeline import environment as env
from licensing_pipeline.contract.usage_registry import DuckDBTarget, IngestTarget
from licensing_pipeline.file_modes import private_file, private_umask
from licensing_pipeline.settings import Settings
from licensing_pipeline.warehouse import postgres
from licensing_pipeline.warehouse.errors import WarehouseBusy

SCHEMA = "main"
BUSY_WAIT_SECONDS = 10.0  # how long an open waits for another process to let the file go


def _busy(path: Path, error: duckdb.IOException) -> WarehouseBusy:
    holder = re.search(r"\(PID (\d+)\)", str(error))
    by = f"process {holder.group(1)}" if holder else "another process"
    return WarehouseBusy(
        f"the warehouse {path} is in use by {by} (a run in progress?); "
        "wait for it to finish, then try again"
    )


def _open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting up to ``BUSY_WAIT_SECONDS`` while another process holds it."""
    deadline = time.monotonic() + BUSY_WAIT_SECONDS
    pause = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                raise _busy(path, exc) from None
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


class Warehouse(dg.ConfigurableResource):
    """The DuckDB warehouse file (``LICENSING_WAREHOUSE_PATH``), or a PostgreSQL database
    (``url``, from ``LICENSING_WAREHOUSE_URL`` or the postgres profile). Every DuckDB
    connection (the file, the staging of the PostgreSQL loads, dbt's) holds at most
    ``memory_limit`` and spills the rest to ``spill_dir``, so a run's memory does not grow
    with the history it holds.

    LICENSING_DUCKDB_MEMORY_LIMIT  DuckDB's memory for each connection, e.g. 512MB, 4GB
    LICENSING_DUCKDB_SPILL_DIR     where DuckDB spills beyond it (LICENSING_HOME/duckdb_spill)
    """

    path: str = ""
    url: str = ""
    # beyond it, large sorts, joins and temp tables spill to disk instead of growing the process
    memory_limit: str = "1GB"
    spill_dir: str = ""  # empty: DuckDB's own default (next to the file, or none in memory)

    def _configure(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET memory_limit = '{self.memory_limit}'")
        if self.spill_dir:
            spill = Path(self.spill_dir).expanduser()
            spill.mkdir(parents=True, exist_ok=True)
            # connections to one file in a process share its database, and DuckDB refuses a
            # new spill folder once a query has spilled: set it only when it differs
            row = con.execute("SELECT current_setting('temp_directory')").fetchone()
            if not row or row[0] != str(spill):
                con.execute("SET temp_directory = ?", [str(spill)])

    @property
    def is_postgres(self) -> bool:
        return bool(self.url)

    @property
    def location(self) -> str:
        """Where the tables are, for logs and metadata (no password)."""
        if self.is_postgres:
            return postgres.describe(self.url)
        return str(Path(self.path).expanduser())

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[Any]:
        """A connection for SQL written for both backends (``?`` placeholders)."""
        if self.is_postgres:
            with postgres.connect(self.url) as pg:
                con = postgres.PostgresConnection(pg)
                try:
                    yield con
                finally:
                    con.close()
            return
        with self._duckdb(read_only=read_only) as duck:
            yield duck

    @contextmanager
    def _duckdb(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the file, which (like its write-ahead log) only its owner reads."""
        path = Path(self.path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        with private_umask():
            con = _open(path, read_only)
            try:
                private_file(path)
                self._configure(con)
                yield con
            finally:
                con.close()

    @contextmanager
    def staging(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection that loaders write ``main.<table>`` into; ``publish`` then
        makes those tables the warehouse's. Embedded, this is the warehouse file itself."""
        if not self.is_postgres:
            with self._duckdb() as duck:
                yield duck
            return
        with tempfile.TemporaryDirectory(prefix="licensing-staging-") as scratch:
            duck = duckdb.connect(str(Path(scratch) / "staging.duckdb"))
            try:
                self._configure(duck)
                yield duck
            finally:
                duck.close()

    @contextmanager
    def ingest_target(self, staging: duckdb.DuckDBPyConnection) -> Iterator[IngestTarget]:
        """Where usage batches staged in ``staging`` are written: the warehouse file itself, or
        the PostgreSQL database."""
        if not self.is_postgres:
            yield DuckDBTarget(staging)
            return
        with postgres.connect(self.url) as pg:
            target = postgres.PostgresIngestTarget(pg)
            try:
                yield target
            finally:
                target.con.close()

    def publish(self, staging: duckdb.DuckDBPyConnection, tables: Sequence[str]) -> None:
        """Bulk-copy staged tables into the warehouse (a no-op when staging is the warehouse)."""
        if not self.is_postgres:
            return
        with postgres.connect(self.url) as pg:
            for table in tables:
                postgres.copy_from_duckdb(
                    pg, staging, f"SELECT * FROM {SCHEMA}.{table}", SCHEMA, table
                )

    def write_frame(self, table: str, frame: pd.DataFrame) -> None:
        if self.is_postgres:
            duck = duckdb.connect()
            try:
                duck.register("_frame", frame)
                with postgres.connect(self.url) as pg:
                    postgres.copy_from_duckdb(pg, duck, "SELECT * FROM _frame", SCHEMA, table)
            finally:
                duck.close()
            return
        with self._duckdb() as con:
            con.register("_frame", frame)
            con.execute(f'CREATE OR REPLACE TABLE {SCHEMA}."{table}" AS SELECT * FROM _frame')
            con.unregister("_frame")

    def read_frame(self, table_or_query: str) -> pd.DataFrame:
        """A table by name, or a SELECT; only for small (aggregated) tables."""
        sql = (
            table_or_query
            if postgres.is_query(table_or_query)
            else f'SELECT * FROM {SCHEMA}."{table_or_query}"'
        )
        with self.connect() as con:
            return con.execute(sql).df()

    def table_names(self, read_only: bool = False) -> set[str]:
        if read_only and not self.is_postgres and not Path(self.path).expanduser().exists():
            return set()  # nothing written yet (and DuckDB opens no new file read-only)
        with self.connect(read_only=read_only) as con:
            rows = con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                [SCHEMA],
            ).fetchall()
        return {str(row[0]) for row in rows}

    def table_exists(self, table: str) -> bool:
        return table in self.table_names()


def warehouse_for(settings: Settings) -> Warehouse:
    """The warehouse the environment chooses (settings.py): PostgreSQL or the DuckDB file,
    and DuckDB's memory bounds (read here, where every command builds its warehouse)."""
    spill_dir = env.path("LICENSING_DUCKDB_SPILL_DIR") or settings.home / "duckdb_spill"
    return Warehouse(
        path=str(settings.warehouse_path),
        url=settings.warehouse_url or "",
        spill_dir=str(spill_dir),
        **env.given(memory_limit=env.memory("LICENSING_DUCKDB_MEMORY_LIMIT")),
    )


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Stores DataFrame outputs as warehouse tables named after the asset, and loads them back.

    Assets that write their table themselves (``usage_events``, dbt models) return nothing;
    downstream assets still load them by name through this manager.
    """

    warehouse: dg.ResourceDependency[Warehouse]

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        table = context.asset_key.path[-1]
        self.warehouse.write_frame(table, obj)
        context.add_output_metadata(
            {
                "dagster/row_count": dg.MetadataValue.int(len(obj)),
                "dagster/table_name": f"warehouse.{SCHEMA}.{table}",
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        table = context.asset_key.path[-1]
        return self.warehouse.read_frame(table)


class WarehouseDbtResource(DbtCliResource):
    """dagster-dbt's dbt CLI resource without two start-up costs this project never uses.

    Every run, the stock resource asks ``dbt --version`` in a subprocess (~2 s) and opens a
    dbt adapter inside the Dagster process (~1.4 s), only for column metadata and row counts
    that nothing here fetches. The version comes from the installed package instead, and no
    adapter is opened; dbt itself still runs as a subprocess with its own adapter.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        return None
