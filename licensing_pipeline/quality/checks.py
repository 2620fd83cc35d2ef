"""The data-quality suites as Dagster asset checks, one step per stage of the graph.

- ``sources_data_quality``: the catalog and the small sources (tenants, contracts, billing,
  deployments, residency, exceptions), against the catalog;
- ``usage_data_quality``: usage_events (from DuckDB aggregates), before dbt reads the events;
- ``derived_data_quality``: quarantined_records and effective_entitlements, before the check
  families read the entitlements;
- ``findings_data_quality``: compliance_findings.

A failed blocking check (severity ERROR) stops every asset downstream of its asset in the
same run, so compliance_findings is not rewritten from bad data. Every check writes its
outcome to data_quality_report and its page to the Data Docs.
"""

# No ``from __future__ import annotations``: Dagster inspects the annotations of check
# functions (context, resources, inputs) at definition time and rejects them as strings.

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandas as pd

from licensing_pipeline.contract.schemas import QUARANTINED_RECORDS, empty_frame
from licensing_pipeline.quality import batches as qb
from licensing_pipeline.quality.report import record_outcomes
from licensing_pipeline.quality.resources import DataQualityResource
from licensing_pipeline.quality.suites import CheckSpec, checks_of
from licensing_pipeline.quality.validation import CheckOutcome, ExpectationOutcome
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.run_config import RunSettings
from licensing_pipeline.warehouse.resources import SCHEMA, Warehouse

Builders = Mapping[str, Callable[[], qb.Batch]]
SMALL_SOURCES = (
    "tenants",
    "contracts",
    "billing_records",
    "deployment_configs",
    "residency_configs",
    "policy_exceptions",
)
SAMPLE_CELL_CHARS = 60


# --- results ---------------------------------------------------------------------------------


def _cell(value: Any, limit: int = SAMPLE_CELL_CHARS) -> str:
    text = (
        ""
        if value is None or (not isinstance(value, list | dict) and pd.isna(value))
        else str(value)
    )
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(
    header: Sequence[str], rows: Iterable[Sequence[Any]], limit: int = SAMPLE_CELL_CHARS
) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v, limit) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _expectations_table(outcome: CheckOutcome) -> dg.MetadataValue:
    rows = [
        (
            e.spec.describe(),
            e.spec.batch,
            "ok" if e.success else "FAILED",
            e.observed,
            "" if e.unexpected_count is None else e.unexpected_count,
        )
        for e in outcome.expectations
    ]
    header = ("expectation", "batch", "result", "observed", "unexpected")
    return dg.MetadataValue.md(_table(header, rows, limit=200))


def _samples(failed: Sequence[ExpectationOutcome]) -> dg.MetadataValue:
    parts = []
    for e in failed:
        title = f"**{e.spec.describe()}** on `{e.spec.batch}`: {e.message}"
        if e.sample.empty:
            parts.append(title)
            continue
        sample = e.sample.astype(object)
        parts.append(title + "\n\n" + _table(list(sample.columns), sample.itertuples(index=False)))
    return dg.MetadataValue.md("\n\n".join(parts) if parts else "_none_")


def _facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in facts.items()}


def check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    """The GX outcome of one check as Dagster shows it: which expectation failed, on which
    rows, and where the Data Docs page is."""
    spec = outcome.spec
    metadata: dict[str, Any] = {
        "outcome": dg.MetadataValue.text(outcome.outcome),
        "blocking": dg.MetadataValue.bool(spec.blocking),
        "expectations": _expectations_table(outcome),
        "failed_expectations": dg.MetadataValue.int(len(outcome.failed)),
        "unexpected_count": dg.MetadataValue.int(outcome.unexpected_count),
        "unexpected_rows": _samples(outcome.failed),
        "facts": dg.MetadataValue.json(_facts(outcome.facts)),
        "seconds": dg.MetadataValue.float(round(outcome.seconds, 3)),
    }
    page = next(iter(outcome.data_docs.values()), None)
    if page:
        metadata["data_docs"] = dg.MetadataValue.url(page)
    if outcome.data_docs_index:
        metadata["data_docs_index"] = dg.MetadataValue.url(outcome.data_docs_index)
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(spec.asset),
        check_name=spec.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR if spec.blocking else dg.AssetCheckSeverity.WARN,
        description=outcome.description(),
        metadata=metadata,
    )


