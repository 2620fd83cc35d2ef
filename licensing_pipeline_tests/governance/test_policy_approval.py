"""The policy approval gate: which approved change a bundle runs under, the production
profile's refusal of an unapproved bundle before any step, the embedded profile's note, and
the enforcement feed naming the approving change. On SQLite and PostgreSQL."""

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from licensing_pipeline import cli
from licensing_pipeline.governance.policy_approval import bundle_approval
from licensing_pipeline.jobs import policy_gate
from licensing_pipeline.policy.bundle import load_policy
from licensing_pipeline.repository.resources import checked_engine
from licensing_pipeline.settings import DEFAULT_POLICY_PATH, load_settings
from licensing_pipeline_tests.backends import (
    backend_environment,
    backend_variables,
    process_environment,
)
from licensing_pipeline_tests.governance.change_rows import approve_bundle, record_change
from licensing_pipeline_tests.test_run_lock import LAUNCH

BUNDLE = load_policy(DEFAULT_POLICY_PATH)
DAY = date(2026, 12, 7)


@pytest.fixture
def engine(repository_url: str) -> sa.Engine:
    return checked_engine(repository_url)


def approval_on(engine: sa.Engine, day: date = DAY) -> int | None:
    return bundle_approval(engine, BUNDLE.version, BUNDLE.content_hash, day).request_id


def test_an_approved_change_naming_version_and_hash_approves_the_bundle(engine: sa.Engine):
    assert approval_on(engine) is None
    first = approve_bundle(engine, BUNDLE.version, BUNDLE.content_hash)
    assert approval_on(engine) == first
    second = approve_bundle(engine, BUNDLE.version, BUNDLE.content_hash, effective_from=DAY)
    assert approval_on(engine) == second  # the newest in force
    assert approval_on(engine, date(2026, 12, 6)) == first


def test_pending_other_hash_other_version_or_out_of_force_do_not_approve(engine: sa.Engine):
    approve_bundle(engine, BUNDLE.version, BUNDLE.content_hash, status="pending")
    approve_bundle(engine, BUNDLE.version, BUNDLE.content_hash, status="rejected")
    approve_bundle(engine, BUNDLE.version, "0" * 64)
    approve_bundle(engine, "1999.1.0", BUNDLE.content_hash)
    approve_bundle(engine, BUNDLE.version, BUNDLE.content_hash, effective_from=date(2026, 12, 8))
    approve_bundle(
        engine,
        BUNDLE.version,
        BUNDLE.content_hash,
        effective_from=date(2026, 11, 1),
        effective_until=date(2026, 12, 6),
    )
    record_change(engine, "quota_override", {"metric": "api_calls", "limit": 1}, tenant_id="acme")
    assert approval_on(engine) is None
    assert approval_on(engine, date(2026, 12, 8)) is not None  # the one effective then


def variables(tmp_path: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    (tmp_path / "data").mkdir(exist_ok=True)
    return {
        **backend_variables(tmp_path / "home", tmp_path / "data", database_url),
        "LICENSING_AS_OF": DAY.isoformat(),
        **extra,
    }


def test_the_gate_is_on_by_default_for_postgres_only(tmp_path: Path):
    embedded = variables(tmp_path, None)
    with backend_environment(embedded):
        assert load_settings().require_approved_policy is False
    postgres = {
        **variables(tmp_path, "postgresql://app@127.0.0.1:5432/x"),
        "LICENSING_REQUIRE_APPROVED_POLICY": "",
    }
    with backend_environment(postgres):
        assert load_settings().require_approved_policy is True
    with backend_environment({**embedded, "LICENSING_REQUIRE_APPROVED_POLICY": "on"}):
        assert load_settings().require_approved_policy is True
    with backend_environment({**embedded, "LICENSING_REQUIRE_APPROVED_POLICY": "maybe"}):
        assert cli.main(["findings"]) == cli.EXIT_USAGE


def test_run_refuses_an_unapproved_bundle_in_one_line_before_any_work(
    tmp_path: Path, database_url: str | None, capsys: pytest.CaptureFixture[str]
):
    """On both profiles with the gate on (the postgres default): nothing runs, and the line
    names the bundle's version and hash and the command that proposes it."""
    required = variables(tmp_path, database_url, LICENSING_REQUIRE_APPROVED_POLICY="on")
    with backend_environment(required):
        assert cli.main(["run"]) == cli.EXIT_USAGE
        settings = load_settings()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"policy bundle {BUNDLE.version} (sha256 {BUNDLE.content_hash})" in err[0]
    assert "licensing-pipeline changes propose policy_version --bundle" in err[0]
    assert not (settings.dagster_home / "storage").exists()  # no run was started


def test_the_embedded_profile_runs_an_unapproved_bundle_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    with backend_environment(variables(tmp_path, None)):
        cli._check_policy_approval(load_settings(), DAY.isoformat())
    err = capsys.readouterr().err
    assert f"Note: policy bundle {BUNDLE.version}" in err
    assert "runs it anyway" in err


def run_config(as_of: date) -> dict:
    return {"resources": {"run_settings": {"config": {"as_of": as_of.isoformat()}}}}


def test_a_run_started_outside_the_cli_is_refused_before_its_first_step(
    tmp_path: Path, database_url: str | None
):
    """The schedule's runs do not pass through the CLI: the nightly job's executor calls the
    gate before its first step, with the run's own as-of day."""
    required = variables(tmp_path, database_url, LICENSING_REQUIRE_APPROVED_POLICY="on")
    with backend_environment(required):
        settings = load_settings()
        gate = policy_gate(settings)
        with pytest.raises(dg.Failure, match=BUNDLE.content_hash):
            gate(run_config(DAY))
        engine = checked_engine(settings.database_url)
        approve_bundle(engine, BUNDLE.version, BUNDLE.content_hash, effective_from=DAY)
        gate(run_config(DAY))
        with pytest.raises(dg.Failure, match="run refused"):
            gate(run_config(date(2026, 12, 6)))  # the approval is not in force yet


def test_the_schedules_run_is_refused_by_the_jobs_executor(
    tmp_path: Path, database_url: str | None
):
    """What the daemon does with the schedule's request (``dg.execute_job``, the job's own
    executor, in a process of its own): the run fails with no step event, naming the bundle."""
    env = process_environment(
        variables(tmp_path, database_url, LICENSING_REQUIRE_APPROVED_POLICY="on")
    )
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCH], env=env, capture_output=True, text=True
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    run = json.loads(launched.stdout.splitlines()[-1])
    assert (run["success"], run["step_events"]) == (False, 0)
    [failure] = run["failures"]
    assert f"policy bundle {BUNDLE.version} (sha256 {BUNDLE.content_hash})" in failure
