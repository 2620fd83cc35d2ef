"""The nightly job's steps on a real Celery worker (dagster-celery, Redis as broker): the
findings equal an in-process run's over the same data, each run in its own database."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from licensing_pipeline import cli
from licensing_pipeline.instance import PID_TAG
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.settings import SettingsError, load_settings
from licensing_pipeline.workers import missing_workers
from licensing_pipeline_tests.postgres import fresh_database

AS_OF = "2026-11-20"
REDIS_URL = os.environ.get("LICENSING_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
COMPARED = ["finding_id", "check", "subject", "period", "status", "observed", "allowed"]
pytestmark = pytest.mark.e2e


def require_redis() -> None:
    """Skip when no Redis answers here; fail in CI, where it must be up."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required in CI but {REDIS_URL} does not answer ({exc})")
        pytest.skip(f"no Redis at {REDIS_URL}")
    finally:
        client.close()


@dataclass
class Profile:
    home: Path
    database_url: str


def use_profile(env: pytest.MonkeyPatch, profile: Profile, data_dir: Path) -> None:
    env.setenv("LICENSING_HOME", str(profile.home))
    env.setenv("LICENSING_PROFILE", "postgres")
    env.setenv("LICENSING_DATABASE_URL", profile.database_url)
    env.setenv("LICENSING_REQUIRE_APPROVED_POLICY", "off")  # the gate: test_policy_approval.py
    env.setenv("LICENSING_DATA_DIR", str(data_dir))
    env.setenv("DAGSTER_HOME", str(profile.home / "dagster-postgres"))
    for name in ("LICENSING_WAREHOUSE_URL", "LICENSING_DAGSTER_STORAGE_URL", "LICENSING_AS_OF"):
        env.delenv(name, raising=False)


def findings() -> pd.DataFrame:
    frame = LicensingRepository(database_url=load_settings().database_url).load_findings()
    return frame[COMPARED].sort_values("finding_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("celery-data")
    args = ["demo", "--tenants", "24", "--months", "4", "--as-of", AS_OF, "--out", str(out)]
    assert cli.main(args) == 0
    return out


@pytest.fixture(scope="module")
def in_process_findings(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> pd.DataFrame:
    with fresh_database() as url, pytest.MonkeyPatch.context() as env:
        use_profile(env, Profile(tmp_path_factory.mktemp("in-process"), url), data_dir)
        env.delenv("LICENSING_EXECUTOR", raising=False)
        assert cli.main(["run", "--as-of", AS_OF]) == 0
        return findings()


@pytest.fixture(scope="module")
def queue() -> str:
    """A queue of this test's own, so concurrent test runs never take each other's steps."""
    return f"licensing-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def celery_profile(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path, queue: str
) -> Iterator[Profile]:
    require_redis()
    with fresh_database() as url, pytest.MonkeyPatch.context() as env:
        profile = Profile(tmp_path_factory.mktemp("celery"), url)
        use_profile(env, profile, data_dir)
        env.setenv("LICENSING_EXECUTOR", "celery")
        env.setenv("LICENSING_CELERY_BROKER", REDIS_URL)
        env.setenv("LICENSING_CELERY_QUEUE", queue)
        env.delenv("LICENSING_CELERY_BACKEND", raising=False)
        yield profile


@pytest.fixture(scope="module")
def worker(celery_profile: Profile, queue: str) -> Iterator[Path]:
    """`licensing-pipeline worker` in its own process group; its log file."""
    log = celery_profile.home / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "licensing_pipeline.cli", "worker", "--concurrency", "2"],
            env=dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        executor = load_settings().executor
        deadline = time.monotonic() + 60
        while missing_workers(executor, timeout=1.0):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not come up:\n{log.read_text()[-3000:]}")
        yield log
    finally:
        process.send_signal(signal.SIGTERM)  # warm shutdown: the worker stops its pool
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def celery_run(celery_profile: Profile, worker: Path) -> tuple[dg.DagsterRun, pd.DataFrame]:
    assert cli.main(["run", "--as-of", AS_OF]) == 0
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="nightly_compliance"), limit=1)
    return runs[0], findings()


def test_the_steps_ran_in_the_celery_worker(
    celery_run: tuple[dg.DagsterRun, pd.DataFrame], worker: Path
):
    run, _ = celery_run
    assert run.status == dg.DagsterRunStatus.SUCCESS
    with dg.DagsterInstance.get() as instance:
        records = instance.get_records_for_run(run.run_id).records
    events = [
        r.event_log_entry.dagster_event for r in records if r.event_log_entry.is_dagster_event
    ]
    started = {e.step_key: e.pid for e in events if e and e.event_type_value == "STEP_START"}
    assert "compliance_findings" in started
    assert os.getpid() not in set(started.values())
    assert run.tags[PID_TAG] == str(os.getpid())  # the run itself was orchestrated here
    in_worker = [
        e
        for e in events
        if e and e.event_type_value == "ENGINE_EVENT" and "celery worker" in (e.message or "")
    ]
    assert {e.step_key for e in in_worker} == set(started)
    log = worker.read_text()
    assert log.count("Task execute_plan[") >= len(started)


def test_celery_finds_what_the_in_process_executor_finds(
    celery_run: tuple[dg.DagsterRun, pd.DataFrame], in_process_findings: pd.DataFrame
):
    _, found = celery_run
    assert len(found) > 0
    pd.testing.assert_frame_equal(found, in_process_findings)


def test_a_run_with_no_worker_on_its_queue_stops_before_it_starts(
    celery_profile: Profile, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("LICENSING_CELERY_QUEUE", f"nobody-{uuid.uuid4().hex[:10]}")
    capsys.readouterr()
    assert cli.main(["run", "--as-of", AS_OF]) == cli.EXIT_USAGE
    assert "no Celery worker consumes queue 'nobody-" in capsys.readouterr().err


def test_celery_is_refused_on_the_embedded_profile_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("LICENSING_EXECUTOR", "celery")
    monkeypatch.delenv("LICENSING_PROFILE", raising=False)
    with pytest.raises(SettingsError, match="LICENSING_PROFILE=postgres"):
        load_settings()
    assert cli.main(["run"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.strip().count("\n") == 0
