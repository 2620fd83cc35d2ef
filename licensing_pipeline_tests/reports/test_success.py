"""Success metrics against hand counts: a small contract history (one renewal, upgrade,
downgrade, pause and cancellation), hand-made tickets and unbilled findings; the asset on
both repository databases, and its migration up and down."""

import html
from datetime import date, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from licensing_pipeline.dashboard.page import dashboard_summary, render_dashboard, success_summary
from licensing_pipeline.definitions import defs
from licensing_pipeline.remediation.tables import remediation_tickets, ticket_history
from licensing_pipeline.reports.assets import success_metrics
from licensing_pipeline.reports.store import load_success_metrics, metric_rows
from licensing_pipeline.reports.success import (
    LEAKAGE_COLUMNS,
    MOVEMENT_COLUMNS,
    RESPONSE_COLUMNS,
    contract_movements,
    incident_response,
    leakage,
)
from licensing_pipeline.repository import schema
from licensing_pipeline.repository.engines import shared_engine
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.repository.tables import compliance_findings
from licensing_pipeline.run_config import RunSettings
from licensing_pipeline_tests.dashboard.test_page import AS_OF as PAGE_AS_OF
from licensing_pipeline_tests.dashboard.test_page import RUNS, findings
from licensing_pipeline_tests.remediation.test_suggestions import catalog
from licensing_pipeline_tests.statements.test_statement import finding
from licensing_pipeline_tests.statements.test_statement_page import HOSTILE

AS_OF = date(2026, 11, 30)


def contract(cid: str, tenant: str, plan: str, start: str, end: str | None, status="active"):
    return {
        "contract_id": cid,
        "tenant_id": tenant,
        "plan": plan,
        "addons": "",
        "quota_overrides": "{}",
        "start_date": pd.Timestamp(start),
        "end_date": pd.Timestamp(end) if end else pd.NaT,
        "status": status,
        "enforcement": "soft",
    }


CONTRACTS = pd.DataFrame(
    [
        # renewed on the same plan: ended in September, renewed in September
        contract("c1", "renew", "basic", "2025-10-01", "2026-09-30"),
        contract("c2", "renew", "basic", "2026-10-01", "2027-09-30"),
        # basic → pro mid-term: an upgrade in October, not an ended contract
        contract("c3", "up", "basic", "2026-01-01", "2026-10-14"),
        contract("c4", "up", "pro", "2026-10-15", None),
        # max → pro: a downgrade in November
        contract("c5", "down", "max", "2026-01-01", "2026-10-31"),
        contract("c6", "down", "pro", "2026-11-01", None),
        # ended in September, paused from October
        contract("c7", "pause", "pro", "2026-01-01", "2026-09-30"),
        contract("c8", "pause", "pro", "2026-10-01", None, "paused"),
        # ended in October, cancelled from November
        contract("c9", "cancel", "basic", "2026-01-01", "2026-10-31"),
        contract("c10", "cancel", "basic", "2026-11-01", "2027-10-31", "cancelled"),
        # ends after as-of: not ended yet
        contract("c11", "later", "pro", "2026-01-01", "2026-12-31"),
    ]
)


@pytest.mark.parametrize("priced", [True, False], ids=["by-price", "by-quota"])
def test_contract_movements_match_the_hand_counts(priced: bool) -> None:
    out = contract_movements(CONTRACTS, catalog(priced), AS_OF).set_index("period")
    assert list(out.index) == ["2026-09", "2026-10", "2026-11"]
    counts = out.drop(columns="renewal_rate").to_dict("index")
    none = {"upgrades": 0, "downgrades": 0, "pauses": 0, "cancellations": 0}
    assert counts["2026-09"] == {**none, "ended": 2, "renewals": 1}
    assert counts["2026-10"] == {**none, "ended": 1, "renewals": 0, "upgrades": 1, "pauses": 1}
    assert counts["2026-11"] == {
        **none,
        "ended": 0,
        "renewals": 0,
        "downgrades": 1,
        "cancellations": 1,
    }
    assert out.loc["2026-09", "renewal_rate"] == 0.5
    assert out.loc["2026-10", "renewal_rate"] == 0.0
    assert pd.isna(out.loc["2026-11", "renewal_rate"])  # nothing ended: no rate


