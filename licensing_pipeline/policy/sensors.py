"""Re-evaluation when the policy bundle changes: a job and the sensor that starts it."""

# No `from __future__ import annotations`: Dagster reads these annotations at runtime.

import dagster as dg

from licensing_pipeline.compliance.findings import compliance_findings
from licensing_pipeline.contract.errors import ContractError
from licensing_pipeline.jobs import NIGHTLY_JOB, run_settings_config
from licensing_pipeline.policy import store
from licensing_pipeline.policy.assets import GROUP as POLICY_GROUP
from licensing_pipeline.policy.bundle import PolicyResource
from licensing_pipeline.repository.resources import LicensingRepository

SENSOR_INTERVAL_SECONDS = 60
WRITING_JOBS = (NIGHTLY_JOB, "policy_reevaluation")
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]

policy_reevaluation = dg.define_asset_job(
    name="policy_reevaluation",
    selection=dg.AssetSelection.groups(POLICY_GROUP)
    | dg.AssetSelection.assets(compliance_findings),
    description=(
        "Decide the latest check results again under the policy bundle now configured, save "
        "the findings and publish enforcement. Started by policy_bundle_changed."
    ),
)


def reevaluation_request(
    configured_hash: str, last: store.PolicyRun | None
) -> dg.RunRequest | dg.SkipReason:
    """A run when the configured bundle differs from the one the last published run read.

    The run key names the new hash and the run it supersedes: a tick repeated while the
    run is pending asks for nothing new, and going back to an earlier bundle (A, B, A)
    still re-evaluates.
    """
    if last is None:
        return dg.SkipReason("No run has published enforcement yet: the next run applies it.")
    applied = last.configured_hash or last.policy_hash
    if configured_hash == applied:
        return dg.SkipReason(f"Policy bundle unchanged ({configured_hash[:12]}).")
    return dg.RunRequest(
        run_key=f"policy-{configured_hash[:16]}-after-{last.run_id}",
        run_config=run_settings_config(last.data_dir, last.as_of.isoformat()),
        tags={
            "licensing/policy_hash": configured_hash,
            "licensing/previous_policy_hash": applied,
            "licensing/as_of": last.as_of.isoformat(),
        },
    )


def _writing_runs(context: dg.SensorEvaluationContext) -> list[str]:
    """Runs that write the warehouse now (DuckDB has one writer): wait for them."""
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # a test context without an instance
        return []
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=None, statuses=IN_PROGRESS), limit=50)
    return [run.run_id for run in runs if run.job_name in WRITING_JOBS]


@dg.sensor(
    name="policy_bundle_changed",
    job=policy_reevaluation,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Requests policy_reevaluation when the configured policy bundle's content hash differs "
        "from the one the last published enforcement was decided under."
    ),
)
def policy_bundle_changed(
    context: dg.SensorEvaluationContext,
    policy: PolicyResource,
    repository: LicensingRepository,
) -> dg.RunRequest | dg.SkipReason:
    try:
        configured = policy.configured_hash()
    except ContractError as exc:
        return dg.SkipReason(f"Policy bundle unreadable: {exc}")
    last = store.last_run(repository.engine())
    decision = reevaluation_request(configured, last)
    if isinstance(decision, dg.RunRequest):
        busy = _writing_runs(context)
        if busy:
            return dg.SkipReason(f"Waiting for run(s) in progress: {', '.join(busy)}.")
    return decision