def _run(
    context: dg.AssetCheckExecutionContext,
    checks: Sequence[CheckSpec],
    builders: Builders,
    data_quality: DataQualityResource,
    repository: LicensingRepository,
    run_settings: RunSettings,
    catalog: pd.DataFrame | None = None,
) -> Iterator[dg.AssetCheckResult]:
    """Evaluate the selected checks, record them in data_quality_report and yield them;
    ``catalog`` gives the suites the catalog's names (plans, metrics, regions)."""
    selected = context.selected_asset_check_keys
    chosen = [c for c in checks if dg.AssetCheckKey(dg.AssetKey(c.asset), c.name) in selected]
    as_of = run_settings.as_of_date()
    started = time.perf_counter()
    outcomes = data_quality.gx.evaluate(
        chosen,
        builders,
        _parameters(data_quality, catalog),
        run_id=context.run.run_id,
        run_name=f"{as_of.isoformat()} run {context.run.run_id[:8]}",
    )
    try:
        record_outcomes(
            repository.engine(),
            outcomes,
            run_id=context.run.run_id,
            as_of=as_of,
        )
    except Exception as exc:  # the checks stand without the report; say so
        context.log.warning(f"data_quality_report not written: {type(exc).__name__}: {exc}")
    expectations = sum(len(o.expectations) for o in outcomes)
    batches = len({b for o in outcomes for b in o.spec.batches})
    context.log.info(
        f"{len(outcomes)} check(s): {expectations} expectations on {batches} batches "
        f"in {time.perf_counter() - started:.2f}s"
    )
    for outcome in outcomes:
        if not outcome.passed:
            level = context.log.error if outcome.spec.blocking else context.log.warning
            level(f"{outcome.spec.asset}:{outcome.spec.name} failed: {outcome.description()}")
        yield check_result(outcome)


def _specs(
    checks: Sequence[CheckSpec], additional_deps: Sequence[str] = ()
) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            name=check.name,
            asset=check.asset,
            blocking=check.blocking,
            description=check.asserts,
            additional_deps=[d for d in additional_deps if d != check.asset],
            metadata={
                "blocking": check.blocking,
                "great_expectations_suites": ", ".join(check.batches),
                "great_expectations_expectations": dg.MetadataValue.md(
                    "\n".join(f"- `{e.describe()}` on `{e.batch}`" for e in check.expectations)
                ),
            },
        )
        for check in checks
    ]


def _parameters(data_quality: DataQualityResource, catalog: pd.DataFrame | None) -> dict[str, Any]:
    return qb.suite_parameters(
        catalog,
        freshness_hours=data_quality.freshness_hours,
        future_tolerance_hours=data_quality.future_tolerance_hours,
        max_quarantine_share=data_quality.max_quarantine_share,
        early_usage_days=data_quality.early_usage_days,
    )


def _read(warehouse: Warehouse, *tables: str) -> dict[str, pd.DataFrame]:
    """Tables of the warehouse; a quarantine table not written yet reads as empty."""
    present = warehouse.table_names()
    frames = {}
    for table in tables:
        if table in present:
            frames[table] = warehouse.read_frame(table)
        elif table.startswith("quarantine_"):
            frames[table] = empty_frame(QUARANTINED_RECORDS)
        else:
            raise dg.Failure(f"table {SCHEMA}.{table} is not in the warehouse: run its asset")
    return frames


# --- the steps -------------------------------------------------------------------------------

# Check steps yield to any other ready step (dagster/priority): the assets go first, the
# checks follow when nothing else can run.
OP_TAGS = {"dagster/priority": "-1"}


