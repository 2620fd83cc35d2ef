"""Customer statements on small frames: one tenant's rows only, customer-facing fields only,
values escaped, and a folder name an id cannot steer."""

import json
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from licensing_pipeline.contract.catalog import Catalog, Metric, Package, Price
from licensing_pipeline.statements.resources import StatementFolder
from licensing_pipeline.statements.statement import (
    ForeignRowError,
    period_statements,
    render_html,
    render_json,
    statement_key,
    statement_periods,
    tenant_statement,
)

AS_OF = date(2026, 11, 20)
TENANTS = pd.DataFrame(
    {
        "tenant_id": ["acme", "globex"],
        "name": ["Acme <Rockets> & Co", "Globex"],
        "home_region": ["eu-west-1", "us-east-1"],
        "segment": ["enterprise", "smb"],
        "compliance_owner": ["owner@acme.example", "owner@globex.example"],
        "slack_channel": ["#acct-acme", "#acct-globex"],
    }
)
ENTITLEMENTS = pd.DataFrame(
    {
        "tenant_id": ["acme", "acme", "globex"],
        "period": ["2026-10", "2026-11", "2026-10"],
        "contract_id": ["C-1", "C-1", "C-2"],
        "contract_status": ["active", "active", "active"],
        "entitled": [True, True, True],
        "plan": ["growth", "growth", "starter"],
        "addons": ["extra_seats;audit_pack", "extra_seats;audit_pack", None],
        "features": ['["api_access", "sso"]', '["api_access", "sso"]', '["api_access"]'],
        "quotas": ['{"api_calls": 1000, "seats": 30}', '{"api_calls": 1000, "seats": 30}', "{}"],
        "segment": ["enterprise", "enterprise", "smb"],
    }
)
USAGE = pd.DataFrame(
    {
        "tenant_id": ["acme", "acme", "acme", "globex"],
        "metric": ["api_calls", "exports", "api_calls", "api_calls"],
        "period": ["2026-10", "2026-10", "2026-11", "2026-10"],
        "quantity": [1250.0, 12.0, 300.0, 99999.0],
        "events": [1250, 12, 300, 99999],
    }
)


def finding(tenant: str, check: str, subject: str, period: str, status: str, **extra: object):
    return {
        "finding_id": f"{tenant}-{check}-{subject}-{period}",
        "tenant_id": tenant,
        "check": check,
        "subject": subject,
        "period": period,
        "observed": 1250.0,
        "allowed": 1000.0,
        "severity": "critical",
        "action": "throttle",
        "status": status,
        "policy_version": "2026.11.0",
        "catalog_version": "2026-11-01",
        "first_detected_at": pd.Timestamp("2026-11-02 02:00:00"),
        "last_detected_at": pd.Timestamp("2026-11-20 02:00:00"),
        "details": "api_calls usage of 1,250 in 2026-10 is above the limit of 1,000.",
        **extra,
    }


FINDINGS = pd.DataFrame(
    [
        finding("acme", "quota_exceeded", "api_calls", "2026-10", "open"),
        finding(
            "acme", "feature_not_entitled", "<img src=x onerror=alert(1)>", "2026-10", "waived"
        ),
        finding("acme", "usage_anomaly", "api_calls", "2026-11-16", "open"),
        finding("globex", "residency_violation", "ap-south-1", "2026-10", "open"),
    ]
)


def acme(
    period: str = "2026-10", usage: pd.DataFrame = USAGE, findings: pd.DataFrame = FINDINGS
) -> dict:
    statements = period_statements(
        period,
        as_of=AS_OF,
        tenants=TENANTS,
        entitlements=ENTITLEMENTS,
        usage=usage,
        findings=findings,
    )
    return next(s for s in statements if s["tenant_id"] == "acme")


def test_usage_is_set_against_each_limit_of_the_month() -> None:
    lines = {line["metric"]: line for line in acme()["usage"]}
    assert lines["api_calls"] == {
        "metric": "api_calls",
        "used": 1250.0,
        "allowed": 1000.0,
        "share": 1.25,
        "projected": None,  # a closed month: no forecast
        "limit_reached_on": None,
        "daily": [],  # no usage_daily rows given
    }
    assert lines["seats"]["used"] == 0.0 and lines["seats"]["allowed"] == 30.0  # a limit, unused
    assert lines["exports"]["allowed"] is None and lines["exports"]["share"] is None  # no limit
    assert {line["metric"]: line["used"] for line in acme("2026-11")["usage"]}["api_calls"] == 300.0


def test_a_statement_holds_its_tenant_and_month_only() -> None:
    statement = acme()
    text = json.dumps(statement)
    for other in ("globex", "Globex", "99999", "ap-south-1", "C-2", "starter"):
        assert other not in text
    assert [f["check"] for f in statement["findings"]] == ["quota_exceeded", "feature_not_entitled"]
    # the day-period anomaly of November belongs to November's statement
    assert [f["check"] for f in acme("2026-11")["findings"]] == ["usage_anomaly"]
    assert statement["final"] and not acme("2026-11")["final"]


