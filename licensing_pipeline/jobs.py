"""The nightly job and its schedule."""

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from licensing_pipeline.remediation.jobs import REMEDIATION_GROUP
from licensing_pipeline.run_lock import with_run_lock
from licensing_pipeline.settings import Settings, load_settings
from licensing_pipeline.warehouse.assets import HISTORY_GROUP
from licensing_pipeline.workers import nightly_executor

NIGHTLY_JOB = "nightly_compliance"


def nightly_job(settings: Settings) -> UnresolvedAssetJobDefinition:
    """The nightly job. Its executor comes from settings (Celery sends its steps to workers,
    while the other jobs keep the code location's in-process executor) and holds the run
    lock (run_lock.py): one nightly run at a time."""
    return dg.define_asset_job(
        name=NIGHTLY_JOB,
        # Remediation (tickets, Slack) runs in its own job, started by a sensor: an outage of
        # Slack or the ticket system must never fail the nightly run.
        # The day-partitioned history follows the nightly run in runs of its own.
        selection=dg.AssetSelection.all()
        - dg.AssetSelection.groups(REMEDIATION_GROUP, HISTORY_GROUP),
        executor_def=with_run_lock(
            nightly_executor(settings) or dg.in_process_executor,
            settings,
            before_steps=policy_gate(settings),
        ),
        description=(
            "Load the exports, rebuild the warehouse, run every check family and decide the "
            "findings."
        ),
    )


def run_as_of(run_config: Mapping[str, Any], settings: Settings) -> date:
    """The as-of day a run's config names (else the environment's, else today in UTC)."""
    config = run_config.get("resources", {}).get("run_settings", {}).get("config", {})
    as_of = config.get("as_of") or settings.as_of
    return date.fromisoformat(as_of) if as_of else datetime.now(UTC).date()


def policy_gate(settings: Settings) -> Callable[[Mapping[str, Any]], None]:
    """Before the first step: refuse a bundle without an approved policy_version change in
    force on the run's as-of day, when the settings require one (``policy_approval.py``)."""

    def check(run_config: Mapping[str, Any]) -> None:
        if not settings.require_approved_policy:
            return
        from licensing_pipeline.governance.policy_approval import PolicyNotApproved, run_approval

        try:
            run_approval(settings, run_as_of(run_config, settings))
        except PolicyNotApproved as exc:
            raise dg.Failure(description=str(exc)) from None

    return check


def run_settings_config(
    data_dir: str, as_of: str | None, full_refresh: bool = False
) -> dict[str, Any]:
    """Run config that points one run at an exports folder and an as-of day. Run config
    replaces the resource's whole configuration, so the rest comes from the environment."""
    earliest = load_settings().earliest_event_date.isoformat()
    config: dict[str, Any] = {"data_dir": data_dir, "as_of": as_of, "earliest_event_date": earliest}
    if full_refresh:
        config["full_refresh"] = True
    return {"resources": {"run_settings": {"config": config}}}


@dg.schedule(
    job_name=NIGHTLY_JOB,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="02:00 UTC: evaluate the day that just ended.",
)
def nightly_compliance_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    as_of = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(
        run_key=f"nightly-{as_of}",
        run_config=run_settings_config(str(load_settings().data_dir), as_of),
        tags={"licensing/as_of": as_of},
    )