def _check_step(
    name: str,
    checks: Sequence[CheckSpec],
    *,
    description: str,
    additional_deps: Sequence[str] = (),
) -> Callable[[Callable[..., Any]], dg.AssetChecksDefinition]:
    """One step of suites, run after every asset step that is ready (``OP_TAGS``)."""
    return dg.multi_asset_check(
        name=name,
        specs=_specs(checks, additional_deps),
        can_subset=True,
        compute_kind="great_expectations",
        op_tags=OP_TAGS,
        description=description,
    )


SOURCE_CHECKS = checks_of("catalog", *SMALL_SOURCES)


@_check_step(
    "sources_data_quality",
    SOURCE_CHECKS,
    additional_deps=["catalog"],
    description=(
        "Great Expectations suites of the catalog, tenants, contracts, billing_records, "
        "deployment_configs, residency_configs and policy_exceptions: columns and types, "
        "values, uniqueness, quarantined lines and references into the catalog."
    ),
)
def sources_data_quality(
    context: dg.AssetCheckExecutionContext,
    data_quality: DataQualityResource,
    repository: LicensingRepository,
    run_settings: RunSettings,
    warehouse: Warehouse,
) -> Iterator[dg.AssetCheckResult]:
    tables = _read(
        warehouse,
        "catalog",
        *SMALL_SOURCES,
        *(f"quarantine_{source}" for source in SMALL_SOURCES),
    )
    catalog, tenants, contracts = tables["catalog"], tables["tenants"], tables["contracts"]
    billing_records = tables["billing_records"]
    deployment_configs = tables["deployment_configs"]
    residency_configs = tables["residency_configs"]
    policy_exceptions = tables["policy_exceptions"]
    builders: dict[str, Callable[[], qb.Batch]] = {
        "catalog": lambda: qb.table_batch(catalog, "kind", "name"),
        "catalog.metrics": lambda: qb.catalog_metrics(catalog),
        "tenants": lambda: qb.table_batch(tenants, "tenant_id"),
        "contracts": lambda: qb.table_batch(contracts, "contract_id", "tenant_id"),
        "contracts.addons": lambda: qb.contract_addons(contracts),
        "contracts.quota_overrides": lambda: qb.contract_quota_overrides(contracts),
        "contracts.active_overlaps": lambda: qb.active_contract_overlaps(contracts),
        "billing_records": lambda: qb.table_batch(
            billing_records, "invoice_id", "tenant_id", "period", "metric"
        ),
        "deployment_configs": lambda: qb.table_batch(deployment_configs, "deployment"),
        "deployment_configs.features": lambda: qb.deployment_features(deployment_configs),
        "deployment_configs.quota_limits": lambda: qb.deployment_quota_limits(deployment_configs),
        "residency_configs": lambda: qb.table_batch(residency_configs, "tenant_id"),
        "residency_configs.jurisdictions": lambda: qb.residency_jurisdictions(residency_configs),
        "policy_exceptions": lambda: qb.table_batch(policy_exceptions, "exception_id"),
    }
    for source in SMALL_SOURCES:
        quarantined = tables[f"quarantine_{source}"]
        builders[f"{source}.quarantine"] = lambda q=quarantined: qb.quarantine_batch(q)  # type: ignore[misc]
    yield from _run(
        context, SOURCE_CHECKS, builders, data_quality, repository, run_settings, catalog=catalog
    )


USAGE_CHECKS = checks_of("usage_events")


