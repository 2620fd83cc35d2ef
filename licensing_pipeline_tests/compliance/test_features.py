from __future__ import annotations

import pandas as pd

from licensing_pipeline.compliance.features import feature_compliance
from licensing_pipeline.contract.schemas import CHECK_RESULTS
from licensing_pipeline_tests.compliance.builders import (
    entitlement,
    entitlements,
    keyed,
    via_duckdb,
)


def feature_usage(*rows: tuple[str, str, str, int]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["tenant_id", "feature", "usage_date", "events"])
    frame["usage_date"] = pd.to_datetime(frame["usage_date"]).dt.date
    return frame


ENTITLED = entitlements(
    entitlement("t1", "2026-09", features=["api_access"], enforcement="soft"),
    entitlement("t1", "2026-10", features=["api_access", "advanced_analytics"]),
    entitlement("t2", "2026-10", status="paused", features=["api_access"]),
)


def test_events_of_a_feature_not_in_the_entitlement_are_counted_per_month():
    results = feature_compliance(
        ENTITLED,
        feature_usage(
            ("t1", "sso", "2026-09-29", 3),
            ("t1", "sso", "2026-09-30", 4),
            ("t1", "sso", "2026-10-01", 5),
            ("t1", "api_access", "2026-10-01", 50),
        ),
    )
    assert list(results.columns) == list(CHECK_RESULTS)
    by_key = keyed(results)
    assert set(by_key) == {
        ("t1", "feature_not_entitled", "sso", "2026-09"),
        ("t1", "feature_not_entitled", "sso", "2026-10"),
    }
    september = by_key[("t1", "feature_not_entitled", "sso", "2026-09")]
    assert (september["observed"], september["allowed"]) == (7, 0)
    assert september["enforcement"] == "soft"
    assert september["details"] == (
        "sso was used in 7 events in 2026-09, but it is not included in your plan (starter) "
        "or add-ons."
    )


def test_a_feature_granted_by_an_addon_is_entitled():
    results = feature_compliance(
        ENTITLED,
        feature_usage(
            ("t1", "advanced_analytics", "2026-10-03", 2),
            ("t1", "advanced_analytics", "2026-09-03", 1),
        ),
    )
    # granted in October (the add-on), not in September
    assert list(keyed(results)) == [("t1", "feature_not_entitled", "advanced_analytics", "2026-09")]
    assert results["details"].iloc[0].startswith("advanced_analytics was used in 1 event in")


def test_periods_without_an_active_contract_are_left_to_inactive_contract_usage():
    results = feature_compliance(
        ENTITLED,
        feature_usage(("t2", "sso", "2026-10-03", 9), ("t3", "sso", "2026-10-03", 9)),
    )
    assert results.empty


def test_frames_from_duckdb():
    results = feature_compliance(
        via_duckdb(ENTITLED), via_duckdb(feature_usage(("t1", "sso", "2026-10-01", 5)))
    )
    assert list(results["subject"]) == ["sso"] and list(results["observed"]) == [5.0]
