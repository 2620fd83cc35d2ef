from __future__ import annotations

import pandas as pd

from licensing_pipeline.compliance.contract_status import contract_status_compliance
from licensing_pipeline.contract.schemas import CHECK_RESULTS
from licensing_pipeline_tests.compliance.builders import (
    activity,
    day,
    entitlement,
    entitlements,
    keyed,
    via_duckdb,
)

ENTS = entitlements(
    entitlement("active", "2026-10"),
    entitlement("paused", "2026-10", status="paused", contract_id="c-9", enforcement="soft"),
    entitlement("cancelled", "2026-10", status="cancelled", contract_id="c-8"),
    entitlement("expired", "2026-10", status="expired", resolved_on="2026-10-15"),
    entitlement("none", "2026-10", status="none"),
)
USAGE = activity(
    [
        ("active", "2026-10-01", 10),
        ("paused", "2026-10-01", 10),
        ("paused", "2026-10-02", 5),
        ("cancelled", "2026-10-03", 1),
        ("expired", "2026-10-04", 2),
        ("none", "2026-10-05", 3),
        ("unknown", "2026-10-06", 4),
    ]
)


def test_usage_without_an_active_contract_is_reported_per_month_with_its_status():
    results = contract_status_compliance(ENTS, USAGE)
    assert list(results.columns) == list(CHECK_RESULTS)
    by_key = keyed(results)
    assert set(by_key) == {
        (t, "inactive_contract_usage", "contract", "2026-10")
        for t in ("paused", "cancelled", "expired", "none", "unknown")
    }
    paused = by_key[("paused", "inactive_contract_usage", "contract", "2026-10")]
    assert (paused["observed"], paused["allowed"], paused["enforcement"]) == (15, 0, "soft")
    assert (
        paused["details"]
        == "15 usage events in 2026-10 were recorded while contract c-9 was paused."
    )
    details = {k[0]: v["details"] for k, v in by_key.items()}
    assert details["cancelled"] == (
        "1 usage event in 2026-10 was recorded while contract c-8 was cancelled."
    )
    assert "(expired)" in details["expired"] and "2026-10-15" in details["expired"]
    assert "(none)" in details["none"] and "(none)" in details["unknown"]
    assert pd.isna(
        by_key[("none", "inactive_contract_usage", "contract", "2026-10")]["enforcement"]
    )


def test_days_after_as_of_are_not_evaluated():
    late = activity([("paused", "2026-10-20", 5)])
    assert contract_status_compliance(ENTS, late, as_of=day("2026-10-19")).empty
    assert len(contract_status_compliance(ENTS, late, as_of=day("2026-10-20"))) == 1


def test_frames_from_duckdb():
    results = contract_status_compliance(via_duckdb(ENTS), via_duckdb(USAGE))
    assert len(results) == 5
