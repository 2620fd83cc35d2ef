"""The helpers every check family shares: dates that pandas cannot hold in nanoseconds, and
figures that are not finite."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from licensing_pipeline.compliance.common import (
    check_results,
    day_series,
    fmt_number,
    time_series,
)
from licensing_pipeline.compliance.quota import quota_consumption
from licensing_pipeline_tests.compliance.builders import entitlement, entitlements, via_duckdb


def test_dates_beyond_nanoseconds_are_clipped_not_an_error():
    """The warehouse hands over microseconds (years 1 to 9999); one such value slipping
    through used to fail the whole run with OutOfBoundsDatetime."""
    frame = via_duckdb(
        pd.DataFrame(
            {
                "day": [
                    pd.Timestamp("0001-01-01").as_unit("us"),
                    pd.Timestamp("2026-10-03 14:12").as_unit("us"),
                    pd.Timestamp("9999-12-31 23:59").as_unit("us"),
                    pd.NaT,
                ]
            }
        )
    )
    assert str(frame["day"].dtype) == "datetime64[us]"
    assert day_series(frame["day"]).tolist()[:3] == [
        pd.Timestamp("1677-09-22"),
        pd.Timestamp("2026-10-03"),
        pd.Timestamp("2262-04-11"),
    ]
    times = time_series(frame["day"])
    assert times.iloc[1] == pd.Timestamp("2026-10-03 14:12")
    assert times.iloc[0] < pd.Timestamp("1700-01-01") and pd.isna(times.iloc[3])


def results(observed: float, allowed: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "tenant_id": "t1",
                "check": "quota_exceeded",
                "subject": "exports",
                "period": "2026-10",
                "observed": observed,
                "allowed": allowed,
                "enforcement": "hard",
                "details": "",
            }
        ]
    )


@pytest.mark.parametrize(
    ("observed", "allowed"),
    [(math.inf, 10.0), (math.nan, 10.0), (5.0, math.inf), (-math.inf, 0.0)],
)
def test_a_result_with_a_figure_that_is_not_finite_is_never_emitted(observed, allowed):
    assert check_results(results(observed, allowed)).empty
    assert len(check_results(results(11.0, 10.0))) == 1


def test_an_overflowing_usage_never_becomes_a_finding():
    found = quota_consumption(
        entitlements(entitlement("t1", "2026-10", quotas={"exports": 320})),
        pd.DataFrame(
            [
                {"tenant_id": "t1", "period": "2026-10", "metric": m, "quantity": q}
                for m, q in (("exports", 1e308 + 1e308), ("api_calls", 1.0))
            ]
        ),
        0.8,
    )
    assert found.empty


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1234.0, "1,234"),
        (0.125, "0.12"),
        (math.inf, "unknown"),
        (-math.inf, "unknown"),
        (math.nan, "unknown"),
    ],
)
def test_customer_figures_never_read_inf_or_nan(value, text):
    assert fmt_number(value) == text
