"""The statement's charts: each metric against its limit, and the month by day as the quota
counts it (from usage_daily), the tenant's own days only."""

import pandas as pd
import pytest

from licensing_pipeline.contract.catalog import Catalog, Metric
from licensing_pipeline.statements.statement import (
    ForeignRowError,
    period_statements,
    render_html,
    tenant_statement,
)
from licensing_pipeline_tests.statements.test_statement import (
    AS_OF,
    ENTITLEMENTS,
    FINDINGS,
    TENANTS,
    USAGE,
)

DAILY = pd.DataFrame(
    {
        "tenant_id": ["acme"] * 6 + ["globex"],
        "metric": [
            "api_calls",
            "api_calls",
            "api_calls",
            "seats",
            "seats",
            "api_calls",
            "api_calls",
        ],
        "usage_date": pd.to_datetime(
            [
                "2026-11-01",
                "2026-11-02",
                "2026-11-03",
                "2026-11-01",
                "2026-11-02",
                "2026-10-31",  # last month: not in November's chart
                "2026-11-01",
            ]
        ),
        "quantity": [100.0, 150.0, 50.0, 12.0, 9.0, 999.0, 77777.0],
        "events": [100, 150, 50, 12, 9, 999, 77777],
    }
)
CATALOG = Catalog(
    version="2026-11-01",
    regions={},
    features=(),
    metrics={
        "api_calls": Metric("api_calls", "api.call", "COUNT"),
        "seats": Metric("seats", "user.login", "UNIQUE_COUNT", "user_id"),
    },
    plans={},
    addons={},
)
FORECASTS = pd.DataFrame(
    {
        "tenant_id": ["acme"],
        "period": ["2026-11"],
        "metric": ["api_calls"],
        "projected_total": [1400.0],
        "projected_exhaustion_day": [pd.Timestamp("2026-11-28")],
    }
)


def november() -> dict:
    statements = period_statements(
        "2026-11",
        as_of=AS_OF,
        tenants=TENANTS,
        entitlements=ENTITLEMENTS,
        usage=USAGE,
        findings=FINDINGS,
        catalog=CATALOG,
        forecasts=FORECASTS,
        daily=DAILY,
    )
    return next(s for s in statements if s["tenant_id"] == "acme")


def test_the_month_by_day_is_counted_as_the_quota_counts_it() -> None:
    lines = {line["metric"]: line for line in november()["usage"]}
    # a flow adds up day by day; a distinct count has no month to date by day
    assert lines["api_calls"]["daily"] == [
        {"day": "2026-11-01", "to_date": 100.0},
        {"day": "2026-11-02", "to_date": 250.0},
        {"day": "2026-11-03", "to_date": 300.0},
    ]
    assert lines["seats"]["daily"] == []


def test_the_page_charts_each_metric_with_its_forecast_and_limit() -> None:
    page = render_html(november())
    assert '<div id="usage-charts">' in page
    assert '<svg id="usage-bar-api_calls"' in page and '<svg id="usage-month-api_calls"' in page
    assert '<svg id="usage-bar-seats"' in page and '<svg id="usage-month-seats"' not in page
    assert 'id="usage-bar-api_calls-projected"' in page  # 1,400 projected against 1,000
    assert 'id="usage-month-api_calls-forecast"' in page
    assert 'id="usage-month-api_calls-limit"' in page
    assert "77777" not in page and "77,777" not in page  # globex's day
    assert "<script" not in page


def test_a_daily_row_of_another_tenant_is_refused() -> None:
    with pytest.raises(ForeignRowError, match="daily usage rows"):
        tenant_statement(
            "acme",
            "2026-11",
            as_of=AS_OF,
            tenant=None,
            entitlement=None,
            usage=USAGE.iloc[0:0],
            findings=FINDINGS.iloc[0:0],
            daily=DAILY,
        )


def test_a_day_without_a_finite_figure_counts_as_no_use() -> None:
    daily = DAILY.assign(quantity=[100.0, float("inf"), None, 12.0, 9.0, 999.0, 77777.0])
    statement = tenant_statement(
        "acme",
        "2026-11",
        as_of=AS_OF,
        tenant=None,
        entitlement=None,
        usage=USAGE[USAGE["tenant_id"] == "acme"],
        findings=FINDINGS.iloc[0:0],
        catalog=CATALOG,
        daily=daily[daily["tenant_id"] == "acme"],
    )
    line = next(line for line in statement["usage"] if line["metric"] == "api_calls")
    assert [d["to_date"] for d in line["daily"]] == [100.0, 100.0, 100.0]
    page = render_html(statement)
    assert "inf" not in page.lower().replace("info", "") and "nan" not in page.lower()
