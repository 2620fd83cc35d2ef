"""Row-level security on PostgreSQL: a session for tenant A reads none of tenant B's rows.

The pipeline here is a plain LOGIN role that owns the database and runs the migrations, as in
production (a superuser would pass row-level security and prove nothing). The reader role is
cluster-wide and may exist from an earlier run: the test relies on ``grant_reader`` being
idempotent, not on a clean server.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest
import sqlalchemy as sa

from licensing_pipeline.remediation.tables import alert_outbox, remediation_tickets, ticket_history
from licensing_pipeline.repository.errors import TenantIsolationError
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.repository.tables import compliance_findings, finding_runs
from licensing_pipeline.repository.tenancy import (
    READER_ROLE,
    TENANT_TABLES,
    grant_reader,
    tenant_findings,
    tenant_session,
)
from licensing_pipeline_tests.postgres import SERVER_URL, fresh_database

NOW = datetime(2026, 11, 20, 2, 0)


@dataclass
class Cluster:
    admin: sa.Engine  # postgres, superuser: sets the stage only
    pipeline: sa.Engine  # the owner role the pipeline connects as
    owner: str


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    owner = f"licensing_test_owner_{uuid.uuid4().hex[:10]}"
    server = sa.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with fresh_database() as url:
            database = sa.make_url(url).database
            with server.connect() as con:
                con.execute(sa.text(f'CREATE ROLE "{owner}" LOGIN'))
                con.execute(sa.text(f'ALTER DATABASE "{database}" OWNER TO "{owner}"'))
            admin = sa.create_engine(url)
            pipeline = sa.create_engine(sa.make_url(url).set(username=owner))
            try:
                yield Cluster(admin, pipeline, owner)
            finally:
                admin.dispose()
                pipeline.dispose()
    finally:
        with server.connect() as con:
            con.execute(sa.text(f'DROP ROLE IF EXISTS "{owner}"'))
        server.dispose()


def finding(finding_id: str, tenant: str) -> dict:
    return {
        "finding_id": finding_id,
        "tenant_id": tenant,
        "check": "quota_exceeded",
        "subject": "api_calls",
        "period": "2026-10",
        "observed": 120.0,
        "allowed": 100.0,
        "severity": "critical",
        "action": "throttle",
        "status": "open",
        "policy_version": "p",
        "catalog_version": "c",
        "first_detected_at": NOW,
        "last_detected_at": NOW,
        "details": f"{tenant} is over its quota",
    }


def ticket(ticket_id: int, finding_id: str, tenant: str) -> dict:
    return {
        "ticket_id": ticket_id,
        "finding_id": finding_id,
        "tenant_id": tenant,
        "check": "quota_exceeded",
        "subject": "api_calls",
        "period": "2026-10",
        "severity": "critical",
        "action": "throttle",
        "details": "",
        "owner": "cs",
        "channel": "#cs",
        "escalation_channel": "#cs-lead",
        "status": "open",
        "status_reason": "",
        "cycle": 1,
        "opened_at": NOW,
        "due_date": NOW.date(),
        "updated_at": NOW,
        "sink_status": "disabled",
        "sink_attempts": 0,
    }


def alert(alert_id: int, ticket_id: int | None, key: str) -> dict:
    return {
        "alert_id": alert_id,
        "alert_key": key,
        "kind": "ticket" if ticket_id else "digest",
        "ref": key,
        "period": "2026-11-19",
        "ticket_id": ticket_id,
        "channel": "#cs",
        "payload": "{}",
        "status": "sent",
        "attempts": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }


def seed(cluster: Cluster) -> None:
    """As the pipeline: two tenants' findings, tickets, history and alerts, and a digest."""
    url = cluster.pipeline.url.render_as_string(hide_password=False)
    engine = LicensingRepository(database_url=url).engine()  # migrates the empty database
    try:
        with engine.begin() as con:
            con.execute(
                sa.insert(compliance_findings),
                [finding("fa1", "A"), finding("fa2", "A"), finding("fb1", "B")],
            )
            con.execute(
                sa.insert(remediation_tickets), [ticket(1, "fa1", "A"), ticket(2, "fb1", "B")]
            )
            con.execute(
                sa.insert(ticket_history),
                [
                    {"ticket_id": t, "at": NOW, "actor": "pipeline", "event": "opened", "note": ""}
                    for t in (1, 2)
                ],
            )
            con.execute(
                sa.insert(alert_outbox),
                [alert(1, 1, "ticket:fa1"), alert(2, 2, "ticket:fb1"), alert(3, None, "digest")],
            )
    finally:
        engine.dispose()


