"""On PostgreSQL the database itself enforces who may act (migration 0010).

Three logins (unique per test, dropped afterwards) on a throwaway database: the owner
(``postgres``, the bootstrapped admin) grants ``editor`` to one and ``approver`` to another;
each acts over its own connection, through the SQL functions. The third holds only
``viewer``: its proposal, its approval and its direct writes are refused by the database
(SQLSTATE 42501), whatever Python would have said. The audit hash is the same in Python and
in SQL, an edited audit row is refused and a forged one is detected by ``audit verify``.
(The v1/v2 encodings on both profiles: ``test_audit_trail.py``.)
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from licensing_pipeline import cli
from licensing_pipeline.governance import access, audit_trail, pg_workflow
from licensing_pipeline.governance.tables import audit_log, change_requests
from licensing_pipeline.repository.engines import dispose_engine
from licensing_pipeline.repository.resources import checked_engine
from licensing_pipeline_tests.backends import backend_environment, backend_variables
from licensing_pipeline_tests.postgres import SERVER_URL, fresh_database

REFUSED = "42501"
PAYLOAD = {"feature": "sso"}
FROM = date(2026, 12, 1)


@dataclass
class Cluster:
    home: Path
    url: str
    owner: sa.Engine
    editor: str
    approver: str
    viewer: str

    def engine(self, login: str) -> sa.Engine:
        return sa.create_engine(sa.make_url(self.url).set(username=login))

    def verify_cli(self) -> int:
        variables = backend_variables(self.home, self.home / "data", self.url)
        with backend_environment(variables):
            return cli.main(["audit", "verify"])


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    suffix = uuid.uuid4().hex[:10]
    logins = [f"licensing_test_{who}_{suffix}" for who in ("ed", "ap", "vi")]
    server = sa.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with fresh_database() as url:
        with server.connect() as con:
            for login in logins:
                con.exec_driver_sql(f'CREATE ROLE "{login}" LOGIN')
        try:
            owner = checked_engine(url)
            editor, approver, viewer = logins
            with owner.begin() as con:
                access.grant(con, "postgres", "postgres", "admin")
                access.grant(con, "postgres", editor, "editor")
                access.grant(con, "postgres", approver, "approver")
                access.grant(con, "postgres", viewer, "viewer")
            yield Cluster(tmp_path, url, owner, editor, approver, viewer)
        finally:
            dispose_engine(url)
            with server.connect() as con:
                con.exec_driver_sql(
                    f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE usename IN ({', '.join(repr(x) for x in logins)})"
                )
                for login in logins:
                    con.exec_driver_sql(f'DROP ROLE IF EXISTS "{login}"')
            server.dispose()


def act(cluster: Cluster, login: str, action, *args, **kwargs):
    """``action(connection, login, ...)`` over ``login``'s own connection, committed."""
    engine = cluster.engine(login)
    try:
        with engine.begin() as con:
            return action(con, login, *args, **kwargs)
    finally:
        engine.dispose()


def propose(cluster: Cluster, login: str) -> int:
    return act(cluster, login, pg_workflow.propose, "feature_grant", "acme", PAYLOAD, "deal", FROM)


def refused_by_database(cluster: Cluster, login: str, sql: str) -> str:
    """``sql`` run as ``login`` fails with SQLSTATE 42501; returns the database's message."""
    engine = cluster.engine(login)
    try:
        with pytest.raises(sa.exc.DBAPIError) as info, engine.begin() as con:
            con.exec_driver_sql(sql)
    finally:
        engine.dispose()
    assert info.value.orig.pgcode == REFUSED, info.value
    return info.value.orig.diag.message_primary


def trail(cluster: Cluster) -> list[tuple[str, str, str]]:
    with cluster.owner.connect() as con:
        return [(e["actor"], e["action"], e["subject"]) for e in audit_trail.entries(con)]


def test_the_editor_proposes_the_approver_approves_and_the_trail_verifies(cluster, capsys):
    request = propose(cluster, cluster.editor)
    act(cluster, cluster.approver, pg_workflow.approve, request, "ok")
    with cluster.owner.connect() as con:
        row = con.execute(sa.select(change_requests)).one()
    assert (row.status, row.proposed_by, row.decided_by) == (
        "approved",
        cluster.editor,
        cluster.approver,
    )
    assert (row.tenant_id, row.payload, row.decision_note) == ("acme", '{"feature":"sso"}', "ok")
    assert trail(cluster)[-2:] == [
        (cluster.editor, "propose", f"change:{request}"),
        (cluster.approver, "approve", f"change:{request}"),
    ]
    assert cluster.verify_cli() == 0
    assert "audit trail intact: 6 entries" in capsys.readouterr().out