def test_internal_fields_never_reach_a_statement() -> None:
    text = json.dumps(acme()) + render_html(acme())
    for internal in ("owner@acme.example", "#acct-acme", "enterprise", "2026.11.0", "critical"):
        assert internal not in text
    open_one, waived = acme()["findings"]
    assert open_one["action"] == "throttle"  # what will happen is the customer's business
    assert waived["action"] is None  # a waived finding has no consequence to show


def test_rows_of_another_tenant_are_refused_not_rendered() -> None:
    with pytest.raises(ForeignRowError, match="1 row"):
        tenant_statement(
            "acme",
            "2026-10",
            as_of=AS_OF,
            tenant=None,
            entitlement=None,
            usage=USAGE,  # acme's rows and one of globex
            findings=FINDINGS[FINDINGS["tenant_id"] == "acme"],
        )
    with pytest.raises(ForeignRowError):
        tenant_statement(
            "acme",
            "2026-10",
            as_of=AS_OF,
            tenant=TENANTS.iloc[1].to_dict(),
            entitlement=None,
            usage=USAGE.iloc[0:0],
            findings=FINDINGS.iloc[0:0],
        )


def test_every_value_is_escaped_in_the_page() -> None:
    page = render_html(acme())
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Acme &lt;Rockets&gt; &amp; Co" in page
    assert "<script" not in page


def test_a_tenant_without_a_contract_gets_a_statement_that_says_so() -> None:
    statements = period_statements(
        "2026-11",
        as_of=AS_OF,
        tenants=TENANTS,
        entitlements=ENTITLEMENTS,
        usage=USAGE,
        findings=FINDINGS,
    )
    globex = next(s for s in statements if s["tenant_id"] == "globex")
    assert globex["contract"] is None and globex["usage"] == [] and globex["findings"] == []
    assert "No contract was in force" in render_html(globex)


def test_the_folder_name_cannot_be_steered_by_the_tenant_id(tmp_path: Path) -> None:
    assert statement_key("t-0001") == "t-0001"
    for hostile in ("../../etc", "a/b", "..", ".hidden", "x" * 200, "name with space"):
        key = statement_key(hostile)
        assert key.startswith("tenant-") and "/" not in key and ".." not in key
    folder = StatementFolder(directory=str(tmp_path / "statements"))
    page = folder.publish({**acme(), "tenant_id": "../../outside"})
    assert page.resolve().is_relative_to((tmp_path / "statements").resolve())
    assert json.loads(page.with_suffix(".json").read_text())["tenant_id"] == "../../outside"


def test_the_nightly_statements_cover_last_month_and_this_month() -> None:
    assert statement_periods(date(2026, 11, 20)) == ["2026-10", "2026-11"]
    assert statement_periods(date(2026, 1, 1)) == ["2025-12", "2026-01"]


def test_a_contract_that_does_not_cover_the_month_sets_no_limits() -> None:
    paused = ENTITLEMENTS.assign(contract_status="paused", entitled=False)
    statement = next(
        s
        for s in period_statements(
            "2026-10",
            as_of=AS_OF,
            tenants=TENANTS,
            entitlements=paused,
            usage=USAGE,
            findings=FINDINGS,
        )
        if s["tenant_id"] == "acme"
    )
    assert statement["contract"]["status"] == "paused"
    assert not statement["contract"]["covers_the_month"]
    assert [line["allowed"] for line in statement["usage"]] == [None, None]  # no seats line
    page = render_html(statement)
    assert "Your contract is paused for this month: it covers no usage." in page
    assert "not covered" in page and "no limit" not in page
    assert acme()["contract"]["addons"] == ["audit_pack", "extra_seats"]


def test_a_figure_that_is_not_finite_never_reaches_the_customer() -> None:
    """JSON has no infinity (json.dumps would write the invalid ``Infinity``), and no
    customer may read 'inf' or 'nan'."""
    usage = USAGE.assign(quantity=[float("inf"), 12.0, 300.0, 99999.0])
    findings = pd.DataFrame(
        [finding("acme", "quota_exceeded", "api_calls", "2026-10", "open", observed=float("nan"))]
    )
    statement = acme(usage=usage, findings=findings)
    # A tenant with usage and no contract: the warehouse row's contract_id and plan are NaN.
    uncontracted = tenant_statement(
        "acme",
        "2026-10",
        as_of=AS_OF,
        tenant=None,
        entitlement={
            **ENTITLEMENTS.iloc[0].to_dict(),
            "contract_id": float("nan"),
            "plan": float("nan"),
            "contract_status": "none",
            "entitled": False,
        },
        usage=USAGE[USAGE["tenant_id"] == "acme"],
        findings=FINDINGS.iloc[0:0],
    )
    for each in (statement, uncontracted):
        parsed = json.loads(
            render_json(each), parse_constant=lambda name: pytest.fail(f"{name} in the JSON")
        )
        assert not re.search(r"\b(inf|nan)\b", render_html(each), re.IGNORECASE)
    assert parsed["contract"]["contract_id"] is None and parsed["contract"]["plan"] is None
    assert statement["usage"][0]["used"] is None and statement["findings"][0]["observed"] is None


