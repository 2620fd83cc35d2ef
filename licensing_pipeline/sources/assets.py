"""Source assets (group ``sources``): one per input of the data contract, plus the quarantine.

Thin wrappers over ``contract.loaders`` and ``contract.usage``. Small inputs return frames,
which the IO manager stores as warehouse tables; ``usage_events`` is written by SQL straight
into the warehouse. Every source writes the rows it could not use to
``quarantine_<asset>``, and ``quarantined_records`` gathers them for review.
"""

# No ``from __future__ import annotations`` here: Dagster inspects the annotations of asset
# functions at definition time (context, resources, inputs) and rejects them as strings.

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from licensing_pipeline.contract import loaders
from licensing_pipeline.contract.catalog import Catalog, load_catalog
from licensing_pipeline.contract.errors import (
    HOW_TO_FIX_DATA_DIR,
    ContractError,
    MissingInputError,
    link_outside,
)
from licensing_pipeline.contract.schemas import (
    QUARANTINE_SOURCES,
    QUARANTINED_RECORDS,
    conform,
    empty_frame,
)
from licensing_pipeline.contract.usage import (
    LINK_OUTSIDE,
    QUARANTINE_TABLE,
    UsageLoadStats,
    load_usage_events,
)
from licensing_pipeline.metadata import markdown_table
from licensing_pipeline.run_config import RunSettings
from licensing_pipeline.warehouse.resources import SCHEMA, Warehouse

GROUP = "sources"
CATALOG_FILE = "catalog.yaml"
USAGE_DIR = "usage"
PREVIEW_ROWS = 15
RAW_PREVIEW_CHARS = 100


def quarantine_table(source: str) -> str:
    return f"quarantine_{source}"


# --- helpers ---------------------------------------------------------------------------


def _data_dir(run_settings: RunSettings) -> Path:
    path = run_settings.data_path()
    if not path.is_dir():
        raise dg.Failure(
            description=f"{path}: the exports folder does not exist. {HOW_TO_FIX_DATA_DIR}",
            metadata={"path": str(path)},
        )
    return path


def _failure(exc: ContractError) -> dg.Failure:
    """A Failure that tells the user where to look instead of a traceback."""
    where = {"file": exc.file, "line": exc.line, "field": exc.field}
    metadata: dict[str, Any] = {k: v for k, v in where.items() if v is not None}
    if isinstance(exc, MissingInputError):
        metadata["how_to_fix"] = HOW_TO_FIX_DATA_DIR
    return dg.Failure(description=str(exc), metadata=metadata)


def quarantine_preview(quarantined: pd.DataFrame) -> dg.MetadataValue:
    """Counts by field and reason, then the first rows: enough to start fixing an export."""
    if quarantined.empty:
        return dg.MetadataValue.md("_nothing quarantined_")
    counts = (
        quarantined.fillna({"field": ""})
        .groupby(["field", "reason"], dropna=False)
        .size()
        .rename("rows")
        .reset_index()
        .sort_values("rows", ascending=False)
    )
    first = quarantined.head(PREVIEW_ROWS)[["file", "line", "field", "reason", "raw"]].copy()
    first["file"] = first["file"].map(lambda f: Path(str(f)).name, na_action="ignore")
    first["raw"] = first["raw"].str.slice(0, RAW_PREVIEW_CHARS)
    text = (
        f"{markdown_table(counts).value}\n\nFirst {len(first)} of {len(quarantined)}:\n\n"
        f"{markdown_table(first).value}"
    )
    return dg.MetadataValue.md(text)


def _source_metadata(loaded: loaders.Loaded, file_name: str) -> dict[str, Any]:
    return {
        "dagster/row_count": dg.MetadataValue.int(len(loaded.frame)),
        "quarantined": dg.MetadataValue.int(len(loaded.quarantined)),
        "file": dg.MetadataValue.path(str(loaded.path))
        if loaded.path
        else dg.MetadataValue.text(f"{file_name} not present (optional): no rows"),
        "quarantine_reasons": quarantine_preview(loaded.quarantined),
    }


# --- catalog ---------------------------------------------------------------------------