def test_a_grant_makes_the_login_a_member_of_its_group_role_and_a_revoke_undoes_it(cluster):
    member = "SELECT pg_has_role(:login, :group, 'MEMBER')"
    with cluster.owner.begin() as con:
        values = {"login": cluster.editor, "group": "licensing_editor"}
        assert con.execute(sa.text(member), values).scalar_one()
        access.revoke(con, "postgres", cluster.editor, "editor")
        assert not con.execute(sa.text(member), values).scalar_one()
    message = refused_by_database(
        cluster,
        cluster.editor,
        "SELECT licensing_propose_change('feature_grant', 'acme', '{}', 'r', '2026-12-01', NULL)",
    )
    assert message == "permission denied for function licensing_propose_change"


def test_a_login_without_the_role_cannot_propose_or_approve(cluster):
    request = propose(cluster, cluster.editor)
    for sql in (
        "SELECT licensing_propose_change('feature_grant', 'acme', '{}', 'r', '2026-12-01', NULL)",
        f"SELECT licensing_decide_change({request}, 'approved', NULL)",
        f"SELECT licensing_withdraw_change({request})",
        "SELECT licensing_grant_role('someone', 'admin', NULL, NULL)",
    ):
        assert "permission denied for function" in refused_by_database(cluster, cluster.viewer, sql)
    with cluster.owner.connect() as con:
        assert con.execute(sa.select(change_requests.c.status)).scalar_one() == "pending"


def test_a_login_without_the_role_cannot_write_the_tables_directly(cluster):
    propose(cluster, cluster.editor)
    for login in (cluster.viewer, cluster.approver):
        for sql in (
            "INSERT INTO change_requests DEFAULT VALUES",
            "UPDATE change_requests SET status = 'approved'",
            f"INSERT INTO role_grants (person_id, role, granted_by, granted_at) "
            f"VALUES ('{login}', 'admin', '{login}', now())",
            "UPDATE role_grants SET revoked_at = now()",
            "INSERT INTO audit_log DEFAULT VALUES",
            "UPDATE audit_log SET actor = 'mallory'",
        ):
            assert "permission denied for table" in refused_by_database(cluster, login, sql)


def test_only_the_owner_holds_write_privileges_on_the_governance_tables(cluster):
    query = sa.text(
        "SELECT DISTINCT table_name, grantee FROM information_schema.role_table_grants "
        "WHERE table_name IN ('change_requests', 'people', 'role_grants', 'audit_log') "
        "AND privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')"
    )
    with cluster.owner.connect() as con:
        holders = {grantee for _, grantee in con.execute(query)}
    assert holders == {"postgres"}


def test_an_admin_login_grants_through_the_cli_and_the_login_gets_its_group_role(cluster, capsys):
    with cluster.owner.begin() as con:
        access.grant(con, "postgres", cluster.approver, "admin")
    as_approver = sa.make_url(cluster.url).set(username=cluster.approver)
    variables = backend_variables(
        cluster.home, cluster.home / "data", as_approver.render_as_string(hide_password=False)
    )
    try:
        with backend_environment(variables):
            assert cli.main(["access", "grant", cluster.viewer, "editor"]) == 0
    finally:
        dispose_engine(as_approver.render_as_string(hide_password=False))
    assert f"granted editor to {cluster.viewer} by {cluster.approver}" in capsys.readouterr().out
    assert propose(cluster, cluster.viewer) == 1
    assert trail(cluster)[-2][:2] == (cluster.approver, "grant")


def test_a_role_held_in_the_group_but_not_in_role_grants_is_refused_in_the_application_words(
    cluster,
):
    """The group role only opens the door: the function checks ``role_grants``."""
    server = sa.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as con:
        con.exec_driver_sql(f'GRANT licensing_approver TO "{cluster.viewer}"')
    server.dispose()
    request = propose(cluster, cluster.editor)
    with pytest.raises(access.AccessRefused) as info:
        act(cluster, cluster.viewer, pg_workflow.approve, request)
    assert str(info.value) == (
        f"approval of change #{request} refused: {cluster.viewer} is not an approver"
    )


def test_the_editor_cannot_approve_its_own_request(cluster):
    with cluster.owner.begin() as con:
        access.grant(con, "postgres", cluster.editor, "approver")
    request = propose(cluster, cluster.editor)
    message = refused_by_database(
        cluster, cluster.editor, f"SELECT licensing_decide_change({request}, 'approved', NULL)"
    )
    assert message == (
        f"approval of change #{request} refused: {cluster.editor} proposed it "
        "(four-eyes: a different approver must decide)"
    )
    with pytest.raises(access.AccessRefused, match="four-eyes"):
        act(cluster, cluster.editor, pg_workflow.approve, request)


