"""The suites are Dagster asset checks of the code location, visible in the UI."""

from __future__ import annotations

import dagster as dg

from licensing_pipeline.definitions import defs
from licensing_pipeline.quality.checks import quality_checks
from licensing_pipeline.quality.suites import load_suites
from licensing_pipeline_tests.quality.test_suites import SOURCE_ASSETS


def _gx_checks() -> dict[dg.AssetCheckKey, dg.AssetCheckSpec]:
    return {spec.key: spec for checks in quality_checks for spec in checks.check_specs}


def test_every_source_asset_and_the_findings_have_gx_checks_in_the_ui():
    graph = defs.resolve_asset_graph()
    gx = _gx_checks()
    for asset in (*SOURCE_ASSETS, "compliance_findings"):
        keys = [k for k in graph.asset_check_keys if k.asset_key == dg.AssetKey(asset)]
        ours = [k for k in keys if k in gx]
        assert ours, f"{asset} has no Great Expectations check"
        for key in ours:
            spec = gx[key]
            assert spec.description
            metadata = spec.metadata
            assert str(metadata["great_expectations_suites"])
            assert "expect_" in str(metadata["great_expectations_expectations"].value)


def test_the_checks_are_the_suites_and_block_as_the_suites_say():
    gx = _gx_checks()
    suites = {(c.asset, c.name): c for checks in load_suites().values() for c in checks}
    assert {(k.asset_key.to_user_string(), k.name) for k in gx} == set(suites)
    for key, spec in gx.items():
        assert spec.blocking == suites[(key.asset_key.to_user_string(), key.name)].blocking


def test_the_nightly_job_runs_the_checks_and_dbt_tests():
    job = defs.resolve_job_def("nightly_compliance")
    nodes = set(job.graph.node_names())
    assert {c.node_def.name for c in quality_checks} <= nodes
    checks = defs.resolve_asset_graph().asset_check_keys
    names = {k.name for k in checks}
    assert "usage_reconciles_with_events" in names  # the singular dbt test
    assert any(n.startswith("relationships_usage_daily_metric") for n in names)


def test_blocking_checks_gate_the_assets_downstream():
    """A blocking check on contracts stands between contracts and effective_entitlements."""
    job = defs.resolve_job_def("nightly_compliance")
    deps = job.graph.dependency_structure
    entitlement_inputs = {
        str(dep)
        for handle, dep in deps.input_to_upstream_outputs_for_node("effective_entitlements").items()
        for dep in dep
    }
    assert any("sources_data_quality" in d for d in entitlement_inputs), entitlement_inputs
