"""The audit trail's ``apply`` entries on both repositories: once per request, only once
effective, never for a policy version; who the actor is on each profile."""

import json
from datetime import date, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from licensing_pipeline.governance import audit_trail
from licensing_pipeline.governance.applied import RUN_ACTOR, record_applied, run_actor
from licensing_pipeline.governance.change_kinds import approved_changes
from licensing_pipeline.governance.tables import change_requests
from licensing_pipeline.repository.resources import checked_engine


def approve(engine: sa.Engine, kind: str, start: str, tenant: str | None = "t1", **payload) -> int:
    with engine.begin() as con:
        return int(
            con.execute(
                sa.insert(change_requests).values(
                    kind=kind,
                    tenant_id=tenant,
                    payload=json.dumps(payload),
                    reason="agreed",
                    effective_from=date.fromisoformat(start),
                    status="approved",
                    proposed_by="erin",
                    proposed_at=datetime(2026, 11, 1),
                    decided_by="carol",
                    decided_at=datetime(2026, 11, 2),
                )
            ).inserted_primary_key[0]
        )


def applies(engine: sa.Engine) -> list[tuple[str, str | None, str]]:
    with engine.connect() as con:
        return [
            (e["subject"], e["tenant_id"], e["actor"])
            for e in audit_trail.entries(con)
            if e["action"] == "apply"
        ]


def test_each_effective_change_is_applied_once_however_often_the_night_reruns(
    repository_url: str,
):
    engine = checked_engine(repository_url)
    quota = approve(engine, "quota_override", "2026-11-01", metric="api_calls", limit=10)
    later = approve(engine, "feature_grant", "2026-11-21", feature="sso")
    approve(engine, "policy_version", "2026-11-01", tenant=None, version="1", sha256="0" * 64)
    with engine.connect() as con:
        changes = approved_changes(con)

    for _ in range(2):
        with engine.begin() as con:
            record_applied(con, changes, date(2026, 11, 20), "nightly_compliance")
    assert applies(engine) == [(f"change:{quota}", "t1", "nightly_compliance")]

    with engine.begin() as con:
        assert record_applied(con, changes, date(2026, 11, 21), "nightly_compliance") == [later]
    assert [s for s, _, _ in applies(engine)] == [f"change:{quota}", f"change:{later}"]
    with engine.connect() as con:
        assert audit_trail.verify(con).entries == 2
        details = json.loads(audit_trail.entries(con)[0]["details"])
    assert details["approved_by"] == "carol"
    assert details["effective_from"] == "2026-11-01"
    assert details["effective_until"] is None


def test_an_apply_rolls_back_with_the_run_that_failed(repository_url: str):
    engine = checked_engine(repository_url)
    approve(engine, "quota_override", "2026-11-01", metric="api_calls", limit=10)
    with engine.connect() as con:
        changes = approved_changes(con)
    with pytest.raises(RuntimeError), engine.begin() as con:
        record_applied(con, changes, date(2026, 11, 20), "nightly_compliance")
        raise RuntimeError("the findings could not be saved")
    assert applies(engine) == []


def test_the_actor_is_the_login_on_postgresql_or_the_local_user(repository_url: str):
    engine = checked_engine(repository_url)
    with engine.connect() as con:
        if con.dialect.name == "postgresql":
            login = con.execute(sa.text("SELECT session_user")).scalar_one()
            assert run_actor(con, "alice") == run_actor(con, None) == login
        else:
            assert run_actor(con, "alice") == "alice"
            assert run_actor(con, None) == RUN_ACTOR


def test_no_approved_change_applies_nothing(repository_url: str):
    engine = checked_engine(repository_url)
    with engine.begin() as con:
        assert record_applied(con, pd.DataFrame(), date(2026, 11, 20), RUN_ACTOR) == []
    assert applies(engine) == []
