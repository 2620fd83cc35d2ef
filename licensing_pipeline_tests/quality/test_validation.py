"""Great Expectations runs the suites; a failure says what failed, on which rows, and has a
Data Docs page."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import dagster as dg
import pandas as pd
import pytest

from licensing_pipeline.quality import runtime, validation
from licensing_pipeline.quality.batches import Batch, columns_label
from licensing_pipeline.quality.gx_import import import_gx
from licensing_pipeline.quality.resources import DataQualityResource
from licensing_pipeline.quality.suites import parse_suites

SUITES = parse_suites(
    {
        "contracts": [
            {
                "check": "contracts_reference_catalog",
                "blocking": True,
                "asserts": "Plans exist.",
                "batch": "contracts",
                "expect": [
                    {
                        "expect_column_values_to_be_in_set": {
                            "column": "plan",
                            "value_set": "$catalog_plans",
                        },
                        "problem": "{count} contract(s) name a plan missing from the catalog: "
                        "{examples}",
                    },
                    {"expect_column_values_to_not_be_null": {"column": "contract_id"}},
                ],
            },
            {
                "check": "contracts_look_fine",
                "blocking": False,
                "asserts": "Whatever.",
                "batch": "contracts.broken",
                "expect": [{"expect_table_row_count_to_be_between": {"min_value": 1}}],
            },
        ]
    }
)["contracts"]


DOCS_VARIABLE = "QUALITY_TEST_DATA_DOCS"  # where contracts_job's step writes its pages


def contracts() -> Batch:
    frame = pd.DataFrame(
        {
            "contract_id": ["c-1", "c-2", "c-3"],
            "tenant_id": ["t-1", "t-2", "t-3"],
            "plan": ["starter", "platinum", "starter"],
        }
    ).astype("string")
    return Batch(frame, label=columns_label("contract_id", "tenant_id"))


def boom() -> Batch:
    raise RuntimeError("the table is gone")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, Path]:
    docs = tmp_path_factory.mktemp("docs")
    resource = DataQualityResource(data_docs_dir=str(docs))
    with dg.build_resources({"data_quality": resource}) as resources:  # set up, torn down
        found = resources.data_quality.gx.evaluate(
            SUITES,
            {"contracts": contracts, "contracts.broken": boom},
            {"catalog_plans": ["starter", "growth"]},
            run_id="run-1",
            run_name="2026-11-20 run-1",
        )
    return found, docs


def test_a_failed_expectation_names_the_rows(outcomes):
    reference, _ = outcomes[0]
    assert reference.outcome == "fail"  # blocking
    [failed] = reference.failed
    assert failed.unexpected_count == 1
    assert failed.message == (
        "1 contract(s) name a plan missing from the catalog: c-2 (t-2): plan=platinum"
    )
    assert list(failed.sample["contract_id"]) == ["c-2"]
    assert reference.description().startswith("contracts: 1 contract(s) name a plan")
    assert [e.success for e in reference.expectations] == [False, True]


def test_a_batch_that_cannot_be_built_fails_its_check_with_the_reason(outcomes):
    _, broken = outcomes[0]
    assert broken.outcome == "warn"  # not blocking
    assert "RuntimeError: the table is gone" in broken.description()


def test_the_data_docs_page_is_written_where_the_metadata_points(outcomes):
    found, docs = outcomes
    reference = found[0]
    url = reference.data_docs["contracts"]
    assert Path(unquote(urlparse(url).path)).is_file()
    assert (docs / "index.html").is_file()
    assert reference.data_docs_index == (docs.resolve() / "index.html").as_uri()
    html = (docs / "expectations" / "contracts.html").read_text()
    assert "contracts_reference_catalog" in html  # the suite page says which check it feeds


@dg.op(required_resource_keys={"data_quality"})
def contracts_validated(context) -> None:  # unannotated: this module's annotations are strings
    [reference] = context.resources.data_quality.gx.evaluate(
        SUITES[:1],
        {"contracts": contracts},
        {"catalog_plans": ["starter", "growth"]},
        run_id=context.run_id,
        run_name=f"2026-11-20 run {context.run_id[:8]}",
    )
    assert reference.outcome == "fail"


@dg.job(
    executor_def=dg.multiprocess_executor,
    resource_defs={"data_quality": DataQualityResource(data_docs_dir=dg.EnvVar(DOCS_VARIABLE))},
)
def contracts_job() -> None:
    contracts_validated()


def test_a_step_in_a_process_of_its_own_writes_its_data_docs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The multiprocess and Celery executors set the resource up, and tear it down, in each
    step's process: the pages are written before that process ends."""
    monkeypatch.setenv(DOCS_VARIABLE, str(tmp_path / "docs"))
    with dg.instance_for_test() as instance:
        result = dg.execute_job(dg.reconstructable(contracts_job), instance=instance)
    assert result.success
    assert (tmp_path / "docs" / "index.html").is_file()
    assert (tmp_path / "docs" / "expectations" / "contracts.html").is_file()


