"""policy_bundle_changed: a changed bundle hash requests a re-evaluation run."""

from pathlib import Path

import dagster as dg
import pytest

from licensing_pipeline.definitions import defs
from licensing_pipeline.policy.bundle import PolicyResource, load_policy
from licensing_pipeline.policy.sensors import policy_bundle_changed
from licensing_pipeline.settings import DEFAULT_POLICY_PATH
from licensing_pipeline_tests.policy.builders import result, results
from licensing_pipeline_tests.policy.graph import Home


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home")
    home.root.mkdir()
    home.seed(results(result()))
    return home


def tick(home: Home, policy_path: Path, instance: dg.DagsterInstance | None = None):
    context = dg.build_sensor_context(
        instance=instance or dg.DagsterInstance.ephemeral(),
        resources={
            "policy": PolicyResource(path=str(policy_path), database_url=home.database_url),
            "repository": home.repository,
        },
    )
    return policy_bundle_changed(context)


def test_sensor_is_on_by_default_and_targets_the_reevaluation_job():
    sensor = defs.resolve_sensor_def("policy_bundle_changed")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    job = defs.resolve_job_def("policy_reevaluation")
    assert sensor.job_name == job.name
    keys = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert keys == {"policy_evaluations", "compliance_findings", "enforcement_actions"}


def test_nothing_to_do_before_the_first_run_or_when_the_bundle_is_unchanged(
    home: Home, tmp_path: Path
):
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY_PATH.read_text())
    assert isinstance(tick(home, policy), dg.SkipReason)
    assert home.materialize(policy).success
    unchanged = tick(home, policy)
    assert isinstance(unchanged, dg.SkipReason)
    assert "unchanged" in str(unchanged.skip_message)


def test_a_changed_bundle_requests_one_run_keyed_by_its_hash(home: Home, tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY_PATH.read_text())
    assert home.materialize(policy, as_of="2026-11-19").success
    policy.write_text(policy.read_text().replace("action: throttle", "action: suspend", 1))
    new_hash = load_policy(policy).content_hash
    request = tick(home, policy)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key is not None and new_hash[:16] in request.run_key
    assert request.tags["licensing/policy_hash"] == new_hash
    config = request.run_config["resources"]["run_settings"]["config"]
    assert config["as_of"] == "2026-11-19"  # the same data the last run decided on
    again = tick(home, policy)
    assert isinstance(again, dg.RunRequest) and again.run_key == request.run_key
    # once the re-evaluation has run, the sensor is quiet again
    assert home.materialize(policy, as_of="2026-11-19").success
    assert isinstance(tick(home, policy), dg.SkipReason)


def test_an_invalid_bundle_still_triggers_a_run_that_reports_it(home: Home, tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY_PATH.read_text())
    assert home.materialize(policy).success
    policy.write_text(policy.read_text().replace("action: throttle", "action: obliterate", 1))
    assert isinstance(tick(home, policy), dg.RunRequest)
    assert home.materialize(policy).success  # last good in force, WARN check failed
    assert isinstance(tick(home, policy), dg.SkipReason)  # not asked again and again


def test_the_sensor_waits_while_a_run_writes_the_warehouse(home: Home, tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY_PATH.read_text())
    assert home.materialize(policy).success
    policy.write_text(policy.read_text() + "\n# changed\n")
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("nightly_compliance")
        run = instance.create_run_for_job(job_def=job, run_config={})  # NOT_STARTED
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.NOT_STARTED
        waiting = tick(home, policy, instance)
    assert isinstance(waiting, dg.SkipReason) and "in progress" in str(waiting.skip_message)
