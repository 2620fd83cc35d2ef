"""The sensors and the remediation asset, evaluated in-process against a real Dagster instance."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from licensing_pipeline.contract.catalog import Catalog, Metric, Package, Price
from licensing_pipeline.contract.schemas import (
    BILLING_RECORDS,
    CONTRACTS,
    EFFECTIVE_ENTITLEMENTS,
    conform,
    empty_frame,
)
from licensing_pipeline.policy.bundle import PolicyResource
from licensing_pipeline.remediation.assets import DELIVERY_CHECK, remediation_tickets
from licensing_pipeline.remediation.outbox import OutboxAlert, enqueue, outbox_rows, utcnow
from licensing_pipeline.remediation.sensors import (
    alert_on_failed_asset_checks,
    deliver_queued_alerts,
    post_failed_runs_to_slack,
    remediation_after_findings,
)
from licensing_pipeline.remediation.service import RemediationConfig
from licensing_pipeline.remediation.slack import SlackAlerts
from licensing_pipeline.remediation.store import ticket_records
from licensing_pipeline.remediation.tables import delivery_holds
from licensing_pipeline.remediation.ticket_sink import TicketSink
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.settings import DEFAULT_POLICY_PATH
from licensing_pipeline_tests.remediation.builders import finding, findings, quota_warning
from licensing_pipeline_tests.remediation.builders import tenant as tenant_row
from licensing_pipeline_tests.remediation.builders import tenants as tenant_frame
from licensing_pipeline_tests.remediation.fakes import FakeSlack

TOKEN = "xoxb-sensor-token"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def resources(tmp_path: Path, fake_slack: FakeSlack) -> dict:
    return {
        "slack": SlackAlerts(
            token=TOKEN,
            base_url=fake_slack.base_url,
            data_channel="#data-engineering",
        ),
        "repository": LicensingRepository(database_url=f"sqlite:///{tmp_path / 'licensing.db'}"),
        "remediation": RemediationConfig(dagster_url="http://dagster:3000"),
        "ticket_sink": TicketSink(),
        "policy": PolicyResource(path=str(DEFAULT_POLICY_PATH)),
    }


@dg.asset(name="compliance_findings")
def findings_stub() -> dg.MaterializeResult:
    return dg.MaterializeResult()


def test_new_findings_start_one_remediation_run_per_materialization(
    instance: dg.DagsterInstance,
):
    first = dg.materialize([findings_stub], instance=instance)
    context = dg.build_sensor_context(instance=instance)
    tick = remediation_after_findings.evaluate_tick(context)
    (request,) = tick.run_requests or []
    assert request.run_key == f"remediation-after-{first.run_id}"
    assert remediation_after_findings.job_name == "remediation"
    # a re-tick with the cursor it left: nothing new
    again = remediation_after_findings.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=tick.cursor)
    )
    assert not again.run_requests
    second = dg.materialize([findings_stub], instance=instance)
    later = remediation_after_findings.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=tick.cursor)
    )
    assert [r.run_key for r in later.run_requests or []] == [f"remediation-after-{second.run_id}"]


@dg.asset(name="licensed_table")
def checked_asset() -> dg.MaterializeResult:
    return dg.MaterializeResult()


@dg.asset_check(asset=checked_asset, description="rows have a tenant")
def has_tenants() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, description="3 rows without tenant_id")


@dg.asset_check(asset=checked_asset)
def fine() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def test_failed_asset_checks_are_posted_once_to_the_data_owners(
    instance: dg.DagsterInstance, resources: dict, fake_slack: FakeSlack
):
    run = dg.materialize([checked_asset, has_tenants, fine], instance=instance)
    defs = dg.Definitions(assets=[checked_asset], asset_checks=[has_tenants, fine])
    context = dg.build_sensor_context(instance=instance, resources=resources, definitions=defs)
    result = alert_on_failed_asset_checks.evaluate_tick(context)
    assert "1 failed asset check(s): 1 posted" in (result.skip_message or "")
    (post,) = fake_slack.posts()
    assert post["channel"] == "#data-engineering"
    assert post["text"] == "Asset check failed: licensed_table / has_tenants (ERROR)"
    assert post["blocks"][2]["text"]["text"] == "3 rows without tenant_id"
    assert f"/runs/{run.run_id}" in post["blocks"][3]["elements"][0]["text"]
    # a re-tick, and a tick that lost its cursor: nothing posted twice
    again = alert_on_failed_asset_checks.evaluate_tick(
        dg.build_sensor_context(
            instance=instance, cursor=result.cursor, resources=resources, definitions=defs
        )
    )
    assert again.skip_message == "no new failed asset checks"
    alert_on_failed_asset_checks.evaluate_tick(
        dg.build_sensor_context(instance=instance, resources=resources, definitions=defs)
    )
    assert len(fake_slack.posts()) == 1
    # the check fails again in a new run: that is a new alert
    dg.materialize([checked_asset, has_tenants, fine], instance=instance)
    alert_on_failed_asset_checks.evaluate_tick(
        dg.build_sensor_context(
            instance=instance, cursor=again.cursor, resources=resources, definitions=defs
        )
    )
    assert len(fake_slack.posts()) == 2


@dg.op
def explode() -> None:
    raise RuntimeError("warehouse file is locked")


@dg.job(name="nightly_compliance")
def failing_nightly() -> None:
    explode()


def sense_failure(
    result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance, resources: dict
) -> None:
    """One tick of post_failed_runs_to_slack on the failed run of ``result``."""
    context = dg.build_run_status_sensor_context(
        sensor_name="post_failed_runs_to_slack",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources=resources,
    )
    post_failed_runs_to_slack(context)


def test_a_failed_nightly_run_is_posted_once_to_data_engineering(
    instance: dg.DagsterInstance, resources: dict, fake_slack: FakeSlack
):
    result = failing_nightly.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    for _ in range(2):  # the sensor sees the same failure twice (a daemon restart)
        sense_failure(result, instance, resources)
    (post,) = fake_slack.posts()
    assert post["channel"] == "#data-engineering"
    assert post["text"] == f"Run of nightly_compliance failed: {result.run_id}"
    assert "explode: RuntimeError: warehouse file is locked" in post["blocks"][1]["text"]["text"]


@dg.job(name="daily_usage_history")
def failing_history() -> None:
    explode()


def test_failed_runs_of_other_jobs_are_not_posted(
    instance: dg.DagsterInstance, resources: dict, fake_slack: FakeSlack
):
    sense_failure(
        failing_history.execute_in_process(instance=instance, raise_on_error=False),
        instance,
        resources,
    )
    assert fake_slack.posts() == []


@dg.asset(name="compliance_findings")
def findings_frame() -> pd.DataFrame:
    return findings(finding("t-1"), quota_warning("t-1"))


@dg.asset(name="tenants")
def tenants_frame() -> pd.DataFrame:
    return tenant_frame(tenant_row("t-1", channel="#gone"))


@dg.asset(name="catalog")
def catalog_frame() -> pd.DataFrame:
    growth = Package("growth", (), {"api_calls": 100_000}, Price(199, "USD"))
    scale = Package("scale", (), {"api_calls": 500_000}, Price(499, "USD"))
    metrics = {"api_calls": Metric("api_calls", "api.request", "COUNT")}
    plans = {"growth": growth, "scale": scale}
    return Catalog("v1", {"us-east-1": "US"}, (), metrics, plans, {}).to_frame()


@dg.asset(name="effective_entitlements")
def entitlements_frame() -> pd.DataFrame:
    row = {"tenant_id": "t-1", "period": "2026-11", "contract_id": "C-1", "plan": "growth"}
    return conform(pd.DataFrame([{**row, "entitled": True}]), EFFECTIVE_ENTITLEMENTS)


@dg.asset(name="contracts")
def contracts_frame() -> pd.DataFrame:
    return empty_frame(CONTRACTS)


@dg.asset(name="usage_monthly")
def usage_frame() -> pd.DataFrame:
    return pd.DataFrame(columns=["tenant_id", "metric", "period", "quantity"])


@dg.asset(name="billing_records")
def billing_frame() -> pd.DataFrame:
    return empty_frame(BILLING_RECORDS)


@dg.asset(name="usage_forecasts")
def forecasts_frame() -> pd.DataFrame:
    """t-1's api_calls projected past what it used so far: the suggestion must cover it."""
    row = {"tenant_id": "t-1", "metric": "api_calls", "period": "2026-11"}
    return pd.DataFrame([{**row, "projected_total": 130_000.0}])


