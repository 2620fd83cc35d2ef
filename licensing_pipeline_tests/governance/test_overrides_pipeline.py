"""Issue 18 end to end: an editor proposes a quota override for a tenant with a quota_exceeded
finding, an approver approves, the next nightly run resolves the finding, the details and
`policy explain` name the change, the apply entry is recorded once over two runs, the audit
chain verifies and the access review lists both people. Embedded, then PostgreSQL.

Until the change-request commands land, the approved request and its propose/approve audit
entries are written directly, as those commands would.
"""

import io
import json
from contextlib import redirect_stdout
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from licensing_pipeline import cli
from licensing_pipeline.governance import access, audit_trail
from licensing_pipeline.governance.applied import RUN_ACTOR
from licensing_pipeline.governance.tables import change_requests
from licensing_pipeline.repository.resources import LicensingRepository, checked_engine
from licensing_pipeline.settings import load_settings
from licensing_pipeline_tests.backends import backend_environment, backend_variables

AS_OF = "2026-11-20"
T0 = datetime(2026, 11, 1, 9, 0)
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("overrides") / "data"
    args = ["demo", "--tenants", "22", "--months", "3", "--as-of", AS_OF, "--out", str(folder)]
    assert cli.main(args) == 0
    return folder


def approved_quota_override(
    engine: sa.Engine, tenant: str, metric: str, limit: float, start: str
) -> int:
    """erin (editor) proposes, carol (approver) approves: the request and both audit entries."""
    payload = {"metric": metric, "limit": limit}
    with engine.begin() as con:
        access.grant(con, "alice", "alice", "admin", name="Alice", at=T0)
        access.grant(con, "alice", "erin", "editor", name="Erin", at=T0)
        access.grant(con, "alice", "carol", "approver", name="Carol", at=T0)
        request_id = con.execute(
            sa.insert(change_requests).values(
                kind="quota_override",
                tenant_id=tenant,
                payload=json.dumps(payload),
                reason="burst agreed for the migration",
                effective_from=pd.Timestamp(start).date(),
                status="approved",
                proposed_by="erin",
                proposed_at=datetime(2026, 11, 18, 9, 0),
                decided_by="carol",
                decided_at=datetime(2026, 11, 19, 15, 30),
            )
        ).inserted_primary_key[0]
        subject = f"change:{request_id}"
        audit_trail.record(con, "erin", "propose", subject, tenant, payload)
        audit_trail.record(con, "carol", "approve", subject, tenant, {})
    return int(request_id)


def stdout_of(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(list(args))
    return code, out.getvalue()


def test_an_approved_quota_override_resolves_the_finding_on_the_next_run(
    data_dir: Path, tmp_path: Path, database_url: str | None
):
    manifest = json.loads((data_dir / "demo_manifest.json").read_text())
    breach = next(
        v
        for v in manifest["violations"]
        if v["check"] == "quota_exceeded" and v["expected_status"] == "open"
    )
    tenant, metric, period = breach["tenant_id"], breach["subject"], breach["period"]
    limit = float(int(breach["observed"] / 0.9))  # ~90 %: near the new limit, not above it
    key = (tenant, metric, period)

    with backend_environment(backend_variables(tmp_path, data_dir, database_url)):
        url = load_settings().database_url
        repository = LicensingRepository(database_url=url)

        def findings(check: str) -> pd.Series:
            frame = repository.load_findings().set_index(["tenant_id", "subject", "period"])
            return frame[frame["check"] == check].loc[key]

        assert cli.main(["run", "--as-of", AS_OF]) == 0
        assert findings("quota_exceeded")["status"] == "open"

        engine = checked_engine(url)
        request_id = approved_quota_override(engine, tenant, metric, limit, f"{period}-01")
        assert cli.main(["run", "--as-of", AS_OF]) == 0
        assert findings("quota_exceeded")["status"] == "resolved"
        near = findings("quota_near_limit")
        assert near["status"] == "open"
        assert near["allowed"] == limit
        assert (
            f"from change #{request_id} (quota override approved by carol on 2026-11-19)"
            in near["details"]
        )

        code, explained = stdout_of(
            "policy", "explain", "--tenant", tenant, "--check", "quota_near_limit"
        )
        assert code == 0
        assert f"override layer of {tenant} (approved changes):" in explained
        assert f"{period}: change #{request_id} (quota override approved by carol" in explained

        assert cli.main(["run", "--as-of", AS_OF]) == 0  # a re-run applies nothing twice
        with engine.connect() as con:
            applies = [e for e in audit_trail.entries(con) if e["action"] == "apply"]
            login = con.execute(sa.text("SELECT current_user")).scalar() if database_url else None
            people = set(access.review(con)["person_id"])
        assert [(e["subject"], e["tenant_id"]) for e in applies] == [
            (f"change:{request_id}", tenant)
        ]
        assert applies[0]["actor"] == (login or RUN_ACTOR)
        assert json.loads(applies[0]["details"])["approved_by"] == "carol"
        assert {"erin", "carol"} <= people

        code, verified = stdout_of("audit", "verify")
        assert code == 0, verified
