"""The dbt models as Dagster assets (group ``warehouse``); dbt tests become asset checks.

One ``dbt build`` per run builds every model over the `warehouse` resource's DuckDB file and
runs the tests, with the run's as-of day in ``LICENSING_AS_OF`` (see macros/as_of.sql: a var
would change every day and force dbt to re-parse the whole project on each run).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from licensing_pipeline.file_modes import private_umask
from licensing_pipeline.run_config import RunSettings
from licensing_pipeline.warehouse.build_state import prepare_build, record_build
from licensing_pipeline.warehouse.history_days import LATE_FROM_TAG, late_days
from licensing_pipeline.warehouse.manifest import (
    DBT_TARGET,
    build_dbt_resource,
    dbt_environment,
    dbt_project,
    prepare_manifest,
)
from licensing_pipeline.warehouse.postgres import tls_parameters
from licensing_pipeline.warehouse.resources import Warehouse, WarehouseDbtResource

WAREHOUSE_GROUP = "warehouse"
# Models tagged so are day-partitioned assets of their own (warehouse/history.py), in their
# own group, outside the nightly job.
PARTITIONED_TAG = "daily_partitioned"
HISTORY_GROUP = "history"
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
PARSE_STATES_KEPT = 16
# Each dbt build leaves a target folder (logs, run_results.json) worth a look after a failed
# night; older ones only fill the disk.
RUN_FOLDERS_KEPT = 20

__all__ = [
    "DBT_TARGET",
    "HISTORY_GROUP",
    "PARTITIONED_TAG",
    "WAREHOUSE_GROUP",
    "WarehouseDbtTranslator",
    "build_dbt_resource",
    "dbt_build",
    "dbt_build_args",
    "dbt_project",
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
        if PARTITIONED_TAG in dbt_resource_props.get("tags", []):
            return HISTORY_GROUP
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


def dbt_build_args() -> list[str]:
    """The same arguments every night, so dbt's partial parse state stays valid."""
    return ["build"]


def partial_parse_cache(target: str, connection: Mapping[str, str]) -> Path:
    """Where dbt's parse state for one warehouse is kept between runs.

    dbt re-parses everything when the target or the profile's connection values (the
    DuckDB path among them) differ from the saved state's, so the state prepared with the
    manifest rarely fits: each warehouse keeps its own, under target/partial_parse/.
    """
    identity = [target, *(f"{k}={v}" for k, v in sorted(connection.items()) if "PASSWORD" not in k)]
    key = hashlib.sha256("\0".join(identity).encode()).hexdigest()[:16]
    return _target_dir() / "partial_parse" / f"{key}.msgpack"


def _target_dir() -> Path:
    return Path(dbt_project.project_dir) / dbt_project.target_path


def _run_target_path(context: dg.AssetExecutionContext) -> Path:
    """A fresh target folder per invocation, named as dagster-dbt names its own."""
    name = f"{context.op_execution_context.op.name}-{context.run.run_id[:7]}"
    return _target_dir() / f"{name}-{uuid.uuid4().hex[:7]}"


