"""Sensors: remediation after new findings, failed asset checks and failed runs to Slack,
and the delivery of what the outbox still holds.

All are on by default. The alerting sensors post through the outbox, so a re-tick, or a
sensor and a run racing, never posts the same alert twice.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at runtime.
import json
import time
from collections.abc import Sequence
from datetime import timedelta

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from licensing_pipeline.jobs import NIGHTLY_JOB
from licensing_pipeline.remediation import messages
from licensing_pipeline.remediation.jobs import remediation_job
from licensing_pipeline.remediation.outbox import FlushReport, OutboxAlert, flush, post_now
from licensing_pipeline.remediation.service import RemediationConfig
from licensing_pipeline.remediation.slack import SlackAlerts
from licensing_pipeline.repository.resources import LicensingRepository

FINDINGS = dg.AssetKey("compliance_findings")
CHECK_BATCH = 50
FIRST_TICK_LOOKBACK = timedelta(days=1)
# Failed runs posted to Slack; named, not held as job objects: the nightly job is built
# from the settings with the rest of the code location (jobs.py).
ALERTED_JOBS = (NIGHTLY_JOB, remediation_job.name)


@dg.asset_sensor(
    asset_key=FINDINGS,
    job=remediation_job,
    name="remediation_after_findings",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs the remediation job once for each new materialization of compliance_findings.",
)
def remediation_after_findings(
    context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"remediation-after-{asset_event.run_id}",
        tags={"licensing/findings_run_id": asset_event.run_id},
    )


def _owners(context: dg.SensorEvaluationContext, key: dg.AssetKey) -> list[str]:
    """The asset's owners as declared in the definitions, when the sensor can see them."""
    try:
        definitions = context.repository_def
        if definitions is None:
            return []
        return list(definitions.asset_graph.get(key).owners)
    except Exception:  # an asset outside this code location, or no definitions in a test
        return []


def _check_keys(context: dg.SensorEvaluationContext) -> list[dg.AssetCheckKey]:
    definitions = context.repository_def
    if definitions is None:
        return []
    return sorted(definitions.asset_graph.asset_check_keys, key=lambda k: k.to_user_string())


def _new_failures(
    context: dg.SensorEvaluationContext, seen: dict[str, int]
) -> list[AssetCheckExecutionRecord]:
    """Failed evaluations newer than the cursor; on a check's first tick, of the last day only."""
    storage = context.instance.event_log_storage
    since = time.time() - FIRST_TICK_LOOKBACK.total_seconds()
    failures = []
    for key in _check_keys(context):
        name = key.to_user_string()
        records = storage.get_asset_check_execution_history(
            key, limit=CHECK_BATCH, status={AssetCheckExecutionRecordStatus.FAILED}
        )
        fresh = [
            r
            for r in records
            if (r.id > seen[name] if name in seen else r.create_timestamp >= since)
        ]
        if records:
            seen[name] = max(seen.get(name, 0), max(r.id for r in records))
        failures.extend(fresh)
    return sorted(failures, key=lambda r: r.id)


@dg.sensor(
    name="alert_on_failed_asset_checks",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts every failed asset check evaluation to the data owners' Slack channel.",
)
def alert_on_failed_asset_checks(
    context: dg.SensorEvaluationContext,
    slack: SlackAlerts,
    repository: LicensingRepository,
    remediation: RemediationConfig,
) -> dg.SkipReason:
    seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    alerts: list[OutboxAlert] = []
    for record in _new_failures(context, seen):
        event = record.event.dagster_event if record.event else None
        evaluation = event.event_specific_data if event else None
        if not isinstance(evaluation, AssetCheckEvaluation) or evaluation.passed:
            continue
        asset = evaluation.asset_key.to_user_string()
        alerts.append(
            OutboxAlert(
                kind="check_failed",
                ref=f"{asset}:{evaluation.check_name}",
                period=record.run_id,
                channel=slack.data_channel,
                message=messages.check_failed_alert(
                    asset=asset,
                    check_name=evaluation.check_name,
                    severity=evaluation.severity.value,
                    description=evaluation.description or "",
                    run_id=record.run_id,
                    owners=_owners(context, evaluation.asset_key),
                    dagster_url=remediation.dagster_url,
                ),
            )
        )
    report = _post(repository, slack, alerts)
    context.update_cursor(json.dumps(seen, sort_keys=True))
    if not alerts:
        return dg.SkipReason("no new failed asset checks")
    return dg.SkipReason(f"{len(alerts)} failed asset check(s): {report.summary()}")


def _post(
    repository: LicensingRepository, slack: SlackAlerts, alerts: Sequence[OutboxAlert]
) -> FlushReport:
    if not alerts:
        return FlushReport()
    return post_now(repository.engine(), slack, alerts)


def _failure_text(context: dg.RunFailureSensorContext) -> str:
    lines = []
    for event in context.get_step_failure_events():
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and error.cause is not None:
            error = error.cause  # the user's exception, not Dagster's wrapper
        message = error.message.strip() if error is not None else (event.message or "")
        lines.append(f"{event.step_key}: {message}")
    return "\n".join(lines) or (context.failure_event.message or "")


@dg.run_failure_sensor(
    name="post_failed_runs_to_slack",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts failed nightly and remediation runs to the data-engineering channel.",
)
def post_failed_runs_to_slack(
    context: dg.RunFailureSensorContext,
    slack: SlackAlerts,
    repository: LicensingRepository,
    remediation: RemediationConfig,
) -> None:
    run = context.dagster_run
    if run.job_name not in ALERTED_JOBS:
        return
    alert = OutboxAlert(
        kind="run_failed",
        ref=run.job_name,
        period=run.run_id,
        channel=slack.data_channel,
        message=messages.run_failed_alert(
            job_name=run.job_name,
            run_id=run.run_id,
            error=_failure_text(context),
            dagster_url=remediation.dagster_url,
            tags=dict(run.tags),
        ),
    )
    report = _post(repository, slack, [alert])
    context.log.info(f"run {run.run_id} failed: {report.summary()}")


@dg.sensor(
    name="deliver_queued_alerts",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Posts what the alert outbox still holds (after a rate limit, a lost answer or an "
        "outage) once Slack takes it, checking first that a lost post is not already there."
    ),
)
def deliver_queued_alerts(slack: SlackAlerts, repository: LicensingRepository) -> dg.SkipReason:
    report = flush(repository.engine(), slack, retry_failed=False)
    return dg.SkipReason(f"alert outbox: {report.summary()}")


remediation_sensors = [
    remediation_after_findings,
    alert_on_failed_asset_checks,
    post_failed_runs_to_slack,
    deliver_queued_alerts,
]