@dg.asset(group_name=GROUP, kinds={"pandas"})
def catalog(context: dg.AssetExecutionContext, run_settings: RunSettings) -> pd.DataFrame:
    """The product catalog (``catalog.yaml``), one row per region, feature, metric, plan and
    add-on. A broken catalog stops the run: every check depends on it."""
    path = _data_dir(run_settings) / CATALOG_FILE
    try:
        if not path.is_file():
            raise MissingInputError(path, CATALOG_FILE)
        if link_outside(path, path.parent):
            raise ContractError(LINK_OUTSIDE, file=path)
        parsed = load_catalog(path)
    except ContractError as exc:
        raise _failure(exc) from None
    context.add_output_metadata(
        {
            "file": dg.MetadataValue.path(str(path)),
            "catalog_version": dg.MetadataValue.text(parsed.version),
            "regions": dg.MetadataValue.int(len(parsed.regions)),
            "features": dg.MetadataValue.int(len(parsed.features)),
            "metrics": dg.MetadataValue.int(len(parsed.metrics)),
            "plans": dg.MetadataValue.int(len(parsed.plans)),
            "addons": dg.MetadataValue.int(len(parsed.addons)),
        }
    )
    return parsed.to_frame()


# --- small inputs ----------------------------------------------------------------------


def _file_source(
    name: str, file_name: str, load: Callable[[Path], loaders.Loaded], description: str
) -> dg.AssetsDefinition:
    @dg.asset(name=name, group_name=GROUP, kinds={"pandas"}, description=description)
    def _source(
        context: dg.AssetExecutionContext, run_settings: RunSettings, warehouse: Warehouse
    ) -> pd.DataFrame:
        try:
            loaded = load(_data_dir(run_settings))
        except ContractError as exc:
            raise _failure(exc) from None
        warehouse.write_frame(quarantine_table(name), loaded.quarantined)
        if len(loaded.quarantined):
            context.log.warning(
                f"{len(loaded.quarantined)} row(s) of {file_name} quarantined; "
                f"see table {quarantine_table(name)}"
            )
        context.add_output_metadata(_source_metadata(loaded, file_name))
        return loaded.frame

    return _source


tenants = _file_source(
    "tenants",
    loaders.TENANTS_FILE,
    loaders.load_tenants,
    "Customer profiles (tenants.csv, required): who owns each tenant and where to alert.",
)
contracts = _file_source(
    "contracts",
    loaders.CONTRACTS_FILE,
    loaders.load_contracts,
    "Effective-dated contracts (contracts.csv, required): plan, add-ons, overrides, status.",
)
billing_records = _file_source(
    "billing_records",
    loaders.BILLING_RECORDS_FILE,
    loaders.load_billing_records,
    "What was invoiced per tenant, month and metric (billing_records.csv, optional).",
)
deployment_configs = _file_source(
    "deployment_configs",
    loaders.DEPLOYMENT_CONFIGS_FILE,
    loaders.load_deployment_configs,
    "What each running deployment enforces (deployment_configs.jsonl[.gz], optional).",
)
residency_configs = _file_source(
    "residency_configs",
    loaders.RESIDENCY_FILE,
    loaders.load_residency_configs,
    "Each tenant's allowed jurisdictions (residency.csv, optional; no row = unrestricted).",
)
policy_exceptions = _file_source(
    "policy_exceptions",
    loaders.EXCEPTIONS_FILE,
    loaders.load_policy_exceptions,
    "Approved, time-limited exceptions that waive matching findings (exceptions.csv, optional).",
)


# --- usage -----------------------------------------------------------------------------


