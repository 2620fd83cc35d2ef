"""`licensing-pipeline run` over a tampered usage history: the blocking ledger check fails and
no findings are written (the previous night's stay as they were)."""

from __future__ import annotations

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

AS_OF = "2026-11-20"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("ledger-home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LICENSING_HOME", str(home))
        env.setenv("DAGSTER_HOME", str(home / "dagster"))
        env.setenv("LICENSING_DATA_DIR", str(home / "data"))
        for name in (
            "LICENSING_DATABASE_URL",
            "LICENSING_WAREHOUSE_PATH",
            "LICENSING_WAREHOUSE_URL",
            "LICENSING_PROFILE",
            "LICENSING_AS_OF",
            "LICENSING_LEDGER_SIGNING_KEY",
            "LICENSING_LEDGER_SIGNING_KEY_FILE",
            "LICENSING_LEDGER_PUBLIC_KEY",
        ):
            env.delenv(name, raising=False)
        assert cli.main(["demo", "--tenants", "22", "--months", "3", "--as-of", AS_OF]) == 0
        yield home


def night() -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["run", "--as-of", AS_OF])
    return code, out.getvalue() + err.getvalue()


def findings() -> pd.DataFrame:
    return LicensingRepository(database_url=load_settings().database_url).load_findings()


def test_a_tampered_history_blocks_the_findings(home: Path) -> None:
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