def _keep_parse_state(run_target: Path, cache: Path) -> None:
    """Save the run's parse state for the next run when dbt wrote a new one."""
    state = run_target / PARTIAL_PARSE_FILE
    if not state.exists():
        return
    if cache.exists() and cache.stat().st_mtime >= state.stat().st_mtime:
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    scratch = cache.with_name(f"{cache.name}.{uuid.uuid4().hex[:7]}")
    shutil.copy2(state, scratch)
    os.replace(scratch, cache)
    # One state per warehouse ever run (each test makes its own): keep the recent ones.
    saved = sorted(cache.parent.glob("*.msgpack"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in saved[PARSE_STATES_KEPT:]:
        stale.unlink(missing_ok=True)


# The manifest is built by `make` / the test session; parse here only when it is missing or
# older than a project file, so a fresh checkout still loads.
prepare_manifest()


@dbt_assets(
    manifest=dbt_project.manifest_path,
    dagster_dbt_translator=TRANSLATOR,
    project=dbt_project,
    name="warehouse_models",
    exclude=f"tag:{PARTITIONED_TAG}",
)
def warehouse_models(
    context,  # unannotated: Dagster rejects the string annotation `from __future__` makes
    dbt: DbtCliResource,
    warehouse: Warehouse,
    run_settings: RunSettings,
) -> Iterator[Any]:
    """Usage snapshots per tenant, metric, feature, region and day/month, as of the run's day."""
    as_of = run_settings.as_of_date()
    context.log.info(f"dbt build as of {as_of} on {warehouse.location}")
    through_batch, catalog = prepare_build(warehouse)
    yield from dbt_build(context, dbt, warehouse, LICENSING_AS_OF=as_of.isoformat())
    record_build(warehouse, through_batch, as_of, catalog)
    note_late_history_days(context, warehouse, as_of)


def note_late_history_days(
    context: dg.AssetExecutionContext, warehouse: Warehouse, as_of: date
) -> None:
    """Tag the run with the first kept history day its evaluation gained events for, so the
    history sensor rebuilds the history from there rather than adding the as-of day alone."""
    late = [day for day in late_days(warehouse) if day < as_of]
    if not late:
        return
    shown = ", ".join(map(str, late[:10])) + (
        f" and {len(late) - 10} more" if len(late) > 10 else ""
    )
    context.log.info(
        f"{len(late)} kept day(s) of the usage history gained events since they were kept "
        f"({shown}): the history sensor rebuilds it from {late[0]} after this run "
        "(from the shell: licensing-pipeline snapshots --late)"
    )
    context.instance.add_run_tags(context.run_id, {LATE_FROM_TAG: late[0].isoformat()})


def dbt_build(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse, **env: str
) -> Iterator[Any]:
    """``dbt build`` of the op's selection on the warehouse's target, with ``env`` set (the
    as-of day), a per-run target folder and the warehouse's partial parse state."""
    dbt_on_target = WarehouseDbtResource(
        project_dir=dbt.project_dir,
        global_config_flags=dbt.global_config_flags,
        profiles_dir=dbt.profiles_dir,
        profile=dbt.profile,
        target=dbt_target(warehouse),
        dbt_executable=dbt.dbt_executable,
        state_path=dbt.state_path,
    )
    connection = dbt_connection(warehouse)
    target_path = _run_target_path(context)
    cache = partial_parse_cache(dbt_target(warehouse), connection)
    if cache.exists():
        # dagster-dbt seeds the folder from target/ only when it holds no state yet.
        target_path.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cache, target_path / PARTIAL_PARSE_FILE)
    # dbt writes the DuckDB file too (and its write-ahead log): private, like ours.
    with private_umask(), dbt_environment(**connection, **env):
        invocation = dbt_on_target.cli(dbt_build_args(), context=context, target_path=target_path)
    try:
        yield from invocation.stream()
    finally:
        _keep_parse_state(target_path, cache)
        prune_run_folders(_target_dir(), context.op_execution_context.op.name)


def prune_run_folders(target_dir: Path, op_name: str, keep: int = RUN_FOLDERS_KEPT) -> list[Path]:
    """Remove all but the newest ``keep`` per-run dbt target folders; returns the removed."""
    runs = sorted(
        (p for p in target_dir.glob(f"{op_name}-*") if p.is_dir()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for stale in runs[keep:]:
        shutil.rmtree(stale, ignore_errors=True)
    return runs[keep:]


def dbt_target(warehouse: Warehouse) -> str:
    """The profiles.yml output for the warehouse this run writes to."""
    return "postgres" if warehouse.is_postgres else DBT_TARGET


def dbt_connection(warehouse: Warehouse) -> dict[str, str]:
    """The variables profiles.yml reads to reach the run's warehouse."""
    if not warehouse.is_postgres:
        warehouse_file = Path(warehouse.path).expanduser().resolve()
        warehouse_file.parent.mkdir(parents=True, exist_ok=True)
        spill = Path(warehouse.spill_dir or f"{warehouse_file}.tmp").expanduser().resolve()
        return {
            "LICENSING_WAREHOUSE_PATH": str(warehouse_file),
            "LICENSING_DUCKDB_MEMORY_LIMIT": warehouse.memory_limit,
            "LICENSING_DUCKDB_SPILL_DIR": str(spill),
        }
    url = sa.make_url(warehouse.url)
    tls = tls_parameters(url)
    return {
        "LICENSING_PG_HOST": url.host or "127.0.0.1",
        "LICENSING_PG_PORT": str(url.port or 5432),
        "LICENSING_PG_USER": url.username or "postgres",
        "LICENSING_PG_PASSWORD": url.password or "",
        "LICENSING_PG_DATABASE": url.database or "postgres",
        # "" when the URL has none: profiles.yml then falls back to libpq's PGSSL* variables
        "LICENSING_PG_SSLMODE": tls.get("sslmode", ""),
        "LICENSING_PG_SSLROOTCERT": tls.get("sslrootcert", ""),
        "LICENSING_PG_SSLCERT": tls.get("sslcert", ""),
        "LICENSING_PG_SSLKEY": tls.get("sslkey", ""),
    }
