"""The dashboard's figures over time: open findings per run from the finding history (read
back from the repository on both profiles), leakage priced at the billed unit price, tickets,
data quality and risk."""

from datetime import date, datetime

import pandas as pd
import pytest

from licensing_pipeline.dashboard.page import dashboard_summary, leakage_totals, render_dashboard
from licensing_pipeline.dashboard.trends import (
    dashboard_trends,
    leakage,
    open_over_runs,
    pass_rate,
    remediation_days,
    tenant_risk,
    tickets_by_day,
)
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline_tests.dashboard.test_page import AS_OF, RUNS, findings
from licensing_pipeline_tests.statements.test_statement import finding

BILLING = pd.DataFrame(
    {
        "invoice_id": ["I-1", "I-2", "I-3"],
        "tenant_id": ["acme", "acme", "globex"],
        "period": ["2026-09", "2026-10", "2026-09"],
        "metric": ["api_calls", "api_calls", "exports"],
        "billed_quantity": [1000.0, 800.0, 10.0],
        "amount": [50.0, 48.0, 20.0],
        "currency": ["EUR", "EUR", "USD"],
    }
)


def unbilled(tenant: str, subject: str, period: str, observed: float, billed: float) -> dict:
    return finding(
        tenant, "unbilled_usage", subject, period, "open", observed=observed, allowed=billed
    )


def test_leakage_is_the_unbilled_quantity_at_the_billed_unit_price() -> None:
    frame = pd.DataFrame(
        [
            unbilled("acme", "api_calls", "2026-10", 1300.0, 800.0),  # Oct's own price: 0.06
            unbilled("acme", "api_calls", "2026-11", 500.0, 0.0),  # none in Nov: Oct's, latest
            unbilled("globex", "exports", "2026-10", 15.0, 0.0),  # Sep's: 2.00 USD
            unbilled("initech", "seats", "2026-10", 40.0, 0.0),  # never billed: not priced
            {**unbilled("acme", "exports", "2026-10", 9.0, 0.0), "status": "waived"},
        ]
    )
    rows = leakage(frame, BILLING)
    assert len(rows) == 4  # the waived one is no leakage
    amounts = dict(zip(rows["tenant_id"] + "/" + rows["period"], rows["amount"], strict=True))
    assert amounts["acme/2026-10"] == pytest.approx(500 * 0.06)
    assert amounts["acme/2026-11"] == pytest.approx(500 * 0.06)
    assert amounts["globex/2026-10"] == pytest.approx(15 * 2.0)
    assert pd.isna(amounts["initech/2026-10"])
    assert leakage_totals(rows) == {"EUR": 60.0, "USD": 30.0}


def test_open_findings_per_run_follow_each_findings_latest_history_row() -> None:
    runs = pd.DataFrame(
        {
            "run_id": ["r1", "r2", "r3"],
            "as_of": [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 19)],
            "finished_at": pd.to_datetime(
                ["2026-11-18 02:00", "2026-11-19 02:00", "2026-11-19 09:30"]
            ),
        }
    )

    def row(i: int, finding_id: str, run: str, status: str, check: str = "quota_exceeded"):
        return {
            "history_id": i,
            "finding_id": finding_id,
            "run_id": run,
            "status": status,
            "check": check,
            "severity": "critical" if check == "quota_exceeded" else "info",
        }

    history = pd.DataFrame(
        [
            row(0, "b", "r0", "open", "quota_near_limit"),  # a run before those shown
            row(1, "a", "r1", "open"),
            row(2, "a", "r2", "resolved"),
            row(3, "c", "r3", "open"),
        ]
    )
    by_check = open_over_runs(history, runs, "check")
    # two runs on the 19th: told apart by their time
    assert list(by_check.index) == ["2026-11-18", "2026-11-19 02:00", "2026-11-19 09:30"]
    assert by_check["quota_exceeded"].tolist() == [1, 0, 1]
    assert by_check["quota_near_limit"].tolist() == [1, 1, 1]
    by_severity = open_over_runs(history, runs, "severity")
    assert list(by_severity.columns) == ["critical", "info"]  # heaviest first