def test_a_contract_starting_the_day_after_a_gap_is_no_renewal() -> None:
    gap = pd.DataFrame(
        [
            contract("a", "t", "basic", "2026-01-01", "2026-06-30"),
            contract("b", "t", "basic", "2026-07-02", None),
        ]
    )
    out = contract_movements(gap, catalog(), AS_OF)
    assert out.to_dict("records") == [
        {
            "period": "2026-06",
            "ended": 1,
            "renewals": 0,
            "renewal_rate": 0.0,
            "upgrades": 0,
            "downgrades": 0,
            "pauses": 0,
            "cancellations": 0,
        }
    ]


DETECTED = datetime(2026, 11, 2, 2, 0)


def response_inputs() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    found = pd.DataFrame(
        [
            {"finding_id": f"f{i}", "first_detected_at": DETECTED + timedelta(days=i)}
            for i in range(1, 6)
        ]
    )
    tickets = pd.DataFrame(
        {
            "ticket_id": [1, 2, 3, 4, 5],
            "finding_id": ["f1", "f2", "f3", "f4", "f5"],
            "severity": ["critical", "critical", "critical", "warning", "warning"],
        }
    )
    # (ticket, hours after its detection, status reached)
    events = [
        (1, 1, "open"),
        (1, 2, "acknowledged"),
        (1, 10, "resolved"),
        (1, 20, "open"),  # reopened and acknowledged again: the first one counts
        (1, 30, "acknowledged"),
        (2, 1, "open"),
        (2, 4, "acknowledged"),
        (2, 20, "resolved"),
        (3, 1, "open"),
        (3, 6, "acknowledged"),  # not resolved yet
        (4, 1, "open"),
        (4, 5, "resolved"),  # resolved with no acknowledgement
        (5, 1, "open"),
        (5, 3, "wont_fix"),  # neither
    ]
    history = pd.DataFrame(
        [
            {"ticket_id": t, "at": DETECTED + timedelta(days=t, hours=h), "to_status": s}
            for t, h, s in events
        ]
    )
    return tickets, history, found


def test_incident_response_hours_by_severity() -> None:
    out = incident_response(*response_inputs())
    rows = out.set_index("severity").to_dict("index")
    critical, warning = rows["critical"], rows["warning"]
    assert (critical["period"], critical["incidents"]) == ("2026-11", 3)
    assert (critical["acknowledged"], critical["resolved"]) == (3, 2)
    # acknowledged after 2, 4, 6 hours; resolved after 10, 20
    assert (critical["ack_median_hours"], critical["ack_p90_hours"]) == (4.0, 5.6)
    assert (critical["resolve_median_hours"], critical["resolve_p90_hours"]) == (15.0, 19.0)
    assert (warning["incidents"], warning["acknowledged"], warning["resolved"]) == (2, 0, 1)
    assert pd.isna(warning["ack_median_hours"])
    assert warning["resolve_median_hours"] == warning["resolve_p90_hours"] == 5.0


def test_tickets_none_of_which_is_acknowledged_or_resolved_yet_count_without_hours() -> None:
    tickets, history, found = response_inputs()
    opened = history[history["to_status"] == "open"]  # the first night after remediation
    out = incident_response(tickets, opened, found)
    assert out["incidents"].sum() == 5
    assert (out["acknowledged"] == 0).all() and (out["resolved"] == 0).all()
    assert out[["ack_median_hours", "resolve_p90_hours"]].isna().all().all()
    assert len(metric_rows(pd.DataFrame(), out, pd.DataFrame())) > 0


def unbilled(tenant: str, metric: str, observed: float, billed: float, status: str = "open"):
    return finding(
        tenant, "unbilled_usage", metric, "2026-10", status, observed=observed, allowed=billed
    )


LEAK_FINDINGS = pd.DataFrame(
    [
        # 200 unbilled at 0.10; a later correcting invoice billed 100 of them
        unbilled("acme", "api_calls", 1000, 800),
        # 100 unbilled at 0.20; resolved: billing caught up
        unbilled("globex", "api_calls", 600, 500, "resolved"),
        # 50 unbilled, priced from the latest earlier month (0.50); nothing billed since
        unbilled("initech", "storage_gb", 50, 0),
        # no price on record for seats: counted, no amount
        unbilled("umbrella", "seats", 12, 10),
        # overbilled is no leakage
        finding("acme", "overbilled_usage", "storage_gb", "2026-10", "open"),
    ]
)


