"""Suggested next steps: the cheapest plan or add-on that covers observed usage (by the same
grant rule entitlements use), invoice corrections priced from billing, customer wording with
no policy internals; and on the demo, on both profiles, every open quota and feature finding
gets a suggestion whose plan or add-on exists and covers the usage, carried by its ticket,
its Slack alert and `tickets show`."""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from licensing_pipeline import cli
from licensing_pipeline.compliance.entitlements import grant, parse_features, parse_quotas
from licensing_pipeline.contract.catalog import Catalog, Metric, Package, Price
from licensing_pipeline.contract.schemas import ACTIONS, CHECKS
from licensing_pipeline.policy.bundle import load_policy
from licensing_pipeline.remediation.store import alerts_of, ticket_records
from licensing_pipeline.remediation.suggestions import (
    CUSTOMER_LABEL,
    NO_PRICE,
    STEP_LABEL,
    Suggestion,
    SuggestionContext,
    forecast_projections,
    quota_need,
    suggested_action,
    suggestion_context,
    ticket_suggestions,
    upgrade_paths,
)
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.settings import DEFAULT_POLICY_PATH, load_settings
from licensing_pipeline_tests.backends import backend_environment, backend_variables
from licensing_pipeline_tests.postgres import fresh_database

USD = "USD"


def catalog(priced: bool = True) -> Catalog:
    def price(amount: float) -> Price | None:
        return Price(amount, USD) if priced else None

    metrics = {
        "seats": Metric("seats", "auth.login", "UNIQUE_COUNT", "user_id"),
        "api_calls": Metric("api_calls", "api.request", "COUNT"),
        "storage_gb": Metric("storage_gb", "storage.reported", "MAX", "gb"),
    }
    plans = {
        "basic": Package(
            "basic", ("api",), {"seats": 5, "api_calls": 1000, "storage_gb": 10}, price(10)
        ),
        "pro": Package(
            "pro", ("api", "sso"), {"seats": 20, "api_calls": 5000, "storage_gb": 100}, price(50)
        ),
        "max": Package(
            "max", ("api", "sso", "sandbox"), {"seats": 100, "storage_gb": 1000}, price(200)
        ),
    }
    addons = {
        "seats_5": Package("seats_5", (), {"seats": 5}, price(8)),
        "seats_20": Package("seats_20", (), {"seats": 20}, price(20)),
        "analytics": Package("analytics", ("analytics",), {}, price(30)),
        "sandbox_env": Package("sandbox_env", ("sandbox",), {}, price(25)),
    }
    features = ("api", "sso", "sandbox", "analytics")
    return Catalog("v1", {"us-east-1": "US"}, features, metrics, plans, addons)


def on(plan: str, addons: str = "", overrides: str | None = None) -> dict[str, Any]:
    return {"tenant_id": "t-1", "plan": plan, "addons": addons, "quota_overrides": overrides}


def covered(cat: Catalog, plan: str, addons: tuple[str, ...], overrides: Any) -> Any:
    """The grant of the resulting contract, computed as effective_entitlements computes it."""
    granted = grant(cat, plan, ";".join(addons), json.dumps(overrides))
    return parse_features(granted.features), parse_quotas(granted.quotas)


# --- upgrade paths -----------------------------------------------------------------------------


def test_the_cheapest_of_several_covering_options_comes_first():
    paths = upgrade_paths(catalog(), on("basic"), quotas={"seats": 12})
    described = [(p.describe(), p.price_difference) for p in paths]
    # 2 × seats_5 (16) beats 1 × seats_20 (20), then the plans by their price difference
    assert described == [("2 × seats_5", 16.0), ("plan pro", 40.0), ("plan max", 190.0)]
    _, quotas = covered(catalog(), "basic", paths[0].addons, paths[0].overrides)
    assert quotas["seats"] == 15 >= 12


def test_add_on_counts_cover_the_gap_with_the_fewest_units_at_equal_price():
    best = upgrade_paths(catalog(), on("basic"), quotas={"seats": 45})[0]
    assert best.addon_counts() == {"seats_20": 2}  # 5 × seats_5 costs the same 40
    assert covered(catalog(), "basic", best.addons, best.overrides)[1]["seats"] == 45


def test_a_feature_only_in_a_plan_proposes_the_cheapest_plan_that_has_it():
    suggestion = suggested_action(finding("feature_not_entitled", "sso"), context(on("basic")))
    assert suggestion.kind == "propose_plan" and suggestion.plan == "pro"
    assert suggestion.amount == 40.0 and suggestion.currency == USD
    assert "Propose plan pro" in suggestion.internal and "40.00 USD/month" in suggestion.internal
    assert "The pro plan covers it for 40.00 USD more per month" in suggestion.customer


