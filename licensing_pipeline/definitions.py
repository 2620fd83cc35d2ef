"""The code location: each package's definitions, merged with what they share."""

import dagster as dg

from licensing_pipeline.cli_progress import progress_logger
from licensing_pipeline.compliance import definitions as compliance
from licensing_pipeline.dashboard import definitions as dashboard
from licensing_pipeline.governance import definitions as governance
from licensing_pipeline.jobs import NIGHTLY_JOB, nightly_compliance_schedule, nightly_job
from licensing_pipeline.policy import definitions as policy
from licensing_pipeline.quality import definitions as quality
from licensing_pipeline.remediation import definitions as remediation
from licensing_pipeline.reports import definitions as reports
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.run_config import RunSettings
from licensing_pipeline.settings import Settings, load_settings
from licensing_pipeline.sources import definitions as sources
from licensing_pipeline.statements import definitions as statements
from licensing_pipeline.warehouse import definitions as warehouse


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """The CLI builds its own, so a changed environment (tests, --data-dir) takes effect."""
    settings = settings or load_settings()
    nightly = nightly_job(settings)
    shared = dg.Definitions(
        jobs=[nightly],
        schedules=[nightly_compliance_schedule],
        resources={
            "run_settings": RunSettings(
                data_dir=str(settings.data_dir),
                as_of=settings.as_of,
                earliest_event_date=settings.earliest_event_date.isoformat(),
            ),
            "repository": LicensingRepository(
                database_url=settings.database_url, acting_user=settings.user
            ),
        },
        executor=dg.in_process_executor,
        loggers={"progress": progress_logger},
    )
    return dg.Definitions.merge(
        shared,
        sources.defs(),
        warehouse.defs(settings, nightly),
        compliance.defs(),
        policy.defs(settings),
        quality.defs(settings),
        statements.defs(settings),
        dashboard.defs(settings),
        remediation.defs(),
        reports.defs(),
        governance.defs(),
    )


def nightly_compliance_job() -> dg.JobDefinition:
    """The nightly job rebuilt from this process's environment: the reconstructable target
    `licensing-pipeline run` hands to ``dg.execute_job``, and what Celery workers rebuild."""
    return build_definitions().resolve_job_def(NIGHTLY_JOB)


defs = build_definitions()
