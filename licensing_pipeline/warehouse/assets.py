"""The dbt models as Dagster assets (group ``warehouse``); dbt tests become asset checks.

One ``dbt build`` per run builds every model over the `warehouse` resource's DuckDB file and
runs the tests, with the run's as-of day as the dbt var ``as_of``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from licensing_pipeline.run_settings import RunSettings
from licensing_pipeline.settings import Settings
from licensing_pipeline.warehouse.manifest import (
    DBT_TARGET,
    build_dbt_resource,
    dbt_environment,
    dbt_project,
    prepare_manifest,
)
from licensing_pipeline.warehouse.resources import Warehouse

WAREHOUSE_GROUP = "warehouse"

__all__ = [
    "DBT_TARGET",
    "WAREHOUSE_GROUP",
    "WarehouseDbtTranslator",
    "build_dbt_resource",
    "dbt_build_args",
    "dbt_project",
    "dbt_resource",
    "warehouse_models",
]


class WarehouseDbtTranslator(DagsterDbtTranslator):
    """Models are named like their table (no prefix) and sit in group ``warehouse``; dbt
    sources map onto the source assets of the same name (``usage_events``, ``catalog``), so
    the lineage runs sources -> warehouse without extra nodes."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            # meta.dagster.asset_key in sources.yml: ["usage_events"], ["catalog"]
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return None
        return WAREHOUSE_GROUP


TRANSLATOR = WarehouseDbtTranslator(
    settings=DagsterDbtTranslatorSettings(
        enable_asset_checks=True,
        # Source tests as checks would split the dbt step in two (one before usage_events for
        # the catalog's checks, one after), running dbt twice a night. The sources are
        # validated where they are loaded instead.
        enable_source_tests_as_checks=False,
    )
)


def dbt_resource(settings: Settings | None = None) -> DbtCliResource:
    """The ``dbt`` resource of the code location.

    The DuckDB file is not part of it: each run hands dbt the `warehouse` resource's path.
    ``settings`` is taken so the PostgreSQL warehouse can pick its target here later.
    """
    return build_dbt_resource()


def dbt_build_args(as_of: str) -> list[str]:
    return ["build", "--vars", json.dumps({"as_of": as_of})]


# The manifest is built by `make` / the test session; parse here only when it is missing or
# older than a project file, so a fresh checkout still loads.
prepare_manifest()


@dbt_assets(
    manifest=dbt_project.manifest_path,
    dagster_dbt_translator=TRANSLATOR,
    project=dbt_project,
    name="warehouse_models",
)
def warehouse_models(
    context,  # unannotated: Dagster rejects the string annotation `from __future__` makes
    dbt: DbtCliResource,
    warehouse: Warehouse,
    run_settings: RunSettings,
) -> Iterator[Any]:
    """Usage snapshots per tenant, metric, feature, region and day/month, as of the run's day."""
    as_of = run_settings.as_of_date().isoformat()
    warehouse_file = Path(warehouse.path).expanduser().resolve()
    warehouse_file.parent.mkdir(parents=True, exist_ok=True)
    warehouse_path = str(warehouse_file)
    context.log.info(f"dbt build as of {as_of} on {warehouse_path}")
    with dbt_environment(LICENSING_WAREHOUSE_PATH=warehouse_path):
        invocation = dbt.cli(dbt_build_args(as_of), context=context)
    yield from invocation.stream()