def billing(invoice: str, tenant: str, period: str, metric: str, quantity: float, amount: float):
    return {
        "invoice_id": invoice,
        "tenant_id": tenant,
        "period": period,
        "metric": metric,
        "billed_quantity": quantity,
        "amount": amount,
        "currency": "USD",
    }


BILLING = pd.DataFrame(
    [
        billing("A-1", "acme", "2026-10", "api_calls", 800, 80.0),
        billing("A-2", "acme", "2026-10", "api_calls", 100, 10.0),
        billing("G-1", "globex", "2026-10", "api_calls", 500, 100.0),
        billing("I-1", "initech", "2026-09", "storage_gb", 10, 5.0),
    ]
)


def test_leakage_found_and_recovered_match_the_hand_sums() -> None:
    out = leakage(LEAK_FINDINGS, BILLING).set_index("currency").to_dict("index")
    # found: 200 × 0.10 + 100 × 0.20 + 50 × 0.50; recovered: 100 × 0.10 + 100 × 0.20
    assert out["USD"] == {
        "period": "2026-10",
        "findings": 3,
        "unpriced": 0,
        "found_amount": 65.0,
        "recovered_amount": 30.0,
    }
    assert (out[""]["findings"], out[""]["unpriced"], out[""]["found_amount"]) == (1, 1, 0.0)


def test_the_dashboard_leakage_total_is_the_sum_of_unbilled_amounts() -> None:
    leak = leakage(LEAK_FINDINGS, BILLING)
    rows = metric_rows(
        contract_movements(CONTRACTS, catalog(), AS_OF),
        incident_response(*response_inputs()),
        leak,
    )
    success = success_summary(rows)
    usd = next(r for r in success["leakage"] if r["currency"] == "USD")
    assert usd["found"] == leak["found_amount"].sum() == 65.0
    assert usd["recovered"] == 30.0
    summary = {**dashboard_summary(findings(), RUNS, PAGE_AS_OF), "success": success}
    page = render_dashboard(summary)
    assert "<h2>Success metrics</h2>" in page
    assert (
        '<td>USD</td><td class="n">3</td><td class="n">65.00</td><td class="n">30.00</td>' in page
    )
    assert '<td>2026-09</td><td class="n">2</td><td class="n">1</td><td class="n">50%</td>' in page
    assert "<td>critical</td>" in page


# --- the asset, on both repository databases ----------------------------------------------


@pytest.fixture
def engine(repository_url: str):
    engine = shared_engine(repository_url)
    schema.upgrade(engine)
    yield engine
    engine.dispose()


def ticket_row(ticket_id: int, finding_id: str, severity: str) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "finding_id": finding_id,
        "tenant_id": "acme",
        "check": "quota_exceeded",
        "subject": "api_calls",
        "period": "2026-10",
        "severity": severity,
        "action": "notify",
        "details": "",
        "owner": "ops",
        "channel": "#c",
        "escalation_channel": "#e",
        "status": "resolved",
        "status_reason": "",
        "cycle": 1,
        "opened_at": DETECTED,
        "due_date": date(2026, 11, 9),
        "updated_at": DETECTED,
        "sink_status": "disabled",
        "sink_attempts": 0,
    }


def seed(engine: sa.Engine) -> None:
    tickets, history, _ = response_inputs()
    rows = [
        {**r, "first_detected_at": DETECTED + timedelta(days=i)}
        for i, r in enumerate(LEAK_FINDINGS.to_dict("records"), start=1)
    ]
    for row, fid in zip(rows, ["f1", "f2", "f3", "f4", "f5"], strict=True):
        row["finding_id"] = fid
    with engine.begin() as con:
        con.execute(sa.insert(compliance_findings), rows)
        con.execute(
            sa.insert(remediation_tickets),
            [ticket_row(*r) for r in tickets.itertuples(index=False)],
        )
        con.execute(
            sa.insert(ticket_history),
            [{**r, "actor": "pipeline", "event": "status"} for r in history.to_dict("records")],
        )


def materialize(repository_url: str, contracts: pd.DataFrame) -> dg.ExecuteInProcessResult:
    @dg.asset(name="contracts")
    def contracts_stub() -> pd.DataFrame:
        return contracts

    @dg.asset(name="catalog")
    def catalog_stub() -> pd.DataFrame:
        return catalog().to_frame()

    @dg.asset(name="billing_records")
    def billing_stub() -> pd.DataFrame:
        return BILLING

    return dg.materialize(
        [contracts_stub, catalog_stub, billing_stub, success_metrics],
        resources={
            "repository": LicensingRepository(database_url=repository_url),
            "run_settings": RunSettings(data_dir=".", as_of=AS_OF.isoformat()),
        },
    )