def test_the_page_url_is_the_one_gx_gives():
    session = validation.Session(Path("/tmp/licensing-docs-url"), "run-x", "2026-11-20 run-x")
    key = validation._result_key(session, "contracts.quarantine")
    assert validation._page_url(session.docs_dir, key) == validation.page_url(session.docs_dir, key)


def test_scipy_stats_still_works_after_gx_is_imported_without_it():
    import_gx()
    from scipy import stats

    assert stats.norm.cdf(0) == pytest.approx(0.5)


def _niceness() -> int:
    return os.nice(0)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="process priority is a POSIX feature")
def test_the_gx_worker_yields_the_cores_to_the_run(tmp_path: Path):
    """GX imports and renders in the background: it must not slow the event load beside it."""
    gx = runtime.GxRuntime(tmp_path)
    gx.start_worker()
    try:
        if gx._worker is None:
            pytest.skip("no subprocesses here: GX runs in-process")
        expected = min(os.nice(0) + runtime.WORKER_NICENESS, 19)
        assert gx._worker.submit(_niceness).result(timeout=120) == expected
    finally:
        gx.close()


def test_the_worker_ends_with_the_runtime(tmp_path: Path):
    """The worker lives as long as the run or step that started it, no longer."""
    gx = runtime.GxRuntime(tmp_path)
    gx.start_worker()
    worker = gx._worker
    if worker is None:
        pytest.skip("no subprocesses here: GX runs in-process")
    worker.submit(runtime._worker_ready).result(timeout=300)
    processes = list(worker._processes.values())
    gx.close()
    assert gx._worker is None
    assert all(not process.is_alive() for process in processes)


_RUN_PROCESS = """
import multiprocessing.resource_tracker as tracker
import sys
import threading
import time
from pathlib import Path
from licensing_pipeline.quality import runtime

gx = runtime.GxRuntime(Path(sys.argv[2]))


def start():
    gx.start_worker()
    if gx._worker is not None:
        gx._worker.submit(runtime._worker_ready).result(timeout=300)


if sys.argv[1] == "thread":  # a thread that ends once the worker is up: it must outlive it
    starter = threading.Thread(target=start)
    starter.start()
    starter.join()
else:
    start()
worker = gx._worker
if worker is None:
    print("in-process", flush=True)
    sys.exit()
worker.submit(runtime._worker_ready).result(timeout=300)
print(*worker._processes, tracker._resource_tracker._pid, flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (a reaped-by-nobody process still answers a signal)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("started_by", ["main", "thread"])
def test_the_gx_worker_and_its_resource_tracker_end_when_the_run_is_killed(
    started_by: str, tmp_path: Path
):
    """`kill -9` of a run must not leave the GX worker (and the resource tracker it keeps
    alive) behind, holding their memory for good; started by a thread that has ended since,
    the worker still serves the run until then."""
    run = subprocess.Popen(
        [sys.executable, "-c", _RUN_PROCESS, started_by, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    pids: list[int] = []
    try:
        line = run.stdout.readline()  # type: ignore[union-attr]
        if line.strip() == "in-process":
            pytest.skip("no subprocesses here: GX runs in-process")
        pids = [int(pid) for pid in line.split()]
        assert len(pids) == 2 and all(_running(pid) for pid in pids)
        run.kill()
        run.wait()
        deadline = time.monotonic() + 60
        while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [pid for pid in pids if _running(pid)] == []
    finally:
        run.kill()
        run.wait()
        for pid in pids:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