def test_a_feature_in_an_add_on_and_a_plan_takes_the_cheaper_add_on():
    suggestion = suggested_action(finding("feature_not_entitled", "sandbox"), context(on("pro")))
    assert suggestion.kind == "offer_addon" and suggestion.addons == ("sandbox_env",)
    assert suggestion.amount == 25.0
    assert "Next option: plan max, 150.00 USD/month more" in suggestion.internal


def test_nothing_in_the_catalog_covers_and_the_suggestion_says_so():
    assert upgrade_paths(catalog(), on("basic"), quotas={"storage_gb": 5000}) == []
    suggestion = suggested_action(
        finding("quota_exceeded", "storage_gb", observed=5000, allowed=10), context(on("basic"))
    )
    assert suggestion.kind == "no_catalog_option" and suggestion.plan is None
    assert "No plan or add-on in the catalog covers storage_gb at 5,000" in suggestion.internal


def test_a_plan_change_never_takes_away_a_feature_or_sets_a_limit():
    paths = upgrade_paths(catalog(), on("max"), quotas={"seats": 150})
    assert paths and {p.plan for p in paths} == {"max"}  # pro and basic would limit api_calls
    assert upgrade_paths(catalog(), on("max"), features=["analytics"])[0].describe() == (
        "1 × analytics"
    )


def test_an_override_on_the_metric_in_need_is_replaced_by_the_upgrade():
    best = upgrade_paths(catalog(), on("basic", overrides='{"seats": 8}'), quotas={"seats": 12})[0]
    assert best.dropped_overrides == ("seats",) and best.overrides == {}
    assert covered(catalog(), best.plan, best.addons, best.overrides)[1]["seats"] >= 12
    suggestion = suggested_action(
        finding("quota_exceeded", "seats", observed=12, allowed=8),
        context(on("basic", overrides='{"seats": 8}')),
    )
    assert "replaces the contract's override on seats" in suggestion.internal


def test_without_prices_the_smallest_change_comes_first_and_says_the_price_is_unknown():
    unpriced = catalog(priced=False)
    paths = upgrade_paths(unpriced, on("basic"), quotas={"seats": 12})
    assert paths[0].plan_changed is False and paths[0].price_difference is None
    ctx = SuggestionContext(
        catalog=unpriced, last_full_month="2026-10", current={"t-1": on("basic")}
    )
    suggestion = suggested_action(finding("quota_exceeded", "seats", observed=12), ctx)
    assert NO_PRICE in suggestion.internal and suggestion.amount is None
    assert "USD" not in suggestion.customer


def test_a_current_contract_that_already_covers_says_no_offer_is_needed():
    suggestion = suggested_action(
        finding("quota_exceeded", "seats", observed=12, allowed=5), context(on("pro"))
    )
    assert suggestion.kind == "no_change" and suggestion.plan == "pro"


# --- what the need is --------------------------------------------------------------------------


def test_the_need_is_the_larger_of_the_finding_the_last_full_month_and_a_projection():
    ctx = context(on("basic"), usage={("t-1", "seats", "2026-10"): 14.0})
    exceeded = finding("quota_exceeded", "seats", observed=9, allowed=5)
    assert quota_need(exceeded, ctx) == 14.0
    assert quota_need(exceeded, ctx, projected=30.0) == 30.0
    near = finding("quota_near_limit", "seats", observed=9, allowed=10)
    assert quota_need(near, context(on("basic"))) == 12.0  # below the 0.8 warning ratio
    projected = suggested_action(exceeded, ctx, projected=30.0)
    assert covered(catalog(), "basic", projected.addons, {})[1]["seats"] >= 30


def test_the_forecast_of_the_findings_month_from_the_warehouse_joins_the_need():
    forecasts = pd.DataFrame(
        {
            "tenant_id": ["t-1", "t-1", "t-2"],
            "metric": ["seats", "seats", "seats"],
            "period": ["2026-11", "2026-10", "2026-11"],
            "projected_total": [40.0, None, 90.0],
        }
    )
    ctx = replace(context(on("basic")), projections=forecast_projections(forecasts))
    assert ctx.projections == {("t-1", "seats", "2026-11"): 40.0, ("t-2", "seats", "2026-11"): 90.0}
    running = finding("quota_exceeded", "seats", observed=9, allowed=5, period="2026-11")
    assert quota_need(running, ctx) == 40.0  # the month's projection, this tenant's
    closed = finding("quota_exceeded", "seats", observed=9, allowed=5, period="2026-10")
    assert quota_need(closed, ctx) == 9.0  # no projection for a closed month
    step = suggested_action(running, ctx)
    assert covered(catalog(), "basic", step.addons, {})[1]["seats"] >= 40


