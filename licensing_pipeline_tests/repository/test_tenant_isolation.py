"""Row-level security on PostgreSQL: a session for tenant A reads none of tenant B's rows.

The pipeline here is a plain LOGIN role that owns the database and runs the migrations, as in
production (a superuser would pass row-level security and prove nothing). The reader role is
cluster-wide and may exist from an earlier run: the test relies on ``grant_reader`` being
idempotent, not on a clean server.
"""

import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa

from licensing_pipeline.remediation.tables import alert_outbox, remediation_tickets, ticket_history
from licensing_pipeline.repository import schema
from licensing_pipeline.repository.errors import TenantIsolationError
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.repository.tables import compliance_findings, finding_history, finding_runs
from licensing_pipeline.repository.tenancy import (
    BINDINGS,
    READER_ROLE,
    TENANT_SETTING,
    TENANT_TABLES,
    grant_reader,
    grant_tenant,
    revoke_tenant,
    tenant_findings,
    tenant_session,
)
from licensing_pipeline_tests.repository.conftest import Cluster

NOW = datetime(2026, 11, 20, 2, 0)


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
                sa.insert(finding_history),
                [
                    {**finding(f, t), "run_id": "r1", "recorded_at": NOW, "change": "new"}
                    for f, t in (("fa1", "A"), ("fb1", "B"))
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


# What tenant A reads of seed(): its findings, its ticket with its history and alert.
A_ROWS = {
    "compliance_findings": 2,
    "managed_exceptions": 0,
    "enforcement_state": 0,
    "enforcement_changes": 0,
    "remediation_tickets": 1,
    "ticket_history": 1,
    "alert_outbox": 1,
    "finding_history": 1,
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
        assert readable(con) == A_ROWS
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


def other_tenants_rows(con: sa.Connection, tenant: str) -> dict[str, int]:
    """Rows of tenants other than ``tenant`` this connection reads, per tenant table."""
    own_ticket = "(SELECT ticket_id FROM remediation_tickets WHERE tenant_id = :t)"
    where = {
        "ticket_history": f"ticket_id NOT IN {own_ticket}",
        "alert_outbox": f"ticket_id IS NULL OR ticket_id NOT IN {own_ticket}",
    }
    return {
        table: int(
            con.execute(
                sa.text(
                    f"SELECT count(*) FROM {table} WHERE {where.get(table, 'tenant_id <> :t')}"
                ),
                {"t": tenant},
            ).scalar_one()
        )
        for table in TENANT_TABLES
    }


def test_a_reader_member_cannot_choose_its_tenant_with_the_setting(cluster: Cluster):
    """The adversarial report: a login in licensing_reader set the setting and read it all."""
    seed(cluster)
    grant_reader(cluster.admin)
    service = cluster.role("service")
    with cluster.admin.begin() as con:
        con.exec_driver_sql(f'GRANT "{READER_ROLE}" TO "{service}"')
    with cluster.login(service).connect() as con:
        for tenant in ("A", "B"):
            con.execute(sa.select(sa.func.set_config(TENANT_SETTING, tenant, False)))
            assert set(readable(con).values()) == {0}
            con.exec_driver_sql(f'SET ROLE "{READER_ROLE}"')
            assert set(readable(con).values()) == {0}
            con.exec_driver_sql("RESET ROLE")


def test_a_bound_tenant_login_reads_only_its_tenant_whatever_its_sql_does(cluster: Cluster):
    seed(cluster)
    grant_reader(cluster.admin)
    tenant = cluster.role("tenant")
    with cluster.admin.begin() as con:
        con.exec_driver_sql(f'GRANT "{READER_ROLE}" TO "{tenant}"')  # as the old README said
    assert grant_tenant(cluster.pipeline, "A", tenant) is True
    # What the owner offers a tenant by mistake: a SECURITY DEFINER function and a view.
    with cluster.pipeline.begin() as con:
        con.exec_driver_sql(
            "CREATE FUNCTION every_finding() RETURNS SETOF compliance_findings LANGUAGE sql "
            "SECURITY DEFINER SET search_path = public AS 'SELECT * FROM compliance_findings'"
        )
        con.exec_driver_sql("CREATE VIEW every_ticket AS SELECT * FROM remediation_tickets")
        con.exec_driver_sql("GRANT SELECT ON every_ticket TO PUBLIC")
        assert con.execute(sa.text("SELECT count(*) FROM every_finding()")).scalar_one() == 3

    with cluster.login(tenant).connect() as con:
        assert readable(con) == A_ROWS
        attempts = [
            f"SELECT set_config('{TENANT_SETTING}', 'B', false)",
            f"SET {TENANT_SETTING} = 'B'",
            f'SET ROLE "{READER_ROLE}"',
            "RESET ROLE",
            f"SET SESSION ROLE \"{READER_ROLE}\"; SELECT set_config('{TENANT_SETTING}', 'B', true)",
        ]
        for attempt in attempts:
            con.exec_driver_sql(attempt)
            assert readable(con) == A_ROWS, attempt
            assert set(other_tenants_rows(con, "A").values()) == {0}, attempt
            through_owner = con.execute(sa.text("SELECT DISTINCT tenant_id FROM every_finding()"))
            assert set(through_owner.scalars()) == {"A"}, attempt
            view = con.execute(sa.text("SELECT DISTINCT tenant_id FROM every_ticket"))
            assert set(view.scalars()) == {"A"}, attempt
        con.exec_driver_sql("RESET ROLE")
        # The only SECURITY DEFINER function it can run is the one made above.
        definers = con.execute(
            sa.text(
                "SELECT proname FROM pg_proc "
                "WHERE prosecdef AND has_function_privilege(oid, 'EXECUTE')"
            )
        ).scalars()
        assert list(definers) == ["every_finding"]
        # It reads its own binding and cannot change any.
        assert con.execute(sa.text(f"SELECT * FROM {BINDINGS}")).all() == [(tenant, "A")]
        con.commit()
        for write in (
            f"INSERT INTO {BINDINGS} VALUES ('{tenant}x', 'B')",
            f"UPDATE {BINDINGS} SET tenant_id = 'B'",
            f"DELETE FROM {BINDINGS}",
        ):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), con.begin():
                con.exec_driver_sql(write)

    # The pipeline's own per-tenant read (the `statement` command) still picks any tenant.
    with cluster.admin.begin() as con:
        con.exec_driver_sql(f'GRANT "{READER_ROLE}" TO "{cluster.owner}"')
    assert tenant_findings(cluster.pipeline, "B")["finding_id"].tolist() == ["fb1"]
    with cluster.pipeline.connect() as con:
        assert readable(con)["compliance_findings"] == 3


def test_granting_a_tenant_is_idempotent_checked_and_revocable(cluster: Cluster):
    seed(cluster)
    tenant = cluster.role('we:ird %s "name"')  # quoted, never spliced
    assert grant_tenant(cluster.pipeline, "B", tenant) is True
    assert grant_tenant(cluster.pipeline, "B", tenant) is False
    with pytest.raises(TenantIsolationError, match=r"bound to tenant 'B'.*revoke-tenant"):
        grant_tenant(cluster.pipeline, "A", tenant)
    with cluster.login(tenant).connect() as con:
        assert set(con.execute(sa.text("SELECT tenant_id FROM compliance_findings")).scalars()) == {
            "B"
        }

    assert revoke_tenant(cluster.pipeline, tenant) == "B"
    assert revoke_tenant(cluster.pipeline, tenant) is None
    with (
        cluster.login(tenant).connect() as con,
        pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
    ):
        con.execute(sa.text("SELECT count(*) FROM compliance_findings"))
    assert grant_tenant(cluster.pipeline, "A", tenant) is True  # moved to another tenant

    member_of_owner = cluster.role("owner_member")
    with cluster.admin.begin() as con:
        con.exec_driver_sql(f'GRANT "{cluster.owner}" TO "{member_of_owner}"')
    refused = {
        "nobody_" + uuid.uuid4().hex[:10]: "no role",
        cluster.role("super", "LOGIN SUPERUSER"): "superuser or has BYPASSRLS",
        cluster.role("bypass", "LOGIN BYPASSRLS"): "superuser or has BYPASSRLS",
        cluster.role("creator", "LOGIN CREATEROLE"): "CREATEROLE",
        cluster.role("group", "NOLOGIN"): "cannot log in",
        cluster.owner: "owner or a member of it",
        member_of_owner: "owner or a member of it",
    }
    for role, reason in refused.items():
        with pytest.raises(TenantIsolationError, match=reason):
            grant_tenant(cluster.pipeline, "A", role)
    for tenant_id in ("", "A\n", "x" * 201):
        with pytest.raises(TenantIsolationError, match="not a tenant id"):
            grant_tenant(cluster.pipeline, tenant_id, tenant)
    with cluster.pipeline.connect() as con:
        bindings = con.execute(sa.text(f"SELECT role_name, tenant_id FROM {BINDINGS}")).all()
    assert bindings == [(tenant, "A")]


def test_downgrading_below_the_bindings_takes_the_bound_logins_select(cluster: Cluster):
    """Under 0002's policies a bound login could pick any tenant again: it reads nothing."""
    seed(cluster)
    tenant = cluster.role("tenant :x")
    grant_tenant(cluster.pipeline, "A", tenant)
    schema.downgrade(cluster.pipeline, "0003")
    with (
        cluster.login(tenant).connect() as con,
        pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
    ):
        con.execute(sa.text("SELECT count(*) FROM compliance_findings"))
    schema.upgrade(cluster.pipeline)