def materialize_remediation(resources: dict) -> dg.ExecuteInProcessResult:
    inputs = [
        catalog_frame,
        entitlements_frame,
        contracts_frame,
        usage_frame,
        billing_frame,
        forecasts_frame,
    ]
    return dg.materialize_to_memory(
        [findings_frame, tenants_frame, *inputs, remediation_tickets], resources=resources
    )


def test_the_remediation_asset_reports_delivery_as_an_asset_check(
    resources: dict, fake_slack: FakeSlack
):
    fake_slack.unknown_channels.add("#gone")
    result = materialize_remediation(resources)
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == DELIVERY_CHECK
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description == "2 alert(s) went to the default channel"
    metadata = result.asset_materializations_for_node("remediation_tickets")[0].metadata
    assert metadata["opened"].value == 2 and metadata["alerts_sent"].value == 2
    assert {p["channel"] for p in fake_slack.posts()} == {"#licensing-compliance"}
    engine = resources["repository"].engine()
    tickets = {t["check"]: t for t in ticket_records(engine)}
    engine.dispose()
    assert len(tickets) == 2
    # the suggested next step, from the catalog and the forecast the asset reads, is on the
    # ticket: it covers the month's projected 130,000, not only the 120,500 used so far
    assert (
        "Suggested next step: Propose plan scale to cover api_calls at 130,000"
        in (tickets["quota_exceeded"]["details"])
    )
    assert "Suggested next step: Move the workload" in tickets["residency_violation"]["details"]


