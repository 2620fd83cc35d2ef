"""What the warehouse package adds: the dbt models, the daily usage history and its runs,
and the warehouse every step reads and writes."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from licensing_pipeline.settings import Settings
from licensing_pipeline.warehouse.assets import warehouse_models
from licensing_pipeline.warehouse.history import (
    build_daily_usage_history,
    build_history_sensor,
    daily_partitions,
    daily_usage_history_job,
    history_backfill_policy,
)
from licensing_pipeline.warehouse.manifest import build_dbt_resource
from licensing_pipeline.warehouse.resources import WarehouseIOManager, warehouse_for


def defs(settings: Settings, nightly: UnresolvedAssetJobDefinition) -> dg.Definitions:
    """``nightly``: the job whose successful runs extend the history."""
    warehouse = warehouse_for(settings)
    return dg.Definitions(
        assets=[
            warehouse_models,
            build_daily_usage_history(
                daily_partitions(settings.history_start),
                history_backfill_policy(settings.profile),
            ),
        ],
        jobs=[daily_usage_history_job],
        sensors=[build_history_sensor(settings.history_start, nightly)],
        resources={
            "warehouse": warehouse,
            "io_manager": WarehouseIOManager(warehouse=warehouse),
            "dbt": build_dbt_resource(),
        },
    )