@_check_step(
    "usage_data_quality",
    USAGE_CHECKS,
    additional_deps=["contracts"],
    description=(
        "Great Expectations suite of usage_events, on DuckDB aggregates and samples: keys, "
        "files cut off, freshness, volume against the usual day, times in the future, "
        "usage long before a tenant's first contract."
    ),
)
def usage_data_quality(
    context: dg.AssetCheckExecutionContext,
    data_quality: DataQualityResource,
    repository: LicensingRepository,
    run_settings: RunSettings,
    warehouse: Warehouse,
) -> Iterator[dg.AssetCheckResult]:
    computed: dict[str, qb.Batch] = {}
    thresholds = qb.UsageThresholds(
        min_volume_share=data_quality.min_volume_share,
        volume_weeks=data_quality.volume_weeks,
        min_volume_baseline=data_quality.min_volume_baseline,
    )

    def build(name: str) -> qb.Batch:
        if not computed:  # one connection, a few queries, for every batch
            has_contracts = warehouse.table_exists("contracts")
            with warehouse.connect() as con:
                computed.update(
                    qb.usage_batches(
                        con,
                        run_settings.as_of_date(),
                        thresholds,
                        now=datetime.now(UTC).replace(tzinfo=None),
                        future_tolerance_hours=data_quality.future_tolerance_hours,
                        contracts_table=f"{SCHEMA}.contracts" if has_contracts else None,
                    )
                )
        return computed[name]

    names = {name for check in USAGE_CHECKS for name in check.batches}
    builders = {name: (lambda n=name: build(n)) for name in names}
    yield from _run(context, USAGE_CHECKS, builders, data_quality, repository, run_settings)


DERIVED_CHECKS = checks_of("quarantined_records", "effective_entitlements")


@_check_step(
    "derived_data_quality",
    DERIVED_CHECKS,
    description=(
        "Great Expectations suites of quarantined_records and of effective_entitlements, "
        "before any check family reads the entitlements."
    ),
)
def derived_data_quality(
    context: dg.AssetCheckExecutionContext,
    data_quality: DataQualityResource,
    repository: LicensingRepository,
    run_settings: RunSettings,
    warehouse: Warehouse,
) -> Iterator[dg.AssetCheckResult]:
    tables = _read(warehouse, "quarantined_records", "effective_entitlements")
    quarantined_records = tables["quarantined_records"]
    effective_entitlements = tables["effective_entitlements"]
    builders = {
        "quarantined_records": lambda: qb.quarantine_batch(quarantined_records),
        "effective_entitlements": lambda: qb.table_batch(
            effective_entitlements, "tenant_id", "period"
        ),
        "effective_entitlements.status": lambda: qb.entitlement_status(effective_entitlements),
    }
    yield from _run(context, DERIVED_CHECKS, builders, data_quality, repository, run_settings)


FINDINGS_CHECKS = checks_of("compliance_findings")
_FINDINGS_DEPS = ["catalog", "tenants", "contracts", "tenant_activity_daily", "region_usage_daily"]


@_check_step(
    "findings_data_quality",
    FINDINGS_CHECKS,
    additional_deps=_FINDINGS_DEPS,
    description=(
        "Great Expectations suite of compliance_findings: the contract's columns and "
        "vocabulary, one finding per key, and unknown tenants and regions reported."
    ),
)
def findings_data_quality(
    context: dg.AssetCheckExecutionContext,
    data_quality: DataQualityResource,
    repository: LicensingRepository,
    run_settings: RunSettings,
    warehouse: Warehouse,
) -> Iterator[dg.AssetCheckResult]:
    tables = _read(warehouse, "compliance_findings", *_FINDINGS_DEPS)
    compliance_findings, catalog = tables["compliance_findings"], tables["catalog"]
    tenants, contracts = tables["tenants"], tables["contracts"]
    tenant_activity_daily = tables["tenant_activity_daily"]
    region_usage_daily = tables["region_usage_daily"]
    builders = {
        "compliance_findings": lambda: qb.table_batch(
            compliance_findings, "tenant_id", "check", "subject", "period"
        ),
        "compliance_findings.unknown_tenants": lambda: qb.unknown_tenants(
            tenant_activity_daily, tenants, contracts, compliance_findings
        ),
        "compliance_findings.unknown_regions": lambda: qb.unknown_regions(
            region_usage_daily, catalog, compliance_findings
        ),
    }
    yield from _run(
        context, FINDINGS_CHECKS, builders, data_quality, repository, run_settings, catalog=catalog
    )


quality_checks = [
    sources_data_quality,
    usage_data_quality,
    derived_data_quality,
    findings_data_quality,
]
