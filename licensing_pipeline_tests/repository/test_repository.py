import stat
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from licensing_pipeline.compliance.findings import current_findings, merge_history
from licensing_pipeline.contract.schemas import (
    CHECK_RESULTS,
    COMPLIANCE_FINDINGS,
    POLICY_EXCEPTIONS,
    conform,
    empty_frame,
)
from licensing_pipeline.policy.bundle import load_policy
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.settings import DEFAULT_POLICY_PATH


def _findings() -> pd.DataFrame:
    rows = conform(
        pd.DataFrame(
            [
                {
                    "tenant_id": "t-1",
                    "check": "residency_violation",
                    "subject": "us-east-1",
                    "period": "2026-10",
                    "observed": 12.0,
                    "allowed": 0.0,
                    "enforcement": "hard",
                    "details": "Usage processed in us-east-1 (US); your contract allows EU only.",
                }
            ]
        ),
        CHECK_RESULTS,
    )
    tonight = current_findings(
        [rows],
        bundle=load_policy(DEFAULT_POLICY_PATH),
        exceptions=empty_frame(POLICY_EXCEPTIONS),
        as_of=date(2026, 11, 1),
        catalog_version="v1",
        detected_at=datetime(2026, 11, 1, 2, 0, 5),
    )
    return merge_history(empty_frame(COMPLIANCE_FINDINGS), tonight)


def test_findings_round_trip_through_the_repository(repository_url: str):
    repo = LicensingRepository(database_url=repository_url)
    saved = _findings()
    repo.save_findings(
        saved, run_id="run-1", as_of=date(2026, 11, 1), policy_version="p", catalog_version="v1"
    )
    loaded = repo.load_findings()
    assert list(loaded.columns) == list(COMPLIANCE_FINDINGS)
    pd.testing.assert_frame_equal(loaded.reset_index(drop=True), saved.reset_index(drop=True))


def test_saving_replaces_the_previous_night(repository_url: str):
    repo = LicensingRepository(database_url=repository_url)
    saved = _findings()
    for run in ("run-1", "run-2"):
        repo.save_findings(
            saved, run_id=run, as_of=date(2026, 11, 1), policy_version="p", catalog_version="v1"
        )
    assert len(repo.load_findings()) == 1


def test_the_sqlite_repository_is_its_owners_only(tmp_path: Path, open_umask: None):
    """Every tenant's findings: the file (and SQLite's journal, which takes its mode) is
    created 0600 whatever the umask."""
    path = tmp_path / "home" / "licensing.db"
    repo = LicensingRepository(database_url=f"sqlite:///{path}")
    repo.save_findings(
        _findings(),
        run_id="run-1",
        as_of=date(2026, 11, 1),
        policy_version="p",
        catalog_version="v1",
    )
    assert len(repo.load_findings()) == 1
    assert [stat.S_IMODE(p.stat().st_mode) for p in path.parent.glob("licensing.db*")] == [0o600]