def readable(con: sa.Connection) -> dict[str, int]:
    return {
        table: int(con.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
        for table in TENANT_TABLES
    }


def test_a_tenant_session_reads_only_its_own_rows(cluster: Cluster):
    seed(cluster)
    # FORCE row-level security, and the pipeline (the owner) still reads and writes all rows.
    with cluster.pipeline.connect() as con:
        assert con.execute(sa.text("SELECT current_user")).scalar_one() == cluster.owner
        assert readable(con)["compliance_findings"] == 3
        assert readable(con)["alert_outbox"] == 3
        forced = con.execute(
            sa.text(
                "SELECT relname FROM pg_class WHERE relrowsecurity AND relforcerowsecurity "
                "AND relname = ANY(:tables)"
            ),
            {"tables": list(TENANT_TABLES)},
        ).scalars()
        assert set(forced) == set(TENANT_TABLES)

    # The role may already exist cluster-wide: granting twice, as admin then owner, is fine.
    grant_reader(cluster.admin)
    with cluster.admin.begin() as con:
        con.execute(sa.text(f'GRANT "{READER_ROLE}" TO "{cluster.owner}"'))
    grant_reader(cluster.pipeline)

    with tenant_session(cluster.pipeline, "A") as con:
        assert con.execute(sa.text("SELECT current_user")).scalar_one() == READER_ROLE
        tenants = con.execute(sa.text("SELECT DISTINCT tenant_id FROM compliance_findings"))
        assert set(tenants.scalars()) == {"A"}
        assert (
            con.execute(
                sa.text("SELECT count(*) FROM compliance_findings WHERE tenant_id = 'B'")
            ).scalar_one()
            == 0
        )
        assert readable(con) == {
            "compliance_findings": 2,
            "managed_exceptions": 0,
            "enforcement_state": 0,
            "enforcement_changes": 0,
            "remediation_tickets": 1,
            "ticket_history": 1,
            "alert_outbox": 1,
        }
        history = con.execute(sa.select(ticket_history.c.ticket_id)).scalars().all()
        assert history == [1]

    b = tenant_findings(cluster.pipeline, "B")
    assert b["finding_id"].tolist() == ["fb1"]
    assert set(tenant_findings(cluster.pipeline, "nobody")["finding_id"]) == set()


def test_without_a_tenant_the_reader_sees_nothing_and_writes_nothing(cluster: Cluster):
    seed(cluster)
    grant_reader(cluster.admin)
    with cluster.admin.begin() as con:
        con.execute(sa.text(f'GRANT "{READER_ROLE}" TO "{cluster.owner}"'))
    with tenant_session(cluster.pipeline, "A"):
        pass  # leaves licensing.tenant_id defined (as '') on the pooled connection
    with cluster.pipeline.connect() as con, con.begin():
        con.execute(sa.text(f'SET LOCAL ROLE "{READER_ROLE}"'))
        assert set(readable(con).values()) == {0}
    with (
        pytest.raises(sa.exc.DBAPIError, match=r"read-only transaction|permission denied"),
        tenant_session(cluster.pipeline, "A") as con,
    ):
        con.execute(sa.insert(compliance_findings).values(finding("fa9", "A")))
    with (
        pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
        tenant_session(cluster.pipeline, "A") as con,
    ):
        con.execute(sa.select(finding_runs)).all()


def test_the_reader_role_is_neither_owner_nor_bypassrls(cluster: Cluster):
    seed(cluster)
    grant_reader(cluster.admin)
    with cluster.admin.connect() as con:
        role = con.execute(
            sa.text("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = :r"),
            {"r": READER_ROLE},
        ).one()
        assert tuple(role) == (False, False, False)
        owners = con.execute(
            sa.text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        assert set(owners) == {cluster.owner}
        for table in TENANT_TABLES:
            privileges = {
                p: con.execute(
                    sa.text("SELECT has_table_privilege(:r, :t, :p)"),
                    {"r": READER_ROLE, "t": table, "p": p},
                ).scalar_one()
                for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
            }
            assert privileges == {
                "SELECT": True,
                "INSERT": False,
                "UPDATE": False,
                "DELETE": False,
                "TRUNCATE": False,
            }, table


def test_a_bypassrls_role_is_refused_as_reader(cluster: Cluster):
    seed(cluster)
    role = f"licensing_test_bypass_{uuid.uuid4().hex[:10]}"
    with cluster.admin.begin() as con:
        con.execute(sa.text(f'CREATE ROLE "{role}" NOLOGIN BYPASSRLS'))
    try:
        with pytest.raises(TenantIsolationError, match="BYPASSRLS"):
            grant_reader(cluster.admin, role)
    finally:
        with cluster.admin.begin() as con:
            con.execute(sa.text(f'DROP ROLE "{role}"'))


def test_tenant_sessions_are_refused_on_sqlite(tmp_path):
    repo = LicensingRepository(database_url=f"sqlite:///{tmp_path / 'licensing.db'}")
    with pytest.raises(TenantIsolationError, match="row-level security"):
        repo.load_tenant_findings("A")
