"""The remediation resources from the environment (each class's ``from_env``)."""

from __future__ import annotations

from typing import Any

from licensing_pipeline.remediation.service import RemediationConfig
from licensing_pipeline.remediation.slack import SlackAlerts
from licensing_pipeline.remediation.ticket_sink import TicketSink


def remediation_resources() -> dict[str, Any]:
    """Resource keys ``slack``, ``ticket_sink`` and ``remediation``, secrets as ``dg.EnvVar``."""
    return {
        "slack": SlackAlerts.from_env(),
        "ticket_sink": TicketSink.from_env(),
        "remediation": RemediationConfig.from_env(),
    }


def slack_alerts() -> SlackAlerts:
    """For the CLI, which uses the resource outside Dagster: the token's value resolved."""
    return SlackAlerts.from_env().process_config_and_initialize()


def ticket_sink() -> TicketSink:
    """For the CLI: the secrets' values resolved."""
    return TicketSink.from_env().process_config_and_initialize()
