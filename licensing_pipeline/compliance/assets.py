"""The compliance assets: thin wrappers that load inputs, call the pure check functions and
describe what they found. Every input is a warehouse table loaded by the IO manager."""

# No ``from __future__ import annotations``: Dagster inspects the annotations of asset
# functions (context, resources, inputs) at definition time and rejects strings.

from collections.abc import Callable, Iterable

import dagster as dg
import pandas as pd

from licensing_pipeline.compliance import (
    anomalies,
    billing,
    contract_status,
    features,
    forecast,
    quota,
    residency,
)
from licensing_pipeline.compliance import (
    config_drift as drift,
)
from licensing_pipeline.compliance.common import count_by_check
from licensing_pipeline.compliance.entitlements import resolve_entitlements
from licensing_pipeline.contract.catalog import Catalog
from licensing_pipeline.metadata import preview
from licensing_pipeline.policy.bundle import PolicyResource
from licensing_pipeline.run_config import RunSettings

GROUP = "compliance"


def _check_family(description: str) -> Callable[[Callable[..., pd.DataFrame]], dg.AssetsDefinition]:
    """The decorator of a check family's asset: they differ only in what they check."""
    return dg.asset(group_name=GROUP, kinds={"pandas"}, description=description)


def _describe(
    context: dg.AssetExecutionContext, results: pd.DataFrame, checks: Iterable[str]
) -> pd.DataFrame:
    context.add_output_metadata(
        {
            "results": dg.MetadataValue.int(len(results)),
            **{
                check: dg.MetadataValue.int(n)
                for check, n in count_by_check(results, checks).items()
            },
            "preview": preview(results),
        }
    )
    return results


@dg.asset(
    group_name=GROUP,
    kinds={"pandas"},
    description=(
        "What each tenant may use in each month: the contract in force on the month's last "
        "day (on as-of for the current month), plan ∪ add-on features, plan + add-on quotas "
        "then overrides, then the approved changes in force that day (applied_changes)."
    ),
)
def effective_entitlements(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    catalog: pd.DataFrame,
    tenants: pd.DataFrame,
    contracts: pd.DataFrame,
    tenant_activity_daily: pd.DataFrame,
    approved_changes: pd.DataFrame,
) -> pd.DataFrame:
    frame = resolve_entitlements(
        Catalog.from_frame(catalog),
        tenants,
        contracts,
        tenant_activity_daily,
        run_settings.as_of_date(),
        approved_changes,
    )
    statuses = frame["contract_status"].value_counts()
    context.add_output_metadata(
        {
            "tenant_months": dg.MetadataValue.int(len(frame)),
            "tenants": dg.MetadataValue.int(int(frame["tenant_id"].nunique())),
            **{
                f"status_{status}": dg.MetadataValue.int(int(statuses.get(status, 0)))
                for status in ("active", "paused", "cancelled", "expired", "none")
            },
            "tenant_months_with_changes": dg.MetadataValue.int(
                int((frame["applied_changes"] != "[]").sum())
            ),
            "preview": preview(frame),
        }
    )
    return frame


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb"},
    description=(
        "Where each tenant's metric ends the month still running: month to date, the projected "
        "month-end figure against the limit and the day the limit is reached at the current "
        "pace (flows by a weekday-weighted pace, gauges by their trend, distinct counts held)."
    ),
)
def usage_forecasts(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    catalog: pd.DataFrame,
    usage_daily: pd.DataFrame,
    usage_monthly: pd.DataFrame,
    effective_entitlements: pd.DataFrame,
) -> pd.DataFrame:
    frame = forecast.usage_forecasts(
        usage_daily,
        usage_monthly,
        Catalog.from_frame(catalog).aggregations(),
        effective_entitlements,
        run_settings.as_of_date(),
    )
    reaching = frame["projected_exhaustion_day"].notna()
    context.add_output_metadata(
        {
            "forecasts": dg.MetadataValue.int(len(frame)),
            "reaching_the_limit": dg.MetadataValue.int(int(reaching.sum())),
            "preview": preview(frame),
        }
    )
    return frame


@_check_family("quota_exceeded / quota_near_limit: monthly usage against entitled quotas.")
def quota_consumption(
    context: dg.AssetExecutionContext,
    policy: PolicyResource,
    effective_entitlements: pd.DataFrame,
    usage_monthly: pd.DataFrame,
    approved_changes: pd.DataFrame,
    usage_forecasts: pd.DataFrame,
) -> pd.DataFrame:
    results = quota.quota_consumption(
        effective_entitlements,
        usage_monthly,
        policy.load().near_limit_ratio,
        approved_changes,
        forecasts=usage_forecasts,
    )
    return _describe(context, results, quota.CHECKS)


