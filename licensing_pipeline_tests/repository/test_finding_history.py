"""finding_history: what each finding was at each run that made it new or changed it."""

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from licensing_pipeline.contract.schemas import FINDING_RECORDS, conform
from licensing_pipeline.repository.history import finding_changes
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.repository.tables import HISTORY_TRACKED, finding_history

NIGHT = datetime(2026, 12, 1, 2, 0)


def record(finding_id: str, tenant: str = "A", **changes: object) -> dict:
    return {
        "finding_id": finding_id,
        "tenant_id": tenant,
        "check": "quota_exceeded",
        "subject": "api_calls",
        "period": "2026-11",
        "observed": 120.0,
        "allowed": 100.0,
        "severity": "critical",
        "action": "throttle",
        "status": "open",
        "policy_version": "2026.11.0",
        "catalog_version": "c1",
        "first_detected_at": NIGHT,
        "last_detected_at": NIGHT,
        "details": "over its quota",
        "policy_hash": "h1",
        "rule_id": "r1",
        "exception_id": None,
        **changes,
    }


def frame(*records: dict) -> pd.DataFrame:
    return conform(pd.DataFrame(list(records)), FINDING_RECORDS)


def save(repo: LicensingRepository, run_id: str, *records: dict) -> None:
    repo.save_findings(
        frame(*records),
        run_id=run_id,
        as_of=date(2026, 12, 1),
        policy_version="2026.11.0",
        catalog_version="c1",
    )


def history(repo: LicensingRepository) -> list[tuple[str, str, str, str]]:
    with repo.connect() as con:
        rows = con.execute(
            sa.select(
                finding_history.c.run_id,
                finding_history.c.finding_id,
                finding_history.c.change,
                finding_history.c.status,
            ).order_by(finding_history.c.history_id)
        )
        return [tuple(r) for r in rows]


def test_changes_are_new_findings_and_changed_tracked_columns():
    latest = frame(record("same"), record("moved"), record("no-value", observed=None))
    latest = latest[["finding_id", *HISTORY_TRACKED]]
    records = frame(
        record("same", last_detected_at=datetime(2026, 12, 2), details="other words"),
        record("moved", status="resolved", observed=150.0),
        record("no-value", observed=np.nan),
        record("fresh"),
    )
    changes = finding_changes(records, latest)
    assert dict(zip(changes["finding_id"], changes["change"], strict=True)) == {
        "moved": "status,observed",
        "fresh": "new",
    }
    assert changes.loc[changes["finding_id"] == "moved", "observed"].item() == 150.0


def test_no_history_yet_makes_every_finding_new():
    latest = pd.DataFrame(columns=["finding_id", *HISTORY_TRACKED])
    changes = finding_changes(frame(record("a"), record("b")), latest)
    assert changes["change"].tolist() == ["new", "new"]


def test_each_run_appends_only_what_is_new_or_changed(repository_url: str):
    repo = LicensingRepository(database_url=repository_url)
    save(repo, "run-1", record("f1"), record("f2", tenant="B"))
    save(repo, "run-2", record("f1"), record("f2", tenant="B"))  # nothing changed
    save(repo, "run-3", record("f1", status="waived", exception_id="x1"), record("f2", tenant="B"))
    save(repo, "run-4", record("f1", status="waived", exception_id="x1"), record("f3"))
    assert history(repo) == [
        ("run-1", "f1", "new", "open"),
        ("run-1", "f2", "new", "open"),
        ("run-3", "f1", "status,exception_id", "waived"),
        ("run-4", "f3", "new", "open"),
    ]
    with repo.connect() as con:
        row = con.execute(
            sa.select(finding_history).where(finding_history.c.run_id == "run-3")
        ).one()
    assert (row.tenant_id, row.observed, row.policy_hash, row.details) == (
        "A",
        120.0,
        "h1",
        "over its quota",
    )
    # the same run's finding_runs row and history rows carry the same time
    runs = repo.load_finding_runs()
    finished = runs.loc[runs["run_id"] == "run-3", "finished_at"].item()
    assert pd.Timestamp(row.recorded_at) == pd.Timestamp(finished)


def test_a_failed_save_appends_no_history(repository_url: str):
    repo = LicensingRepository(database_url=repository_url)
    save(repo, "run-1", record("f1"))
    with pytest.raises(sa.exc.IntegrityError):
        # the same finding twice: the findings' insert fails after the history was computed
        save(repo, "run-2", record("f1", status="resolved"), record("f1", status="resolved"))
    assert history(repo) == [("run-1", "f1", "new", "open")]
    assert repo.load_findings()["status"].tolist() == ["open"]


def test_a_run_without_findings_appends_nothing(repository_url: str):
    repo = LicensingRepository(database_url=repository_url)
    save(repo, "run-1")
    assert history(repo) == []
    save(repo, "run-2", record("f1"))
    save(repo, "run-3", record("f1"))
    assert history(repo) == [("run-2", "f1", "new", "open")]
