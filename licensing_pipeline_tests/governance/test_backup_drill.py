"""The restore drill: two nights, a backup, the state wiped (a new home, a new database), a
restore, and the third night finds exactly what the third night finds where nothing was lost:
the same finding ids, statuses and first detections. On both profiles; and PostgreSQL's own
path, pg_dump and pg_restore."""

import base64
import contextlib
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from licensing_pipeline import cli
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.settings import load_settings
from licensing_pipeline.warehouse import postgres
from licensing_pipeline_tests.backends import backend_environment, backend_variables
from licensing_pipeline_tests.postgres import fresh_database

NIGHTS = [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]
KEY = base64.b64encode(bytes(range(32))).decode()
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("drill") / "data"
    args = ["demo", "--tenants", "22", "--months", "3", "--events-per-tenant", "500"]
    assert cli.main([*args, "--as-of", NIGHTS[-1].isoformat(), "--out", str(folder)]) == 0
    return folder


class Home:
    def __init__(self, home: Path, data_dir: Path, url: str | None) -> None:
        self.variables = {
            **backend_variables(home, data_dir, url),
            "LICENSING_BACKUP_KEY": KEY,
        }

    def cli(self, *args: str) -> int:
        with backend_environment(self.variables):
            return cli.main(list(args))

    def night(self, day: date) -> pd.Timestamp:
        """Run the night; returns when it started (naive UTC, as first detections are)."""
        started = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")
        assert self.cli("run", "--as-of", day.isoformat()) == 0
        return started

    def findings(self) -> pd.DataFrame:
        with backend_environment(self.variables):
            url = load_settings().database_url
        return LicensingRepository(database_url=url).load_findings().set_index("finding_id")


def by_night(findings: pd.DataFrame, started: list[pd.Timestamp]) -> pd.DataFrame:
    """Status, and the night of first detection instead of its wall time."""
    frame = findings.sort_index()
    first = pd.to_datetime(frame["first_detected_at"])
    frame["first_night"] = [sum(1 for s in started if s <= t) for t in first]
    return frame[["status", "first_night"]]


@contextlib.contextmanager
def second_database(database_url: str | None) -> Iterator[str | None]:
    if database_url is None:
        yield None
        return
    with fresh_database() as url:
        yield url


def test_a_restored_home_finds_what_the_home_that_lost_nothing_finds(
    demo: Path, tmp_path: Path, database_url: str | None
):
    kept = Home(tmp_path / "kept", demo, database_url)
    started = [kept.night(NIGHTS[0]), kept.night(NIGHTS[1])]
    archive = tmp_path / "state.lpb"
    assert kept.cli("backup", str(archive)) == 0
    with second_database(database_url) as wiped_url:
        restored = Home(tmp_path / "restored", demo, wiped_url)
        assert restored.cli("restore", str(archive)) == 0
        assert restored.cli("ledger", "verify") == 0
        before_third = kept.findings()
        assert restored.findings().sort_index().equals(before_third.sort_index())
        kept_third, restored_third = kept.night(NIGHTS[2]), restored.night(NIGHTS[2])
        kept_findings, restored_findings = kept.findings(), restored.findings()
    assert len(kept_findings) > 10
    pd.testing.assert_frame_equal(
        by_night(restored_findings, [*started, restored_third]),
        by_night(kept_findings, [*started, kept_third]),
    )
    earlier = before_third.index
    pd.testing.assert_series_equal(
        restored_findings.loc[earlier, "first_detected_at"],
        kept_findings.loc[earlier, "first_detected_at"],
    )


def test_a_database_pg_restored_from_pg_dump_runs_the_next_night(demo: Path, tmp_path: Path):
    """The PostgreSQL path of docs/operations.md: `pg_dump -Fc` of the database after a night,
    `pg_restore` into a new database: the ledger verifies and still refuses updates, and the
    next night runs there, keeping every finding's first detection."""
    dump = tmp_path / "licensing.dump"
    with fresh_database() as url:
        kept = Home(tmp_path / "kept", demo, url)
        kept.night(NIGHTS[0])
        first = kept.findings()
        subprocess.run(["pg_dump", "-Fc", "-f", str(dump), postgres.dsn(url)], check=True)
    with fresh_database() as url:
        subprocess.run(["pg_restore", "--no-owner", "-d", postgres.dsn(url), str(dump)], check=True)
        restored = Home(tmp_path / "restored", demo, url)
        assert restored.cli("ledger", "verify") == 0
        engine = sa.create_engine(url)
        with engine.connect() as con, pytest.raises(sa.exc.DBAPIError, match="append-only"):
            con.execute(sa.text("UPDATE main.usage_ledger SET events = events + 1"))
        engine.dispose()
        pd.testing.assert_frame_equal(restored.findings().sort_index(), first.sort_index())
        restored.night(NIGHTS[1])
        second = restored.findings()
    still = first.index.intersection(second.index)
    assert len(still) > 10
    pd.testing.assert_series_equal(
        second.loc[still, "first_detected_at"], first.loc[still, "first_detected_at"]
    )
