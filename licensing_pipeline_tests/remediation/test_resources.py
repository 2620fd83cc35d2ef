"""Resources from the environment: secrets reach Slack but never the UI or a repr."""

from pathlib import Path

import dagster as dg
import pytest

from licensing_pipeline.policy.bundle import PolicyResource
from licensing_pipeline.remediation.resources import remediation_resources, slack_alerts
from licensing_pipeline.remediation.sensors import alert_on_failed_asset_checks
from licensing_pipeline.remediation.service import RemediationConfig
from licensing_pipeline.remediation.ticket_sink import TicketSink
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.settings import DEFAULT_POLICY_PATH, SettingsError
from licensing_pipeline_tests.remediation.fakes import FakeSlack
from licensing_pipeline_tests.remediation.test_sensors import (
    checked_asset,
    fine,
    has_tenants,
    materialize_remediation,
)

TOKEN = "xoxb-from-the-environment"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, fake_slack: FakeSlack, tmp_path: Path) -> None:
    monkeypatch.setenv("LICENSING_HOME", str(tmp_path))
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_API_URL", fake_slack.base_url)
    monkeypatch.setenv("LICENSING_SLACK_DATA_CHANNEL", "#data-eng")
    monkeypatch.setenv("LICENSING_SLA_CRITICAL_DAYS", "2")
    monkeypatch.setenv("LICENSING_JIRA_API_TOKEN", "jira-secret")


def test_settings_read_the_remediation_environment(env: None):
    assert slack_alerts().token == TOKEN and RemediationConfig.from_env().sla_critical_days == 2
    assert slack_alerts().data_channel == "#data-eng"
    resources = remediation_resources()
    assert TOKEN not in repr(resources) and "jira-secret" not in repr(resources)
    assert TOKEN not in repr(slack_alerts())


def test_bad_sla_days_are_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LICENSING_SLA_WARNING_DAYS", "two weeks")
    with pytest.raises(ValueError, match="LICENSING_SLA_WARNING_DAYS must be a whole number"):
        RemediationConfig.from_env()


def test_jira_transitions_are_read_as_event_and_target_pairs(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LICENSING_JIRA_TRANSITIONS", "resolved=Done, reopened = To Do,")
    transitions = TicketSink.from_env().jira_transitions
    assert transitions == {"resolved": "Done", "reopened": "To Do"}
    assert remediation_resources()["ticket_sink"].jira_transitions == transitions
    for bad in ("closed=Done", "resolved", "resolved="):
        monkeypatch.setenv("LICENSING_JIRA_TRANSITIONS", bad)
        with pytest.raises(
            SettingsError, match=r"LICENSING_JIRA_TRANSITIONS: .* \(e\.g\. resolved=Done\)"
        ):
            TicketSink.from_env()


def test_the_code_location_passes_secrets_as_env_vars(env: None):
    resources = remediation_resources()
    assert isinstance(resources["slack"].token, dg.EnvVar)
    assert isinstance(resources["ticket_sink"].jira_api_token, dg.EnvVar)
    assert resources["remediation"].sla_critical_days == 2
    assert slack_alerts().token == TOKEN  # the CLI: the value


def test_a_run_resolves_the_token_from_the_environment(
    env: None, fake_slack: FakeSlack, tmp_path: Path
):
    resources = {
        **remediation_resources(),
        "repository": LicensingRepository(database_url=f"sqlite:///{tmp_path / 'l.db'}"),
        "policy": PolicyResource(path=str(DEFAULT_POLICY_PATH)),
    }
    assert materialize_remediation(resources).success
    assert fake_slack.posts()
    assert {r.headers["Authorization"] for r in fake_slack.requests} == {f"Bearer {TOKEN}"}


def test_a_sensor_resolves_the_token_from_the_environment(
    env: None, fake_slack: FakeSlack, tmp_path: Path
):
    defs = dg.Definitions(
        assets=[checked_asset],
        asset_checks=[has_tenants, fine],
        sensors=[alert_on_failed_asset_checks],
        resources={
            **remediation_resources(),
            "repository": LicensingRepository(database_url=f"sqlite:///{tmp_path / 'l.db'}"),
        },
    )
    with dg.instance_for_test() as instance:
        dg.materialize([checked_asset, has_tenants, fine], instance=instance)
        sensor = defs.resolve_sensor_def("alert_on_failed_asset_checks")
        context = dg.build_sensor_context(
            instance=instance, definitions=defs, resources=dict(defs.resources or {})
        )
        sensor.evaluate_tick(context)
    (request,) = fake_slack.requests
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.body["channel"] == "#data-eng"
