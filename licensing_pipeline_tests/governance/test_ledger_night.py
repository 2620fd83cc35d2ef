"""`licensing-pipeline run` over a tampered usage history: the blocking ledger check fails and
no findings are written (the previous night's stay as they were)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from licensing_pipeline import cli
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.settings import load_settings
from licensing_pipeline.warehouse.resources import warehouse_for
from licensing_pipeline_tests.backends import backend_environment, backend_variables
from licensing_pipeline_tests.postgres import fresh_database
from licensing_pipeline_tests.test_end_to_end import AS_OF, data_dir

__all__ = ["data_dir"]  # the end-to-end tests' demo dataset, a fixture used here

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["embedded", "postgres"])
def backend(request: pytest.FixtureRequest, data_dir: Path, tmp_path: Path) -> Iterator[None]:
    """The CLI's environment for one profile (every other LICENSING_* cleared: no key)."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_database()) if request.param == "postgres" else None
        variables = backend_variables(tmp_path / "home", data_dir, url)
        stack.enter_context(backend_environment(variables))
        yield


def night() -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["run", "--as-of", AS_OF])
    return code, out.getvalue() + err.getvalue()


def findings() -> pd.DataFrame:
    return LicensingRepository(database_url=load_settings().database_url).load_findings()


@pytest.mark.usefixtures("backend")
def test_a_tampered_history_blocks_the_findings() -> None:
    code, said = night()
    assert code == 0, said
    before = findings()
    assert len(before) > 0
    warehouse = warehouse_for(load_settings())
    with warehouse.connect() as con:
        marks = con.execute("SELECT entries FROM main.usage_ledger_checkpoints").fetchall()
        assert len(marks) == 1 and marks[0][0] > 0
        victim = con.execute(
            "SELECT source, id FROM main.usage_events ORDER BY time DESC LIMIT 1"
        ).fetchone()
        con.execute("DELETE FROM main.usage_events WHERE source = ? AND id = ?", list(victim))

    code, said = night()
    assert code == cli.EXIT_JOB_FAILED
    assert "compliance_findings was NOT updated" in said
    assert "usage_events:usage_events_ledger_intact" in said
    assert "events, the ledger's live batches" in said
    pd.testing.assert_frame_equal(before, findings())
    assert cli.main(["ledger", "verify"]) == 1