def test_statements_are_the_owners_only_unless_shared_on_purpose(tmp_path: Path) -> None:
    root = tmp_path / "statements"
    page = StatementFolder(directory=str(root)).publish(acme())
    modes = {
        p: p.stat().st_mode & 0o777 for p in (root, page.parent, page, page.with_suffix(".json"))
    }
    assert modes == {root: 0o700, page.parent: 0o700, page: 0o600, page.with_suffix(".json"): 0o600}

    root.chmod(0o2755)  # an earlier release's folder, now given a group to share with
    shared = StatementFolder(directory=str(root), file_mode=0o640).publish(acme())
    assert root.stat().st_mode & 0o7777 == 0o2750  # the group keeps passing on
    assert shared.parent.stat().st_mode & 0o777 == 0o750
    assert shared.stat().st_mode & 0o777 == 0o640  # unchanged content, mode still set


def tier_catalog(priced: bool = True) -> Catalog:
    def price(amount: float) -> Price | None:
        return Price(amount, "USD") if priced else None

    metric = Metric("api_calls", "api.request", "COUNT")
    seats = Metric("seats", "auth.login", "UNIQUE_COUNT", "user_id")
    plans = {
        "starter": Package("starter", ("api_access",), {"api_calls": 100, "seats": 5}, price(10)),
        "scale": Package("scale", ("api_access", "sso", "sandbox"), {"seats": 100}, price(400)),
        "growth": Package(
            "growth", ("api_access", "sso"), {"api_calls": 1000, "seats": 30}, price(100)
        ),
    }
    addons = {"extra_seats": Package("extra_seats", (), {"seats": 10}, price(20))}
    features = ("api_access", "sso", "sandbox")
    metrics = {"api_calls": metric, "seats": seats}
    return Catalog("v1", {}, features, metrics, plans, addons)


def test_the_tier_shows_what_it_includes_and_what_the_next_plan_adds() -> None:
    statements = period_statements(
        "2026-10",
        as_of=AS_OF,
        tenants=TENANTS,
        entitlements=ENTITLEMENTS,
        usage=USAGE,
        findings=FINDINGS,
        catalog=tier_catalog(),
    )
    tier = next(s for s in statements if s["tenant_id"] == "acme")["tier"]
    assert tier["plan"] == {
        "name": "growth",
        "features": ["api_access", "sso"],
        "quotas": {"api_calls": 1000, "seats": 30},
        "price": {"amount": 100.0, "currency": "USD", "per": "month"},
    }
    assert [a["name"] for a in tier["addons"]] == ["extra_seats"]  # audit_pack: not in catalog
    following = tier["next"]
    assert following["name"] == "scale" and following["adds_features"] == ["sandbox"]
    assert following["raises"] == [
        {"metric": "api_calls", "from": 1000, "to": None},
        {"metric": "seats", "from": 30, "to": 100},
    ]
    assert following["price_difference"] == 300.0
    page = render_html(next(s for s in statements if s["tenant_id"] == "acme"))
    assert "<h2>Your tier</h2>" in page
    assert (
        "The next plan, <strong>scale</strong>, adds the features sandbox; api_calls with no "
        "limit (now 1,000); seats up to 100 (now 30). It costs 300 USD more per month." in page
    )
    globex = next(s for s in statements if s["tenant_id"] == "globex")["tier"]
    assert globex["next"]["name"] == "growth"  # the cheapest dearer plan, not the largest


def test_without_prices_the_next_tier_is_the_smallest_plan_that_includes_more() -> None:
    catalog = tier_catalog(priced=False)
    assert catalog.next_plan("starter").name == "growth"
    assert catalog.next_plan("growth").name == "scale"
    assert catalog.next_plan("scale") is None
    statement = tenant_statement(
        "acme",
        "2026-10",
        as_of=AS_OF,
        tenant=None,
        entitlement=ENTITLEMENTS.iloc[0].to_dict(),
        usage=USAGE[USAGE["tenant_id"] == "acme"],
        findings=FINDINGS[FINDINGS["tenant_id"] == "acme"],
        catalog=catalog,
    )
    assert statement["tier"]["next"]["price_difference"] is None
    assert "price on request" in render_html(statement)
