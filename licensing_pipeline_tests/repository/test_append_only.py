"""finding_history and ticket_history refuse UPDATE, DELETE and TRUNCATE.

The trigger is tried as a superuser (no privilege stops it) and as the owner after it gave
itself the privileges back; the privileges as the owner the migration ran as, and as a separate
application login that a DBA granted everything on every table.
"""

from collections.abc import Iterator
from datetime import datetime

import psycopg2
import pytest
import sqlalchemy as sa

from licensing_pipeline.remediation.tables import remediation_tickets, ticket_history
from licensing_pipeline.repository import append_only, schema
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.repository.tables import finding_history
from licensing_pipeline.warehouse.postgres import dsn
from licensing_pipeline_tests.postgres import fresh_database
from licensing_pipeline_tests.repository.conftest import Cluster, quote
from licensing_pipeline_tests.repository.test_finding_history import record

NOW = datetime(2026, 12, 1, 2, 0)
TABLES = ("finding_history", "ticket_history")
REWRITE = {
    "UPDATE": "UPDATE {table} SET {column} = {column}",
    "DELETE": "DELETE FROM {table}",
    "TRUNCATE": "TRUNCATE {table}",
}
COLUMN = {"finding_history": "status", "ticket_history": "note"}


def seed(engine: sa.Engine) -> None:
    """A ticket with one history row, and one finding_history row."""
    with engine.begin() as con:
        con.execute(
            sa.insert(remediation_tickets).values(
                ticket_id=1,
                finding_id="f1",
                tenant_id="A",
                check="quota_exceeded",
                subject="api_calls",
                period="2026-11",
                severity="critical",
                action="throttle",
                owner="cs",
                channel="#cs",
                escalation_channel="#cs-lead",
                status="open",
                opened_at=NOW,
                due_date=NOW.date(),
                updated_at=NOW,
            )
        )
        con.execute(
            sa.insert(ticket_history).values(ticket_id=1, at=NOW, actor="pipeline", event="opened")
        )
        history = {"run_id": "r1", "recorded_at": NOW, "change": "new"}
        con.execute(sa.insert(finding_history).values(**record("f1"), **history))


def seeded(url: str) -> sa.Engine:
    engine = LicensingRepository(database_url=url).engine()  # migrated
    seed(engine)
    return engine


@pytest.fixture
def repository(repository_url: str) -> sa.Engine:
    return seeded(repository_url)


@pytest.fixture
def pg_repository() -> Iterator[sa.Engine]:
    """For what SQLite has no counterpart of: TRUNCATE, statement triggers, foreign keys on."""
    with fresh_database() as url:
        yield seeded(url)


