from __future__ import annotations

import pandas as pd
import pytest

from licensing_pipeline.compliance.billing import billing_reconciliation
from licensing_pipeline.contract.schemas import BILLING_RECORDS, CHECK_RESULTS, conform
from licensing_pipeline_tests.compliance.builders import (
    day,
    entitlement,
    entitlements,
    keyed,
    only_result,
    via_duckdb,
)

ENTS = entitlements(
    entitlement("t1", "2026-08"),
    entitlement("t1", "2026-09", enforcement="soft"),
    entitlement("t1", "2026-10"),
    entitlement("t2", "2026-09", status="cancelled"),
)


def usage(*rows: tuple[str, str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["tenant_id", "period", "metric", "quantity"])


def bills(*rows: tuple[str, str, str, float]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["tenant_id", "period", "metric", "billed_quantity"])
    frame["invoice_id"] = [f"inv-{i}" for i in range(len(frame))]
    frame["amount"] = frame["billed_quantity"] * 0.01
    return conform(frame, BILLING_RECORDS)


def reconcile(measured: float, billed: float, tolerance: float = 0.01) -> str | None:
    results = billing_reconciliation(
        ENTS,
        usage(("t1", "2026-09", "api_calls", measured)),
        bills(("t1", "2026-09", "api_calls", billed)),
        day("2026-10-15"),
        tolerance,
    )
    assert len(results) <= 1
    return None if results.empty else results["check"].iloc[0]


@pytest.mark.parametrize(
    ("measured", "billed", "expected"),
    [
        (100, 100, None),
        (101, 100, None),  # exactly 1 % more used than billed: within tolerance
        (101.5, 100, "unbilled_usage"),
        (100, 101, None),  # exactly 1 % more billed than used
        (100, 101.5, "overbilled_usage"),
        (0, 0, None),
        (0, 5, "overbilled_usage"),
    ],
)
def test_tolerance_boundaries(measured, billed, expected):
    assert reconcile(measured, billed) == expected


def test_tolerance_comes_from_the_policy():
    assert reconcile(104, 100, tolerance=0.05) is None
    assert reconcile(106, 100, tolerance=0.05) == "unbilled_usage"


def test_missing_billing_row_with_usage_is_unbilled():
    results = billing_reconciliation(
        ENTS,
        usage(("t1", "2026-09", "api_calls", 5000), ("t1", "2026-09", "seats", 4)),
        bills(("t1", "2026-08", "api_calls", 0)),
        day("2026-10-15"),
    )
    # seats never appears in the billing file, so it is not reconciled
    assert list(results.columns) == list(CHECK_RESULTS)
    row = only_result(results, ("t1", "unbilled_usage", "api_calls", "2026-09"))
    assert (row["observed"], row["allowed"], row["enforcement"]) == (5000, 0, "soft")
    assert row["details"] == "api_calls usage of 5,000 in 2026-09 has not been billed."


def test_details_say_which_way_the_difference_goes():
    results = billing_reconciliation(
        ENTS,
        usage(("t1", "2026-08", "api_calls", 120000), ("t1", "2026-09", "api_calls", 90000)),
        bills(("t1", "2026-08", "api_calls", 100000), ("t1", "2026-09", "api_calls", 100000)),
        day("2026-10-15"),
    )
    details = dict(zip(results["period"], results["details"], strict=True))
    assert details == {
        "2026-08": "api_calls usage of 120,000 in 2026-08 is above the 100,000 billed for it.",
        "2026-09": "The 100,000 api_calls billed for 2026-09 is above the 90,000 measured.",
    }


def test_billed_quantities_of_one_month_and_metric_add_up():
    results = billing_reconciliation(
        ENTS,
        usage(("t1", "2026-09", "api_calls", 100)),
        bills(("t1", "2026-09", "api_calls", 60), ("t1", "2026-09", "api_calls", 40)),
        day("2026-10-15"),
    )
    assert results.empty


def test_only_closed_periods_from_the_first_billed_period_on():
    measured = usage(
        ("t1", "2026-08", "api_calls", 10),  # before the billing file starts
        ("t1", "2026-09", "api_calls", 10),
        ("t1", "2026-10", "api_calls", 10),  # open until its last day
    )
    billed = bills(("t1", "2026-09", "api_calls", 10))
    mid_october = billing_reconciliation(ENTS, measured, billed, day("2026-10-30"))
    assert mid_october.empty
    end_of_october = billing_reconciliation(ENTS, measured, billed, day("2026-10-31"))
    assert list(keyed(end_of_october)) == [("t1", "unbilled_usage", "api_calls", "2026-10")]


def test_only_tenants_entitled_in_the_period():
    results = billing_reconciliation(
        ENTS,
        usage(("t2", "2026-09", "api_calls", 10), ("t3", "2026-09", "api_calls", 10)),
        bills(("t2", "2026-09", "api_calls", 0), ("t3", "2026-09", "api_calls", 50)),
        day("2026-10-15"),
    )
    assert results.empty


def test_no_billing_file_means_nothing_to_reconcile():
    results = billing_reconciliation(
        ENTS, usage(("t1", "2026-09", "api_calls", 10)), bills(), day("2026-10-15")
    )
    assert results.empty and dict(results.dtypes.astype(str)) == CHECK_RESULTS


def test_frames_from_duckdb():
    results = billing_reconciliation(
        via_duckdb(ENTS),
        via_duckdb(usage(("t1", "2026-09", "api_calls", 10))),
        via_duckdb(bills(("t1", "2026-09", "api_calls", 20))),
        day("2026-10-15"),
    )
    assert list(results["check"]) == ["overbilled_usage"]