@_check_family("feature_not_entitled: usage events of features the contract does not include.")
def feature_compliance(
    context: dg.AssetExecutionContext,
    effective_entitlements: pd.DataFrame,
    feature_usage_daily: pd.DataFrame,
    approved_changes: pd.DataFrame,
) -> pd.DataFrame:
    results = features.feature_compliance(
        effective_entitlements, feature_usage_daily, approved_changes
    )
    return _describe(context, results, features.CHECKS)


@_check_family("inactive_contract_usage: usage with no active contract in force.")
def contract_status_compliance(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    effective_entitlements: pd.DataFrame,
    tenant_activity_daily: pd.DataFrame,
) -> pd.DataFrame:
    results = contract_status.contract_status_compliance(
        effective_entitlements, tenant_activity_daily, as_of=run_settings.as_of_date()
    )
    return _describe(context, results, contract_status.CHECKS)


@_check_family(
    "residency_violation: usage processed, or a deployment running, in a region whose "
    "jurisdiction the tenant does not allow (unless an approved region_allow covers the day)."
)
def residency_compliance(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    catalog: pd.DataFrame,
    residency_configs: pd.DataFrame,
    region_usage_daily: pd.DataFrame,
    deployment_configs: pd.DataFrame,
    effective_entitlements: pd.DataFrame,
    approved_changes: pd.DataFrame,
) -> pd.DataFrame:
    results = residency.residency_compliance(
        Catalog.from_frame(catalog),
        residency_configs,
        region_usage_daily,
        deployment_configs,
        run_settings.as_of_date(),
        entitlements=effective_entitlements,
        changes=approved_changes,
    )
    return _describe(context, results, residency.CHECKS)


@_check_family(
    "config_feature_not_entitled / config_feature_missing / config_quota_mismatch: the "
    "latest deployment configs against the entitlement on as-of; config_policy_outdated: "
    "deployments enforcing another enforcement feed version than this run's policy version."
)
def config_drift(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    policy: PolicyResource,
    effective_entitlements: pd.DataFrame,
    deployment_configs: pd.DataFrame,
) -> pd.DataFrame:
    results = drift.config_drift(
        effective_entitlements,
        deployment_configs,
        run_settings.as_of_date(),
        feed_version=policy.load().version,
    )
    return _describe(context, results, drift.CHECKS)


@_check_family("unbilled_usage / overbilled_usage: closed months' usage against invoices.")
def billing_reconciliation(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    policy: PolicyResource,
    effective_entitlements: pd.DataFrame,
    usage_monthly: pd.DataFrame,
    billing_records: pd.DataFrame,
) -> pd.DataFrame:
    results = billing.billing_reconciliation(
        effective_entitlements,
        usage_monthly,
        billing_records,
        run_settings.as_of_date(),
        policy.load().billing_tolerance,
    )
    return _describe(context, results, billing.CHECKS)


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb"},
    description=(
        "usage_anomaly: episodes of usage far outside the tenant's own recent level, by a rule "
        "per kind of metric (counts, sums, gauges); shifts an entitlement change (a contract's "
        "or an approved change request's) explains are suppressed and listed in the metadata."
    ),
)
def usage_anomalies(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    policy: PolicyResource,
    catalog: pd.DataFrame,
    usage_daily: pd.DataFrame,
    contracts: pd.DataFrame,
    effective_entitlements: pd.DataFrame,
    approved_changes: pd.DataFrame,
) -> pd.DataFrame:
    results, episodes = anomalies.usage_anomalies(
        usage_daily,
        run_settings.as_of_date(),
        policy.load().anomaly,
        aggregations=Catalog.from_frame(catalog).aggregations(),
        contracts=contracts,
        entitlements=effective_entitlements,
        approved=approved_changes,
    )
    suppressed = episodes[episodes["suppressed_by"].notna()]
    context.add_output_metadata(
        {
            "suppressed": dg.MetadataValue.int(len(suppressed)),
            "suppressed_episodes": dg.MetadataValue.md(
                suppressed[["tenant_id", "metric", "start", "peak", "suppressed_by"]]
                .assign(start=suppressed["start"].dt.strftime("%Y-%m-%d"))
                .to_markdown(index=False)
                if len(suppressed)
                else "_none_"
            ),
        }
    )
    return _describe(context, results, anomalies.CHECKS)


# The check families: each emits CHECK_RESULTS rows for policy_evaluations to decide on.
check_families = [
    quota_consumption,
    feature_compliance,
    contract_status_compliance,
    residency_compliance,
    config_drift,
    billing_reconciliation,
    usage_anomalies,
]
# The tables of check results policy_evaluations decides on, in this order.
CHECK_TABLES = tuple(asset.key.path[-1] for asset in check_families)
compliance_assets = [effective_entitlements, usage_forecasts, *check_families]