def rows(engine: sa.Engine) -> dict[str, list]:
    with engine.connect() as con:
        return {
            t: [tuple(r) for r in con.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1"))]
            for t in TABLES
        }


def attempt(engine: sa.Engine, table: str, statement: str) -> None:
    with engine.begin() as con:
        con.exec_driver_sql(REWRITE[statement].format(table=table, column=COLUMN[table]))


@pytest.mark.parametrize("statement", ["UPDATE", "DELETE"])
@pytest.mark.parametrize("table", TABLES)
def test_the_trigger_refuses_a_rewrite(repository: sa.Engine, table: str, statement: str):
    before = rows(repository)
    with pytest.raises(sa.exc.DBAPIError, match=f"{table} is append-only: {statement} refused"):
        attempt(repository, table, statement)
    assert rows(repository) == before


@pytest.mark.parametrize("table", TABLES)
def test_the_trigger_refuses_truncate(pg_repository: sa.Engine, table: str):
    before = rows(pg_repository)
    with pytest.raises(sa.exc.DBAPIError, match=f"{table} is append-only: TRUNCATE refused"):
        attempt(pg_repository, table, "TRUNCATE")
    assert rows(pg_repository) == before


def test_a_statement_that_matches_no_row_is_refused_too(pg_repository: sa.Engine):
    refused = pytest.raises(sa.exc.DBAPIError, match="finding_history is append-only: DELETE")
    with refused, pg_repository.begin() as con:
        con.exec_driver_sql("DELETE FROM finding_history WHERE false")


def test_appending_still_works(repository: sa.Engine):
    with repository.begin() as con:
        con.execute(sa.insert(ticket_history).values(ticket_id=1, at=NOW, actor="cs", event="note"))
    assert len(rows(repository)["ticket_history"]) == 2


def test_a_ticket_with_history_cannot_be_deleted(pg_repository: sa.Engine):
    refused = pytest.raises(sa.exc.DBAPIError, match="ticket_history is append-only: DELETE")
    with refused, pg_repository.begin() as con:
        con.execute(sa.delete(remediation_tickets))
    with pg_repository.connect() as con:
        assert (
            con.execute(sa.select(sa.func.count()).select_from(remediation_tickets)).scalar() == 1
        )


def privileges(con: sa.Connection, role: str, table: str) -> dict[str, bool]:
    return {
        p: con.execute(
            sa.text("SELECT has_table_privilege(:r, :t, :p)"), {"r": role, "t": table, "p": p}
        ).scalar_one()
        for p in ("SELECT", "INSERT", *append_only.REWRITES)
    }


@pytest.mark.parametrize("statement", list(REWRITE))
@pytest.mark.parametrize("table", TABLES)
def test_the_owner_holds_no_rewrite_privilege(cluster: Cluster, table: str, statement: str):
    LicensingRepository(database_url=cluster.pipeline.url.render_as_string(False)).engine()
    with pytest.raises(sa.exc.ProgrammingError, match=f"permission denied for table {table}"):
        attempt(cluster.pipeline, table, statement)
    # An owner may give them back to itself: the trigger still refuses.
    with cluster.pipeline.begin() as con:
        con.exec_driver_sql(f"GRANT UPDATE, DELETE, TRUNCATE ON {table} TO {quote(cluster.owner)}")
    with pytest.raises(sa.exc.DBAPIError, match=f"{table} is append-only: {statement} refused"):
        attempt(cluster.pipeline, table, statement)


@pytest.mark.parametrize("statement", list(REWRITE))
@pytest.mark.parametrize("table", TABLES)
def test_an_application_login_granted_everything_cannot_rewrite(
    cluster: Cluster, table: str, statement: str
):
    app = cluster.role("app")
    with cluster.pipeline.begin() as con:  # what a DBA does for an application login
        con.exec_driver_sql(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {quote(app)}"
        )
    LicensingRepository(database_url=cluster.pipeline.url.render_as_string(False)).engine()
    with cluster.admin.connect() as con:
        assert privileges(con, app, table) == {
            "SELECT": True,
            "INSERT": True,
            "UPDATE": False,
            "DELETE": False,
            "TRUNCATE": False,
        }
        assert privileges(con, app, "compliance_findings")["UPDATE"] is True
    with pytest.raises(sa.exc.ProgrammingError, match=f"permission denied for table {table}"):
        attempt(cluster.login(app), table, statement)


def test_upgrading_revokes_rewrites_granted_before(cluster: Cluster):
    app = cluster.role("app")
    schema.upgrade(cluster.pipeline, "0005")
    with cluster.pipeline.begin() as con:
        con.exec_driver_sql(f"GRANT ALL ON ticket_history TO {quote(app)}")
        con.exec_driver_sql(f"GRANT UPDATE (note) ON ticket_history TO {quote(app)}")
        con.exec_driver_sql("GRANT DELETE ON ticket_history TO PUBLIC")
    schema.upgrade(cluster.pipeline)
    with cluster.admin.connect() as con:
        assert privileges(con, app, "ticket_history")["UPDATE"] is False
        assert privileges(con, app, "ticket_history")["INSERT"] is True
        assert not con.execute(
            sa.text("SELECT has_column_privilege(:r, 'ticket_history', 'note', 'UPDATE')"),
            {"r": app},
        ).scalar_one()
        assert privileges(con, "public", "ticket_history")["DELETE"] is False


def test_downgrading_gives_ticket_history_back_to_its_owner(cluster: Cluster):
    engine = LicensingRepository(database_url=cluster.pipeline.url.render_as_string(False)).engine()
    seed(engine)
    schema.downgrade(cluster.pipeline, "0005")
    with cluster.pipeline.begin() as con:
        con.exec_driver_sql("UPDATE ticket_history SET note = 'rewritten'")
    assert not sa.inspect(cluster.pipeline).has_table("finding_history")


def test_the_sql_guards_any_table_through_a_plain_psycopg2_cursor():
    """What the warehouse's ledger needs: a schema-qualified table, no SQLAlchemy."""
    with fresh_database() as url:
        pg = psycopg2.connect(dsn(url))
        try:
            with pg.cursor() as cur:
                cur.execute('CREATE SCHEMA main; CREATE TABLE main."usage ledger" (n int)')
                for statement in append_only.postgres_sql('main."usage ledger"'):
                    cur.execute(statement)
                cur.execute('INSERT INTO main."usage ledger" VALUES (1)')
            pg.commit()
            for statement in REWRITE:
                sql = REWRITE[statement].format(table='main."usage ledger"', column="n")
                with (
                    pytest.raises(
                        psycopg2.Error, match=f"usage ledger is append-only: {statement}"
                    ),
                    pg.cursor() as cur,
                ):
                    cur.execute(sql)
                pg.rollback()
            with pg.cursor() as cur:
                cur.execute(
                    "SELECT a.privilege_type FROM pg_class c, aclexplode(c.relacl) a "
                    """WHERE c.oid = 'main."usage ledger"'::regclass ORDER BY 1"""
                )
                kept = {p for (p,) in cur.fetchall()}
                assert {"SELECT", "INSERT"} <= kept and not kept & set(append_only.REWRITES)
                cur.execute('SELECT n FROM main."usage ledger"')
                assert cur.fetchall() == [(1,)]
        finally:
            pg.close()