# --- billing, renewals, configuration, residency, anomalies ---------------------------------------


def test_unbilled_usage_is_priced_at_the_tenants_billed_unit_price():
    ctx = context(on("basic"), unit_prices={("t-1", "api_calls", "2026-10"): (0.5, "EUR")})
    suggestion = suggested_action(
        finding("unbilled_usage", "api_calls", observed=1000, allowed=800), ctx
    )
    assert suggestion.kind == "correct_invoice"
    assert (suggestion.amount, suggestion.currency) == (100.0, "EUR")
    assert "200 × 0.50 EUR = 100.00 EUR" in suggestion.internal
    assert "corrected invoice for the difference of 100.00 EUR" in suggestion.customer
    later = finding("unbilled_usage", "api_calls", observed=10, allowed=0, period="2026-11")
    assert suggested_action(later, ctx).amount == 5.0  # the latest billed price


def test_overbilled_usage_gets_a_credit_note_and_an_unknown_price_is_said():
    credit = suggested_action(
        finding("overbilled_usage", "seats", observed=3, allowed=6),
        context(on("basic"), unit_prices={("t-1", "seats", "2026-10"): (15.0, USD)}),
    )
    assert credit.kind == "credit_note" and credit.amount == 45.0
    unpriced = suggested_action(
        finding("unbilled_usage", "seats", observed=9, allowed=6), context(on("basic"))
    )
    assert unpriced.amount is None and "no billed unit price" in unpriced.internal


def test_every_other_check_has_its_own_next_step():
    ctx = context(on("basic"))
    ctx.entitlements[("t-1", "2026-10")] = {
        "contract_id": "C-9",
        "contract_status": "paused",
        "plan": "pro",
    }
    kinds = {
        check: suggested_action(finding(check, subject), ctx)
        for check, subject in [
            ("inactive_contract_usage", "contract"),
            ("config_feature_not_entitled", "sso"),
            ("config_quota_mismatch", "seats"),
            ("residency_violation", "eu-west-1"),
            ("usage_anomaly", "api_calls"),
        ]
    }
    assert {c: s.kind for c, s in kinds.items()} == {
        "inactive_contract_usage": "renewal_outreach",
        "config_feature_not_entitled": "fix_config",
        "config_quota_mismatch": "fix_config",
        "residency_violation": "residency",
        "usage_anomaly": "check_with_customer",
    }
    assert "contract C-9 (paused, plan pro)" in kinds["inactive_contract_usage"].internal
    assert "Deployment d-1 limits" in kinds["config_quota_mismatch"].internal


# --- no policy internals in what the customer reads ---------------------------------------------


def leaks(text: str) -> list[str]:
    """Policy internals in customer wording: rule ids, actions, the policy and its version."""
    bundle = load_policy(DEFAULT_POLICY_PATH)
    words = [*ACTIONS, "policy", "rule", "severity", bundle.version]
    found = [w for w in words if re.search(rf"\b{re.escape(w)}", text, re.IGNORECASE)]
    found += [r.id for r in bundle.rules if r.id in text]
    return found + [c for c in CHECKS if c in text]


@pytest.mark.parametrize("check", CHECKS)
def test_customer_wording_names_no_policy_internals(check: str):
    subject = {"quota_exceeded": "seats", "quota_near_limit": "seats"}.get(check, "sso")
    row = finding(check, subject, observed=30, allowed=5)
    row.update(action="suspend", rule_id="quota-exceeded-hard", policy_version="2026.12.0")
    suggestion = suggested_action(row, context(on("basic")))
    assert suggestion.customer and leaks(suggestion.customer) == []


# --- the proof, on the demo, on both profiles ---------------------------------------------

AS_OF = "2026-11-20"


@dataclass
class Demo:
    findings: pd.DataFrame
    suggestions: dict[str, Suggestion]
    context: SuggestionContext
    tickets: list[dict[str, Any]]
    outbox: dict[int, list[dict[str, Any]]]
    variables: dict[str, str]


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Demo]:
    """The demo's nightly run, then the remediation job, as the sensor would start it."""
    home = tmp_path_factory.mktemp(f"suggest-{request.param}")
    if request.param == "embedded":
        yield from _demo(home, None)
    else:
        with fresh_database() as url:
            yield from _demo(home, url)


