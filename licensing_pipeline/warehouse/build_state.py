"""How far the incremental nightly models are built: through which usage batch, as of which
day, with which catalog meters.

Written only after a nightly ``dbt build`` succeeded, so a failed build leaves the previous
state and the next night rebuilds everything that changed since (macros/build_days.sql).
Without a state the models are rebuilt whole: a full refresh of the usage drops it
(``usage_registry.reset``), and so does a change of the catalog's meters, which changes the
quantities of every day.
"""

import hashlib
from datetime import date
from typing import TYPE_CHECKING

from licensing_pipeline.contract.usage_registry import BUILD_STATE_TABLE, REGISTRY_TABLE

if TYPE_CHECKING:
    from licensing_pipeline.warehouse.resources import Warehouse

CATALOG_TABLE = "main.catalog"
_METERS = "SELECT name, event_type, aggregation, value_property FROM {} WHERE kind = 'metric'"


def _name(table: str) -> str:
    return table.split(".")[1]


def prepare_build(warehouse: "Warehouse") -> tuple[int, str]:
    """Before the build: the newest usage batch held and the catalog's meters (fingerprint);
    a state built with other meters is dropped, so the build rebuilds every day."""
    tables = warehouse.table_names()
    with warehouse.connect() as con:
        batch = (
            con.execute(f"SELECT max(batch_id) FROM {REGISTRY_TABLE}").fetchone()
            if _name(REGISTRY_TABLE) in tables
            else None
        )
        meters = (
            sorted(map(repr, con.execute(_METERS.format(CATALOG_TABLE)).fetchall()))
            if _name(CATALOG_TABLE) in tables
            else []
        )
        catalog = hashlib.sha256("\n".join(meters).encode()).hexdigest()[:16]
        if _name(BUILD_STATE_TABLE) in tables:
            row = con.execute(f"SELECT catalog FROM {BUILD_STATE_TABLE}").fetchone()
            if row is None or row[0] != catalog:
                con.execute(f"DROP TABLE {BUILD_STATE_TABLE}")
    return (int(batch[0]) if batch and batch[0] is not None else 0), catalog


def record_build(warehouse: "Warehouse", through_batch: int, as_of: date, catalog: str) -> None:
    with warehouse.connect() as con:
        con.execute(f"DROP TABLE IF EXISTS {BUILD_STATE_TABLE}")
        con.execute(
            f"CREATE TABLE {BUILD_STATE_TABLE} "
            "(through_batch BIGINT, evaluated_through DATE, catalog VARCHAR)"
        )
        con.execute(
            f"INSERT INTO {BUILD_STATE_TABLE} VALUES (?, ?, ?)",
            [through_batch, as_of.isoformat(), catalog],
        )