@dg.asset(group_name=GROUP, kinds={"duckdb"})
def usage_events(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    warehouse: Warehouse,
    catalog: pd.DataFrame,
) -> dg.MaterializeResult:
    """CloudEvents usage telemetry (``usage/``: JSON Lines, gzipped or not, and Parquet),
    validated and de-duplicated on (source, id) by SQL, straight into the warehouse. Only the
    files the registry (``usage_files``) does not hold as they are get read."""
    usage_dir = _data_dir(run_settings) / USAGE_DIR
    earliest = run_settings.earliest_event_day()
    try:
        with warehouse.staging() as con, warehouse.ingest_target(con) as target:
            stats = load_usage_events(
                con,
                usage_dir,
                Catalog.from_frame(catalog),
                earliest=earliest,
                full_refresh=run_settings.full_refresh,
                target=target,
            )
            quarantined = target.con.execute(
                f"SELECT * FROM {QUARANTINE_TABLE} ORDER BY file, line LIMIT 10000"
            ).df()
    except ContractError as exc:
        raise _failure(exc) from None
    if stats.quarantined:
        context.log.warning(
            f"{stats.quarantined} usage line(s) quarantined; see table {QUARANTINE_TABLE}"
        )
    if not stats.files and not stats.files_unchanged:
        context.log.warning(f"{usage_dir} holds no *.jsonl, *.jsonl.gz or *.parquet files")
    if stats.refresh_reason:
        context.log.info(f"Every usage file read: {stats.refresh_reason}")
    for line in ingest_notes(stats):
        context.log.warning(line)
    metadata: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(stats.events_held),
        "dagster/table_name": dg.MetadataValue.text(f"warehouse.{SCHEMA}.usage_events"),
        "folder": dg.MetadataValue.path(str(usage_dir)),
        **{
            key: dg.MetadataValue.int(value)
            for key, value in stats.as_dict().items()
            if isinstance(value, int) and not isinstance(value, bool)
        },
        "files_changed": dg.MetadataValue.int(len(stats.files_changed)),
        "files_renamed": dg.MetadataValue.int(len(stats.files_renamed)),
        "files_missing": dg.MetadataValue.int(len(stats.files_missing)),
        "full_refresh": dg.MetadataValue.bool(stats.full_refresh),
        "full_refresh_reason": dg.MetadataValue.text(stats.refresh_reason or "none"),
        **{
            f"{stage}_seconds": dg.MetadataValue.float(seconds)
            for stage, seconds in stats.stage_seconds.items()
        },
        "first_event_time": dg.MetadataValue.text(stats.first_event_time or "none"),
        "last_event_time": dg.MetadataValue.text(stats.last_event_time or "none"),
        "quarantine_reasons": quarantine_preview(quarantined),
    }
    if stats.files_changed or stats.files_missing or stats.files_renamed:
        metadata["file_changes"] = dg.MetadataValue.md(
            "\n".join(f"- {n}" for n in ingest_notes(stats))
        )
    return dg.MaterializeResult(metadata=metadata)


def ingest_notes(stats: UsageLoadStats) -> list[str]:
    """One line per usage file the registry found changed, renamed or gone: delivered
    telemetry should not change, so each is worth a look."""
    return [
        *(
            f"{file}: the content changed since it was ingested; its earlier rows were "
            "replaced by the new content"
            for file in stats.files_changed
        ),
        *(
            f"{new}: same content as {old} (gone), taken as renamed"
            for old, new in stats.files_renamed
        ),
        *(
            f"{file}: ingested before, no longer found; its rows are kept "
            "(`licensing-pipeline run --full-refresh` drops them)"
            for file in stats.files_missing
        ),
    ]


# --- quarantine ------------------------------------------------------------------------


def _count_table(counts: Mapping[str, int], label: str) -> dg.MetadataValue:
    frame = pd.DataFrame({label: list(counts), "rows": list(counts.values())})
    return markdown_table(frame)


# The assets that read an input file; quarantined_records gathers what they set aside.
_INPUTS: list[dg.AssetsDefinition] = [
    catalog,
    tenants,
    contracts,
    usage_events,
    billing_records,
    deployment_configs,
    residency_configs,
    policy_exceptions,
]


@dg.asset(group_name=GROUP, kinds={"pandas"}, deps=_INPUTS)
def quarantined_records(context: dg.AssetExecutionContext, warehouse: Warehouse) -> pd.DataFrame:
    """Every input row a source could not use, with its file, line, field and reason: the
    list to send back to whoever owns the export."""
    columns = ", ".join(f'"{c}"' for c in QUARANTINED_RECORDS)
    present = warehouse.table_names()
    tables = [quarantine_table(s) for s in QUARANTINE_SOURCES if quarantine_table(s) in present]
    frame = (
        warehouse.read_frame(
            " UNION ALL ".join(f'SELECT {columns} FROM {SCHEMA}."{t}"' for t in tables)
            + " ORDER BY source, file, line"
        )
        if tables
        else empty_frame(QUARANTINED_RECORDS)
    )
    frame = conform(frame, QUARANTINED_RECORDS)
    missing = [s for s in QUARANTINE_SOURCES if quarantine_table(s) not in present]
    if missing:
        context.log.warning(f"no quarantine table yet for: {', '.join(missing)}")
    by_source = {s: int((frame["source"] == s).sum()) for s in QUARANTINE_SOURCES}
    by_reason = frame.groupby(["source", "reason"]).size().sort_values(ascending=False)
    context.add_output_metadata(
        {
            "total": dg.MetadataValue.int(len(frame)),
            **{f"quarantined_{s}": dg.MetadataValue.int(n) for s, n in by_source.items()},
            "by_source": _count_table(by_source, "source"),
            "by_reason": markdown_table(by_reason.rename("rows").reset_index()),
            "sources_not_loaded": dg.MetadataValue.text(", ".join(missing) or "none"),
        }
    )
    return frame


source_assets: list[dg.AssetsDefinition] = [*_INPUTS, quarantined_records]