def test_tickets_remediation_time_quality_and_risk() -> None:
    tickets = pd.DataFrame(
        {
            "severity": ["critical", "critical", "warning", "info"],
            "opened_at": pd.to_datetime(
                ["2026-11-01 02:00", "2026-11-01 02:00", "2026-11-02 02:00", "2026-11-02 02:00"]
            ),
            "closed_at": pd.to_datetime(["2026-11-03 02:00", "2026-11-05 02:00", None, None]),
        }
    )
    days = tickets_by_day(tickets)
    assert days.to_dict("index") == {
        "2026-11-01": {"opened": 2, "closed": 0},
        "2026-11-02": {"opened": 2, "closed": 0},
        "2026-11-03": {"opened": 0, "closed": 1},
        "2026-11-05": {"opened": 0, "closed": 1},
    }
    assert remediation_days(tickets)["median days"].to_dict() == {"critical": 3.0}
    report = pd.DataFrame(
        {
            "run_id": ["r1", "r1", "r2", "r2"],
            "as_of": [date(2026, 11, 18)] * 2 + [date(2026, 11, 19)] * 2,
            "asset": ["usage", "billing"] * 2,
            "check_name": ["a", "b", "a", "b"],
            "outcome": ["pass", "warn", "pass", "pass"],
            "evaluated_at": [datetime(2026, 11, 18, 2), datetime(2026, 11, 18, 2)]
            + [datetime(2026, 11, 19, 2)] * 2,
        }
    )
    assert pass_rate(report)["pass rate"].tolist() == [50.0, 100.0]  # oldest run first
    risk = tenant_risk(findings())
    # globex: critical + warning = 12; acme: critical + info = 10; initech: info = 1
    assert risk["risk"].to_dict() == {"globex": 12, "acme": 10, "initech": 1}


def test_the_page_shows_the_leakage_total_and_a_chart_per_figure() -> None:
    frame = pd.concat(
        [findings(), pd.DataFrame([unbilled("acme", "api_calls", "2026-10", 1300.0, 800.0)])]
    )
    frame["severity"] = frame["severity"].fillna("warning")
    frame["action"] = frame["action"].fillna("notify")
    history = frame.assign(history_id=range(len(frame)), run_id=RUNS["run_id"].iloc[-1])
    trends = dashboard_trends(
        history=history,
        runs=RUNS,
        findings=frame,
        billing_records=BILLING,
        tickets=pd.DataFrame(columns=["severity", "opened_at", "closed_at"]),
        quality_report=pd.DataFrame(
            columns=["run_id", "as_of", "asset", "check_name", "outcome", "evaluated_at"]
        ),
    )
    summary = dashboard_summary(frame, RUNS, AS_OF)
    page = render_dashboard(summary, trends=trends)
    assert (
        '<div class="kpi" id="leakage-total"><span>Revenue leakage</span><b>30.00 EUR</b>' in page
    )
    for chart in ("open-by-check", "open-by-severity", "leakage", "tenant-risk"):
        assert f'<svg id="chart-{chart}"' in page
    for empty in ("tickets", "remediation", "dq-pass-rate"):  # no data yet: said so
        assert f'id="{empty}-none"' in page and f'id="chart-{empty}"' not in page
    assert "amount in EUR</text>" in page  # the leakage chart says its currency
    assert "<script" not in page


def test_the_history_is_read_back_from_the_repository(repository_url: str) -> None:
    repository = LicensingRepository(database_url=repository_url)
    frame = pd.DataFrame([finding("acme", "quota_exceeded", "api_calls", "2026-10", "open")])
    frame["finding_id"], frame["severity"], frame["action"] = "f-acme-1", "critical", "throttle"
    for run_id, status in (("r1", "open"), ("r2", "resolved")):
        repository.save_findings(
            frame.assign(status=status),
            run_id=run_id,
            as_of=AS_OF,
            policy_version="2026.11.0",
            catalog_version="2026-11-01",
        )
    history = repository.load_finding_history()
    assert history["status"].tolist() == ["open", "resolved"]
    runs = repository.load_finding_runs()
    counts = open_over_runs(history, runs, "check")
    # what the history says was open after each run is what the run counted
    assert counts.sum(axis=1).tolist() == runs["open_findings"].tolist() == [1, 0]
