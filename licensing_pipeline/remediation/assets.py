"""The ``remediation_tickets`` asset: tickets, the external ticket system and Slack.

It runs in its own job (``remediation``), started by a sensor when ``compliance_findings``
is materialized, so a Slack or ticket-system outage never fails the nightly run. Its
``alerts_delivered`` check fails when alerts could not be delivered: the operator's
signal in the Dagster UI (a rejected token is an ERROR, a retryable failure a WARN).
"""

# No `from __future__ import annotations`: Dagster reads these annotations at runtime.
from typing import Any

import dagster as dg
import pandas as pd

from licensing_pipeline.contract.catalog import Catalog
from licensing_pipeline.policy.bundle import PolicyResource
from licensing_pipeline.remediation.outbox import FlushReport
from licensing_pipeline.remediation.service import RemediationConfig, run_remediation
from licensing_pipeline.remediation.slack import SlackAlerts
from licensing_pipeline.remediation.suggestions import suggestion_context, ticket_suggestions
from licensing_pipeline.remediation.ticket_sink import TicketSink
from licensing_pipeline.repository.resources import LicensingRepository

DELIVERY_CHECK = "alerts_delivered"


def delivery_check(report: FlushReport, export_errors: list[str]) -> dg.AssetCheckResult:
    """Pass when every alert and ticket export went through (or Slack is simply not set up)."""
    metadata: dict[str, Any] = {
        "sent": report.sent,
        "failed": report.failed,
        "not_sent_no_token": report.not_sent,
        "waiting": report.waiting,
        "unanswered": report.unanswered,
        "found_already_posted": report.already_posted,
    }
    if report.fallbacks:
        metadata["channel_fallbacks"] = dg.MetadataValue.md(
            "\n".join(f"- {line}" for line in report.fallbacks[:50])
        )
    problems = [*report.errors, *report.warnings, *export_errors]
    if problems:
        metadata["errors"] = dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:50]))
    if report.auth_error:
        return dg.AssetCheckResult(
            check_name=DELIVERY_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"Slack rejected SLACK_BOT_TOKEN ({report.auth_error}): posting stopped, "
                f"{report.waiting} alert(s) waiting. Replace the token and restart."
            ),
            metadata=metadata,
        )
    if problems or report.fallbacks or report.waiting:
        parts = []
        if report.failed:
            parts.append(f"{report.failed} alert(s) failed and will be retried")
        if report.unanswered:
            parts.append(
                f"{report.unanswered} alert(s) got no answer from Slack: looked for in the "
                "channel before any retry"
            )
        if report.warnings:
            parts.append(
                f"{len(report.warnings)} alert(s) posted again without checking the channel "
                "(grant the history scopes): they may appear twice"
            )
        if report.waiting:
            parts.append(f"{report.waiting} alert(s) wait in the outbox ({report.stopped})")
        if export_errors:
            parts.append(f"{len(export_errors)} ticket export(s) failed and will be retried")
        if report.fallbacks:
            parts.append(f"{len(report.fallbacks)} alert(s) went to the default channel")
        return dg.AssetCheckResult(
            check_name=DELIVERY_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(parts),
            metadata=metadata,
        )
    return dg.AssetCheckResult(
        check_name=DELIVERY_CHECK,
        passed=True,
        description="not sent: no token" if report.not_sent and not report.sent else None,
        metadata=metadata,
    )


@dg.asset(
    group_name="remediation",
    description=(
        "One remediation ticket per open warning or critical finding (owner, SLA due date, "
        "suggested next step from observed usage and the catalog's prices, history), exported to the ticket system, with Slack alerts posted exactly once."
    ),
    kinds={"slack", "sql"},
    check_specs=[
        dg.AssetCheckSpec(
            DELIVERY_CHECK,
            asset="remediation_tickets",
            description="Slack alerts and ticket exports were delivered (or are not configured).",
        )
    ],
)
def remediation_tickets(
    context: dg.AssetExecutionContext,
    repository: LicensingRepository,
    slack: SlackAlerts,
    ticket_sink: TicketSink,
    remediation: RemediationConfig,
    policy: PolicyResource,
    compliance_findings: pd.DataFrame,
    tenants: pd.DataFrame,
    catalog: pd.DataFrame,
    effective_entitlements: pd.DataFrame,
    contracts: pd.DataFrame,
    usage_monthly: pd.DataFrame,
    billing_records: pd.DataFrame,
    usage_forecasts: pd.DataFrame,
) -> dg.MaterializeResult:
    context_for_suggestions = suggestion_context(
        Catalog.from_frame(catalog),
        entitlements=effective_entitlements,
        contracts=contracts,
        usage_monthly=usage_monthly,
        billing_records=billing_records,
        near_limit_ratio=policy.load().near_limit_ratio,
        forecasts=usage_forecasts,
    )
    report = run_remediation(
        repository.engine(),
        compliance_findings,
        tenants,
        config=remediation,
        slack=slack,
        sink=ticket_sink,
        suggestions=ticket_suggestions(compliance_findings, context_for_suggestions),
    )
    delivery = report.delivery
    if delivery.operator_alert_raised or delivery.auth_error:
        context.log.error(
            f"Slack rejected SLACK_BOT_TOKEN ({delivery.auth_error}): no alerts are being "
            f"posted; {delivery.waiting} wait in the outbox."
        )
    for line in delivery.fallbacks:
        context.log.warning(f"channel fallback: {line}")
    for line in [*delivery.errors, *report.export.errors]:
        context.log.warning(line)
    if delivery.not_sent:
        context.log.info(f"{delivery.not_sent} alert(s) recorded as not sent: no token")
    counts = report.counts()
    return dg.MaterializeResult(
        metadata={
            **counts,
            "night": report.night,
            "ticket_system": report.export.target,
            "slack": "configured" if slack.configured else "not sent: no token",
        },
        check_results=[delivery_check(delivery, report.export.errors)],
    )
