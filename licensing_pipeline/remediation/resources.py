"""The remediation resources, built from ``RemediationSettings`` (settings.py)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from licensing_pipeline.remediation.service import RemediationConfig
from licensing_pipeline.remediation.slack import SlackAlerts
from licensing_pipeline.remediation.ticket_sink import TicketSink
from licensing_pipeline.settings import RemediationSettings


def _secret(env_name: str, value: str | None, as_env_var: bool) -> str | None:
    """For the code location, a secret that came from ``env_name`` is passed as
    ``dg.EnvVar``: the UI then shows the variable's name, never the value. Dagster resolves
    it when it initializes the resource; code that uses a resource directly (the CLI)
    needs the value itself."""
    if not value:
        return None
    if as_env_var and dg.EnvVar(env_name).get_value() == value:
        return dg.EnvVar(env_name)
    return value


def slack_alerts(settings: RemediationSettings, *, as_env_var: bool = False) -> SlackAlerts:
    return SlackAlerts(
        token=_secret("SLACK_BOT_TOKEN", settings.slack_bot_token, as_env_var),
        base_url=settings.slack_api_url,
        default_channel=settings.slack_default_channel,
        data_channel=settings.slack_data_channel,
    )


def ticket_sink(settings: RemediationSettings, *, as_env_var: bool = False) -> TicketSink:
    return TicketSink(
        webhook_url=_secret(
            "LICENSING_TICKET_WEBHOOK_URL", settings.ticket_webhook_url, as_env_var
        ),
        jira_url=settings.jira_url,
        jira_email=settings.jira_email,
        jira_api_token=_secret("LICENSING_JIRA_API_TOKEN", settings.jira_api_token, as_env_var),
        jira_project=settings.jira_project,
        jira_issue_type=settings.jira_issue_type,
        jira_transitions=settings.jira_transitions,
        dagster_url=settings.dagster_webserver_url,
    )


def remediation_config(settings: RemediationSettings) -> RemediationConfig:
    return RemediationConfig(
        sla_critical_days=settings.sla_critical_days,
        sla_warning_days=settings.sla_warning_days,
        sla_info_days=settings.sla_info_days,
        routing_path=str(settings.routing_path) if settings.routing_path else None,
        escalation_channel=settings.slack_escalation_channel,
        dagster_url=settings.dagster_webserver_url,
    )


def remediation_resources(settings: RemediationSettings) -> dict[str, Any]:
    """Resource keys ``slack``, ``ticket_sink`` and ``remediation`` (for Definitions)."""
    return {
        "slack": slack_alerts(settings, as_env_var=True),
        "ticket_sink": ticket_sink(settings, as_env_var=True),
        "remediation": remediation_config(settings),
    }