def test_a_revoked_token_does_not_fail_the_run_but_fails_the_check_loudly(
    resources: dict, fake_slack: FakeSlack
):
    fake_slack.revoked_tokens.add(TOKEN)
    result = materialize_remediation(resources)
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.description is not None
    assert check.description.startswith("Slack rejected SLACK_BOT_TOKEN (invalid_auth)")
    assert TOKEN not in check.description
    engine = resources["repository"].engine()
    assert len(outbox_rows(engine, kind="operator")) == 1
    engine.dispose()


def test_without_a_token_the_run_succeeds_and_alerts_are_recorded(
    resources: dict, fake_slack: FakeSlack
):
    resources["slack"] = SlackAlerts(base_url=fake_slack.base_url)
    result = materialize_remediation(resources)
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.description == "not sent: no token"
    engine = resources["repository"].engine()
    rows = outbox_rows(engine)
    engine.dispose()
    assert {(r["status"], r["last_error"]) for r in rows} == {("not_sent", "not sent: no token")}
    assert fake_slack.requests == []


def queued(n: int) -> OutboxAlert:
    return OutboxAlert("run_failed", f"job-{n}", "run-1", "#data-engineering", {"text": f"run {n}"})


def test_queued_alerts_go_out_on_a_later_tick_once_slack_takes_them(
    resources: dict, fake_slack: FakeSlack
):
    engine = resources["repository"].engine()
    with engine.begin() as con:
        enqueue(con, [queued(1), queued(2)])

    def tick() -> str:
        result = deliver_queued_alerts.evaluate_tick(dg.build_sensor_context(resources=resources))
        return str(result.skip_message)

    fake_slack.script.append("ratelimited")
    assert tick().startswith("alert outbox: 0 posted, 2 waiting: Slack asked to wait until")
    assert len(fake_slack.requests) == 1
    with engine.begin() as con:  # the Retry-After is over
        con.execute(sa.update(delivery_holds).values(not_before=utcnow() - timedelta(seconds=1)))
    assert tick() == "alert outbox: 2 posted"
    assert sorted(p["text"] for p in fake_slack.posts()) == ["run 1", "run 2"]
    # a message Slack refuses is not retried every minute, but by the next remediation run
    with engine.begin() as con:
        enqueue(con, [queued(3)])
    fake_slack.script.append("msg_too_long")
    assert tick() == "alert outbox: 0 posted, 1 failed (retried next pass)"
    requests = len(fake_slack.requests)
    assert tick() == "alert outbox: 0 posted" and len(fake_slack.requests) == requests
    engine.dispose()
