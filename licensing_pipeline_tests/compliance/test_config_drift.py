from __future__ import annotations

from licensing_pipeline.compliance.config_drift import config_drift
from licensing_pipeline.contract.schemas import CHECK_RESULTS
from licensing_pipeline_tests.compliance.builders import (
    day,
    deployment,
    deployments,
    entitlement,
    entitlements,
    keyed,
    only_result,
    via_duckdb,
)

AS_OF = day("2026-10-15")
ENTS = entitlements(
    # September was starter; the October upgrade is what deployments must match on as-of
    entitlement("t1", "2026-09", features=["api_access"], quotas={"api_calls": 100000}),
    entitlement(
        "t1",
        "2026-10",
        plan="pro",
        features=["api_access", "sso"],
        quotas={"api_calls": 1000000, "seats": 50},
        enforcement="soft",
    ),
    entitlement("t-paused", "2026-10", status="paused", features=[]),
)
MATCHING = {"features": ["api_access", "sso"], "limits": {"api_calls": 1000000}}


def test_a_matching_deployment_has_no_drift_and_unnamed_metrics_are_not_compared():
    assert config_drift(ENTS, deployments(deployment("t1", "2026-10-01", **MATCHING)), AS_OF).empty


def test_feature_enabled_without_entitlement_and_entitled_feature_missing():
    results = config_drift(
        ENTS,
        deployments(deployment("t1", "2026-10-01", features=["api_access", "audit_log"])),
        AS_OF,
    )
    assert list(results.columns) == list(CHECK_RESULTS)
    by_key = keyed(results)
    assert set(by_key) == {
        ("t1", "config_feature_not_entitled", "audit_log", "2026-10"),
        ("t1", "config_feature_missing", "sso", "2026-10"),
    }
    extra = by_key[("t1", "config_feature_not_entitled", "audit_log", "2026-10")]
    assert (extra["observed"], extra["allowed"], extra["enforcement"]) == (1, 0, "soft")
    assert extra["details"] == (
        "Deployment prod enables audit_log, which is not included in your plan (pro) or add-ons."
    )
    missing = by_key[("t1", "config_feature_missing", "sso", "2026-10")]
    assert (missing["observed"], missing["allowed"]) == (0, 1)
    assert (
        missing["details"] == "sso is included in your contract but not enabled in deployment prod."
    )


def test_quota_mismatch_skips_unlimited_metrics():
    results = config_drift(
        ENTS,
        deployments(
            deployment(
                "t1",
                "2026-10-01",
                features=["api_access", "sso"],
                # storage_gb is unlimited in the entitlement: nothing to drift from
                limits={"api_calls": 150000, "seats": 50, "storage_gb": 5},
            )
        ),
        AS_OF,
    )
    row = only_result(results, ("t1", "config_quota_mismatch", "api_calls", "2026-10"))
    assert (row["observed"], row["allowed"]) == (150000, 1000000)
    assert row["details"] == (
        "Deployment prod limits api_calls to 150,000 instead of the 1,000,000 in your contract."
    )


def test_latest_observation_per_deployment_wins_up_to_the_end_of_as_of():
    rows = deployments(
        deployment("t1", "2026-10-01T00:00:00", features=["api_access"]),
        deployment("t1", "2026-10-15T23:59:59", **MATCHING),  # fixed late on as-of day
        deployment("t1", "2026-10-16T00:00:00", features=[]),  # after as-of: ignored
    )
    assert config_drift(ENTS, rows, AS_OF).empty
    earlier = config_drift(ENTS, rows, day("2026-10-14"))
    assert list(earlier["check"]) == ["config_feature_missing"]


def test_several_deployments_with_one_problem_make_one_result_naming_them():
    rows = deployments(
        deployment("t1", "2026-10-01", deployment="eu-1", features=["api_access"]),
        deployment("t1", "2026-10-01", deployment="us-1", features=["api_access"]),
        deployment(
            "t1", "2026-10-01", deployment="a", features=["api_access", "sso"], limits={"seats": 60}
        ),
        deployment(
            "t1", "2026-10-01", deployment="b", features=["api_access", "sso"], limits={"seats": 10}
        ),
    )
    by_key = keyed(config_drift(ENTS, rows, AS_OF))
    assert set(by_key) == {
        ("t1", "config_feature_missing", "sso", "2026-10"),
        ("t1", "config_quota_mismatch", "seats", "2026-10"),
    }
    assert by_key[("t1", "config_feature_missing", "sso", "2026-10")]["details"] == (
        "sso is included in your contract but not enabled in deployments eu-1 and us-1."
    )
    seats = by_key[("t1", "config_quota_mismatch", "seats", "2026-10")]
    assert seats["observed"] == 10  # the limit furthest from the contract's 50
    assert seats["details"] == (
        "Deployments a (60) and b (10) limit seats to other than the 50 in your contract."
    )


def test_only_tenants_entitled_on_as_of_are_compared():
    rows = deployments(
        deployment("t-paused", "2026-10-01", features=["sso"]),
        deployment("t-unknown", "2026-10-01", features=["sso"]),
    )
    assert config_drift(ENTS, rows, AS_OF).empty


def test_frames_from_duckdb():
    results = config_drift(
        via_duckdb(ENTS),
        via_duckdb(deployments(deployment("t1", "2026-10-01", features=["api_access"]))),
        AS_OF,
    )
    assert list(results["check"]) == ["config_feature_missing"]


def test_a_deployment_on_another_feed_version_is_reported_once_per_tenant():
    """config_policy_outdated: observed is the number of deployments on another version than
    the feed this run publishes; the latest observation counts, an absent version is none."""
    configs = deployments(
        deployment("t1", "2026-10-01", **MATCHING, feed_version="2026.09.0"),
        deployment("t1", "2026-10-02", **MATCHING, deployment="eu", feed_version="2026.08.1"),
        deployment("t1", "2026-10-02", **MATCHING, deployment="us", feed_version="2026.11.0"),
        deployment("t1", "2026-10-03", **MATCHING, deployment="ap"),
    )
    results = config_drift(ENTS, configs, AS_OF, feed_version="2026.11.0")
    row = only_result(results, ("t1", "config_policy_outdated", "policy_version", "2026-10"))
    assert (row["observed"], row["allowed"], row["enforcement"]) == (2, 0, "soft")
    assert row["details"] == (
        "Deployments eu (2026.08.1) and prod (2026.09.0) enforce enforcement feed version(s) "
        "other than the current 2026.11.0."
    )
    updated = deployments(
        deployment("t1", "2026-10-01", **MATCHING, feed_version="2026.09.0"),
        deployment("t1", "2026-10-05", **MATCHING, feed_version="2026.11.0"),
    )
    assert config_drift(ENTS, updated, AS_OF, feed_version="2026.11.0").empty
    unreported = deployments(deployment("t1", "2026-10-01", **MATCHING))
    assert config_drift(ENTS, unreported, AS_OF, feed_version="2026.11.0").empty