def _demo(home: Path, url: str | None) -> Iterator[Demo]:
    from licensing_pipeline.definitions import build_definitions
    from licensing_pipeline.warehouse.resources import warehouse_for

    variables = backend_variables(home, home / "data", url)
    with backend_environment(variables):
        assert cli.main(["demo", "--tenants", "24", "--months", "4", "--as-of", AS_OF]) == 0
        assert cli.main(["run", "--as-of", AS_OF]) == 0
        settings = load_settings()
        defs = build_definitions(settings)
        with dg.DagsterInstance.get() as instance:
            assert defs.resolve_job_def("remediation").execute_in_process(instance=instance).success
        warehouse = warehouse_for(settings)
        ctx = suggestion_context(
            Catalog.from_frame(warehouse.read_frame("catalog")),
            entitlements=warehouse.read_frame("effective_entitlements"),
            contracts=warehouse.read_frame("contracts"),
            usage_monthly=warehouse.read_frame("usage_monthly"),
            billing_records=warehouse.read_frame("billing_records"),
            forecasts=warehouse.read_frame("usage_forecasts"),
        )
        repository = LicensingRepository(database_url=settings.database_url)
        findings = repository.load_findings()
        engine = repository.engine()
        tickets = ticket_records(engine)
        outbox = {int(t["ticket_id"]): alerts_of(engine, int(t["ticket_id"])) for t in tickets}
        yield Demo(
            findings, ticket_suggestions(findings, ctx), ctx, tickets, outbox, dict(variables)
        )


def test_every_open_quota_and_feature_finding_gets_a_catalog_option_that_covers_it(demo: Demo):
    cat = demo.context.catalog
    open_findings = demo.findings[demo.findings["status"] == "open"]
    upgrades = open_findings[
        open_findings["check"].isin(["quota_exceeded", "quota_near_limit", "feature_not_entitled"])
    ]
    assert set(upgrades["check"]) >= {"quota_exceeded", "feature_not_entitled"}
    for row in upgrades.astype(object).to_dict("records"):
        suggestion = demo.suggestions[row["finding_id"]]
        assert suggestion.path is not None, (row, suggestion)
        path = suggestion.path
        assert path.plan in cat.plans and all(a in cat.addons for a in path.addons)
        assert suggestion.plan or suggestion.addons or suggestion.kind == "no_change"
        features, quotas = covered(cat, path.plan, path.addons, path.overrides)
        if row["check"] == "feature_not_entitled":
            assert row["subject"] in features
        else:
            need = max(float(row["observed"]), quota_need(row, demo.context))
            assert row["subject"] not in quotas or quotas[row["subject"]] >= need, row
        named = [path.plan if suggestion.plan else None, *suggestion.addons]
        assert all(name in suggestion.internal for name in named if name)


def test_every_ticket_its_alert_and_tickets_show_carry_the_next_step(
    demo: Demo, capsys: pytest.CaptureFixture[str]
):
    assert demo.tickets
    for ticket in demo.tickets:
        suggestion = demo.suggestions[ticket["finding_id"]]
        assert STEP_LABEL + suggestion.internal in ticket["details"]
        assert CUSTOMER_LABEL + suggestion.customer in ticket["details"]
        payloads = [json.loads(a["payload"]) for a in demo.outbox[int(ticket["ticket_id"])]]
        if ticket["severity"] == "critical":
            assert any(f"Next step: {suggestion.internal}" in p["text"] for p in payloads)
    digest = [t for t in demo.tickets if t["severity"] == "warning"]
    assert digest
    ticket = demo.tickets[0]
    with backend_environment(demo.variables):
        assert cli.main(["tickets", "show", str(ticket["ticket_id"])]) == 0
    shown = capsys.readouterr().out
    suggestion = demo.suggestions[ticket["finding_id"]]
    assert f"Suggested next step:\n  {suggestion.internal}" in shown
    assert f"Customer wording:\n  {suggestion.customer}" in shown


def test_no_customer_wording_in_the_demo_leaks_policy_internals(demo: Demo):
    assert demo.suggestions
    assert {s.customer: leaks(s.customer) for s in demo.suggestions.values()} == {
        s.customer: [] for s in demo.suggestions.values()
    }


# --- builders ------------------------------------------------------------------------------------


def finding(
    check: str,
    subject: str,
    *,
    observed: float = 1.0,
    allowed: float = 0.0,
    period: str = "2026-10",
) -> dict[str, Any]:
    return {
        "finding_id": f"{check}-{subject}",
        "tenant_id": "t-1",
        "check": check,
        "subject": subject,
        "period": period,
        "observed": observed,
        "allowed": allowed,
        "status": "open",
        "details": "Deployment d-1 limits seats to 9 instead of the 5 in your contract.",
    }


def context(
    entitlement: dict[str, Any],
    *,
    usage: dict[tuple[str, str, str], float] | None = None,
    unit_prices: dict[tuple[str, str, str], tuple[float, str]] | None = None,
) -> SuggestionContext:
    return SuggestionContext(
        catalog=catalog(),
        last_full_month="2026-10",
        entitlements={},
        current={"t-1": entitlement},
        usage=usage or {},
        unit_prices=unit_prices or {},
    )
