from datetime import UTC

import dagster as dg
import pytest

from licensing_pipeline.contract.schemas import QUARANTINE_SOURCES
from licensing_pipeline.definitions import defs


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)


def test_asset_graph_has_the_three_groups_in_one_lineage():
    graph = defs.resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert {"sources", "warehouse", "compliance"} <= groups
    findings = dg.AssetKey("compliance_findings")
    upstream = graph.upstream_key_iterator(findings)
    assert dg.AssetKey("quota_consumption") in set(upstream)
    ancestors = set()
    frontier = [findings]
    while frontier:
        key = frontier.pop()
        for parent in graph.get(key).parent_keys:
            if parent not in ancestors:
                ancestors.add(parent)
                frontier.append(parent)
    assert {
        dg.AssetKey("usage_events"),
        dg.AssetKey("usage_monthly"),
        dg.AssetKey("catalog"),
    } <= ancestors


def test_every_source_of_the_contract_is_an_asset():
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "catalog",
        *QUARANTINE_SOURCES,
        "quarantined_records",
        "effective_entitlements",
        "quota_consumption",
        "feature_compliance",
        "contract_status_compliance",
        "residency_compliance",
        "config_drift",
        "billing_reconciliation",
        "usage_anomalies",
        "compliance_findings",
    } <= keys


def test_nightly_job_and_schedule_are_on_by_default():
    job = defs.resolve_job_def("nightly_compliance")
    assert job is not None
    schedule = defs.resolve_schedule_def("nightly_compliance_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_schedule_evaluates_the_day_that_just_ended():
    from datetime import datetime

    schedule = defs.resolve_schedule_def("nightly_compliance_schedule")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    )
    requests = schedule.evaluate_tick(context).run_requests
    assert requests is not None and len(requests) == 1
    config = requests[0].run_config["resources"]["run_settings"]["config"]
    assert config["as_of"] == "2026-11-27"


@pytest.mark.parametrize(
    ("asset", "group", "parents"),
    [
        # statements follow the findings, and show the forecasts and the month by day
        (
            "customer_statements",
            "reports",
            {
                "compliance_findings",
                "effective_entitlements",
                "usage_monthly",
                "usage_forecasts",
                "usage_daily",
                "tenants",
                "catalog",
            },
        ),
        # the dashboard prices the leakage at the billed unit price
        (
            "compliance_dashboard",
            "reports",
            {
                "compliance_findings",
                "customer_statements",
                "tenants",
                "billing_records",
                "success_metrics",
            },
        ),
        (
            "usage_forecasts",
            "compliance",
            {"catalog", "effective_entitlements", "usage_daily", "usage_monthly"},
        ),
    ],
)
def test_reports_and_forecasts_read_their_inputs_in_the_nightly_job(asset, group, parents):
    graph = defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey(asset))
    assert node.group_name == group
    assert {dg.AssetKey(p) for p in parents} == set(node.parent_keys)
    nightly = defs.resolve_job_def("nightly_compliance")
    assert dg.AssetKey(asset) in nightly.asset_layer.selected_asset_keys


def test_the_quota_details_read_the_forecasts():
    quota = defs.resolve_asset_graph().get(dg.AssetKey("quota_consumption"))
    assert dg.AssetKey("usage_forecasts") in quota.parent_keys


def test_the_access_review_is_refreshed_by_the_nightly_job():
    review = defs.resolve_asset_graph().get(dg.AssetKey("access_review"))
    assert review.group_name == "governance"
    nightly = defs.resolve_job_def("nightly_compliance")
    assert dg.AssetKey("access_review") in nightly.asset_layer.selected_asset_keys