def test_the_asset_stores_the_months_and_shows_markdown_tables(
    engine: sa.Engine, repository_url: str
) -> None:
    seed(engine)
    result = materialize(repository_url, CONTRACTS)
    metadata = result.asset_materializations_for_node("success_metrics")[0].metadata
    assert metadata["leakage_found"].value == 65.0
    assert metadata["leakage_recovered"].value == 30.0
    for name, columns in (
        ("contract_movements", MOVEMENT_COLUMNS),
        ("incident_response", RESPONSE_COLUMNS),
        ("leakage", LEAKAGE_COLUMNS),
    ):
        header = metadata[name].value.splitlines()[0]
        assert [c.strip() for c in header.split("|")[1:-1]] == columns
    with engine.connect() as con:
        stored = load_success_metrics(con)
    value = stored.set_index(["period", "family", "dimension", "metric"])["value"]
    assert value[("2026-09", "contracts", "", "renewal_rate")] == 0.5
    assert value[("2026-10", "contracts", "", "upgrades")] == 1
    assert value[("2026-11", "incident_response", "critical", "ack_p90_hours")] == 5.6
    assert value[("2026-10", "leakage", "USD", "found_amount")] == 65.0
    assert pd.isna(value[("2026-11", "contracts", "", "renewal_rate")])

    # a later run replaces the months it computes and keeps the others
    later = CONTRACTS[CONTRACTS["tenant_id"] != "renew"]
    materialize(repository_url, later)
    with engine.connect() as con:
        again = load_success_metrics(con)
    assert len(again) == len(stored)
    value = again.set_index(["period", "family", "dimension", "metric"])["value"]
    assert value[("2026-09", "contracts", "", "renewals")] == 0
    assert value[("2026-09", "contracts", "", "ended")] == 1


def test_the_asset_is_in_the_nightly_job_and_feeds_the_dashboard() -> None:
    graph = defs.resolve_asset_graph()
    key = dg.AssetKey("success_metrics")
    assert graph.get(key).group_name == "reports"
    assert {dg.AssetKey(k) for k in ("contracts", "catalog", "billing_records")} <= set(
        graph.get(key).parent_keys
    )
    assert key in graph.get(dg.AssetKey("compliance_dashboard")).parent_keys
    nightly = defs.resolve_job_def("nightly_compliance")
    assert key in nightly.asset_layer.selected_asset_keys


def test_the_migration_goes_down_and_up(engine: sa.Engine) -> None:
    assert "success_metrics" in sa.inspect(engine).get_table_names()
    assert schema.downgrade(engine, "0010").current == "0010"
    assert "success_metrics" not in sa.inspect(engine).get_table_names()
    schema.upgrade(engine)
    assert "success_metrics" in sa.inspect(engine).get_table_names()


def test_the_success_section_shows_hostile_values_as_text() -> None:
    rows = pd.DataFrame(
        [
            {"period": "2026-11", "family": f, "dimension": HOSTILE, "metric": m, "value": 1.0}
            for f, m in (("incident_response", "incidents"), ("leakage", "found_amount"))
        ]
    )
    page = render_dashboard(
        {**dashboard_summary(findings(), RUNS, PAGE_AS_OF), "success": success_summary(rows)}
    )
    assert HOSTILE not in page
    assert page.count(html.escape(HOSTILE, quote=True)) == 2


def test_only_what_happened_by_as_of_counts() -> None:
    """A renewal signed for the end of this month, after as-of, is not in this month yet:
    the rate never counts a renewal whose ending it does not."""
    ahead = pd.DataFrame(
        [
            contract("a", "t", "basic", "2026-01-01", "2026-11-30"),
            contract("b", "t", "basic", "2026-12-01", None),
            contract("c", "u", "basic", "2026-01-01", "2026-11-24"),
            contract("d", "u", "pro", "2026-11-25", None),
        ]
    )
    assert contract_movements(ahead, catalog(), date(2026, 11, 20)).empty
    out = contract_movements(ahead, catalog(), date(2026, 11, 30))
    assert out[["period", "ended", "renewals", "renewal_rate", "upgrades"]].to_dict("records") == [
        {"period": "2026-11", "ended": 1, "renewals": 1, "renewal_rate": 1.0, "upgrades": 1}
    ]
