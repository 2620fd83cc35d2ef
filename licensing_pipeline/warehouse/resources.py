"""The warehouse: one DuckDB file that holds every table of the graph.

Source assets write their tables here, dbt builds its models here, and the compliance
assets read dbt's aggregates back. DuckDB allows one writing process per file, so every
connection is short-lived and the jobs run their steps in one process.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

SCHEMA = "main"


class Warehouse(dg.ConfigurableResource):
    """The DuckDB warehouse file (``LICENSING_WAREHOUSE_PATH``)."""

    path: str

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(self.path, read_only=read_only)
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.close()

    def write_frame(self, table: str, frame: pd.DataFrame) -> None:
        with self.connect() as con:
            con.register("_frame", frame)
            con.execute(f'CREATE OR REPLACE TABLE {SCHEMA}."{table}" AS SELECT * FROM _frame')
            con.unregister("_frame")

    def read_frame(self, table_or_query: str) -> pd.DataFrame:
        """A table by name, or a SELECT; only for small (aggregated) tables."""
        sql = (
            table_or_query
            if table_or_query.lstrip().lower().startswith(("select", "with"))
            else f'SELECT * FROM {SCHEMA}."{table_or_query}"'
        )
        with self.connect() as con:
            return con.execute(sql).df()

    def table_exists(self, table: str) -> bool:
        with self.connect() as con:
            found = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [SCHEMA, table],
            ).fetchone()
        return bool(found and found[0])


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
