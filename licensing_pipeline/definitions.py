"""The code location: every asset, check, job, schedule and resource, assembled."""

import dagster as dg

from licensing_pipeline.cli_progress import progress_logger
from licensing_pipeline.compliance.assets import compliance_assets
from licensing_pipeline.compliance.findings import compliance_findings
from licensing_pipeline.dashboard.assets import compliance_dashboard
from licensing_pipeline.jobs import (
    NIGHTLY_JOB,
    define_nightly_compliance,
    nightly_compliance_schedule,
)
from licensing_pipeline.policy.assets import policy_assets
from licensing_pipeline.policy.sensors import policy_jobs, policy_sensors
from licensing_pipeline.quality.checks import quality_checks
from licensing_pipeline.remediation.definitions import (
    remediation_assets,
    remediation_jobs,
    remediation_sensors,
)
from licensing_pipeline.resources import build_resources
from licensing_pipeline.run_lock import with_run_lock
from licensing_pipeline.settings import Settings, load_settings
from licensing_pipeline.sources.assets import source_assets
from licensing_pipeline.statements.assets import customer_statements
from licensing_pipeline.warehouse.assets import warehouse_models
from licensing_pipeline.warehouse.history import (
    build_daily_usage_history,
    build_history_sensor,
    daily_partitions,
    daily_usage_history_job,
    history_backfill_policy,
)
from licensing_pipeline.workers import nightly_executor


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """The CLI builds its own, so a changed environment (tests, --data-dir) takes effect."""
    settings = settings or load_settings()
    return dg.Definitions(
        assets=[
            *source_assets,
            warehouse_models,
            build_daily_usage_history(
                daily_partitions(settings.history_start),
                history_backfill_policy(settings.profile),
            ),
            *compliance_assets,
            compliance_findings,
            *policy_assets,
            customer_statements,
            compliance_dashboard,
            *remediation_assets,
        ],
        asset_checks=quality_checks,
        jobs=[
            define_nightly_compliance(
                with_run_lock(nightly_executor(settings) or dg.in_process_executor, settings)
            ),
            *remediation_jobs,
            *policy_jobs,
            daily_usage_history_job,
        ],
        schedules=[nightly_compliance_schedule],
        sensors=[
            *remediation_sensors,
            *policy_sensors,
            build_history_sensor(settings.history_start),
        ],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
        loggers={"progress": progress_logger},
    )


def nightly_compliance_job() -> dg.JobDefinition:
    """The nightly job rebuilt from this process's environment: the reconstructable target
    `licensing-pipeline run` hands to ``dg.execute_job``, and what Celery workers rebuild."""
    return build_definitions().resolve_job_def(NIGHTLY_JOB)


defs = build_definitions()