def test_only_the_proposer_withdraws_and_only_while_pending(cluster):
    request = propose(cluster, cluster.editor)
    act(cluster, cluster.approver, pg_workflow.reject, request, "not this quarter")
    with pytest.raises(access.AccessRefused, match="it is already rejected"):
        act(cluster, cluster.editor, pg_workflow.withdraw, request)
    second = propose(cluster, cluster.editor)
    act(cluster, cluster.editor, pg_workflow.withdraw, second)
    with cluster.owner.connect() as con:
        statuses = con.execute(
            sa.select(change_requests.c.status).order_by(change_requests.c.request_id)
        ).scalars()
        assert list(statuses) == ["rejected", "withdrawn"]
    assert [a for _, a, _ in trail(cluster)[-4:]] == ["propose", "reject", "propose", "withdraw"]


def test_an_admin_of_another_database_cannot_bootstrap_this_one(cluster):
    """Group roles are cluster-wide; the first admin of a database is the owner's to grant."""
    server = sa.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as con:
        con.exec_driver_sql(f'GRANT licensing_admin TO "{cluster.viewer}"')
    server.dispose()
    with fresh_database() as other:
        checked_engine(other)
        stranger = sa.create_engine(sa.make_url(other).set(username=cluster.viewer))
        try:
            with pytest.raises(access.AccessRefused) as info, stranger.begin() as con:
                access.grant(con, cluster.viewer, cluster.viewer, "admin")
        finally:
            stranger.dispose()
    assert str(info.value) == (
        f"grant of admin to {cluster.viewer} refused: no admin yet; only the owner login may "
        "grant the first"
    )


def test_only_the_owner_may_act_for_another_person_or_backdate(cluster):
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied for function"):
        act(
            cluster,
            cluster.editor,
            pg_workflow.propose,
            "feature_grant",
            "acme",
            {},
            "r",
            FROM,
            at=datetime(2026, 1, 1),
        )
    with cluster.owner.begin() as con:
        request = pg_workflow.propose(
            con, cluster.editor, "feature_grant", "acme", {}, "r", FROM, at=datetime(2026, 1, 1)
        )
        proposed_at = con.execute(
            sa.select(change_requests.c.proposed_at).where(change_requests.c.request_id == request)
        ).scalar_one()
    assert proposed_at == datetime(2026, 1, 1)


def test_the_audit_hash_is_the_same_in_python_and_in_sql(cluster):
    entries = [
        {"seq": 1, "at": datetime(2026, 12, 7, 9, 0, 0, 123456), "actor": "alice",
         "action": "grant", "tenant_id": None, "subject": "bob:viewer",
         "details": '{"name": "Zoë"}', "prev_hash": audit_trail.GENESIS},
        {"seq": 12, "at": datetime(2026, 1, 2, 3, 4, 5), "actor": "bøb", "action": "propose",
         "tenant_id": "", "subject": "change #7", "details": "{}", "prev_hash": "a" * 64},
    ]  # fmt: skip
    sql = sa.text(
        "SELECT licensing_audit_hash(:seq, :at, :actor, :action, :tenant_id, :subject, "
        ":details, :prev_hash)"
    )
    with cluster.owner.connect() as con:
        for entry in entries:
            assert con.execute(sql, entry).scalar_one() == audit_trail.entry_hash(entry)
        stored = audit_trail.entries(con)
    assert all(e["entry_hash"] == audit_trail.entry_hash(e) for e in stored)  # written in SQL


def test_an_audit_row_update_is_refused_even_for_the_owner(cluster):
    """The approver lacks the privilege; the owner (here a superuser, past every privilege)
    meets the append-only trigger."""
    update = "UPDATE audit_log SET actor = 'mallory' WHERE seq = 1"
    assert "permission denied" in refused_by_database(cluster, cluster.approver, update)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), cluster.owner.begin() as con:
        con.exec_driver_sql(update)
    assert cluster.verify_cli() == 0


def test_a_forged_entry_is_detected_by_audit_verify(cluster, capsys):
    with cluster.owner.begin() as con:
        head = audit_trail.verify(con).head
        con.execute(
            sa.insert(audit_log).values(
                seq=5, at=datetime(2026, 12, 7), actor=cluster.viewer, action="grant",
                subject=f"{cluster.viewer}:admin", details="{}", prev_hash=head,
                entry_hash="e" * 64,
            )
        )  # fmt: skip
    assert cluster.verify_cli() == 1
    assert f"audit entry 5 (2026-12-07T00:00:00, grant by {cluster.viewer}): entry_hash" in (
        capsys.readouterr().out
    )
