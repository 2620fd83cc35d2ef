"""People, roles and grants: bootstrapping, admin-only grants and revokes, each recorded in the
audit trail in the same transaction, the access review; each refusal its own test.

The functions run on both repositories (SQLite, PostgreSQL) with the actor given; the CLI runs
on the embedded profile (the actor is LICENSING_USER) and on PostgreSQL (the actor is the
database login, whatever LICENSING_USER says).
"""

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from licensing_pipeline import cli
from licensing_pipeline.governance import access, audit_trail
from licensing_pipeline.governance.assets import access_review
from licensing_pipeline.governance.tables import role_grants
from licensing_pipeline.repository.engines import dispose_engine
from licensing_pipeline.repository.resources import LicensingRepository, checked_engine
from licensing_pipeline_tests.backends import backend_environment, backend_variables
from licensing_pipeline_tests.postgres import SERVER_URL, fresh_database

T0 = datetime(2026, 9, 1, 9, 0)


@pytest.fixture
def engine(repository_url: str) -> sa.Engine:
    return checked_engine(repository_url)


@pytest.fixture
def staffed(engine: sa.Engine) -> sa.Engine:
    """alice bootstrapped as admin; bob a viewer, granted by alice."""
    with engine.begin() as con:
        access.grant(con, "alice", "alice", "admin", name="Alice", at=T0)
        access.grant(con, "alice", "bob", "viewer", name="Bob", email="bob@x.io", at=T0)
    return engine


def refused(engine: sa.Engine, message: str, change, *args, **kwargs) -> None:
    """``change`` is refused with ``message`` and leaves the trail and the grants as they were."""
    with engine.connect() as con:
        before = (audit_trail.verify(con).entries, con.execute(sa.select(role_grants)).all())
    with pytest.raises(access.AccessRefused, match=message), engine.begin() as con:
        change(con, *args, **kwargs)
    with engine.connect() as con:
        after = (audit_trail.verify(con).entries, con.execute(sa.select(role_grants)).all())
    assert after == before


def trail(engine: sa.Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as con:
        return [(e["actor"], e["action"], e["subject"]) for e in audit_trail.entries(con)]


def test_the_first_admin_is_bootstrapped_and_recorded(engine: sa.Engine):
    with engine.begin() as con:
        assert access.grant(con, "carol", "alice", "admin") == "bootstrap"
    assert trail(engine) == [("carol", "bootstrap", "alice:admin")]


def test_before_any_admin_only_admin_can_be_granted(engine: sa.Engine):
    refused(
        engine, "no admin yet; the first grant must be admin", access.grant, "bob", "bob", "editor"
    )


def test_after_bootstrap_an_unknown_user_cannot_grant(staffed: sa.Engine):
    refused(
        staffed, "unknown user 'mallory' \\(not in people\\)", access.grant, "mallory", "m", "admin"
    )


def test_a_non_admin_cannot_grant(staffed: sa.Engine):
    refused(staffed, "bob is not an admin", access.grant, "bob", "bob", "admin")


def test_a_non_admin_cannot_revoke(staffed: sa.Engine):
    refused(staffed, "bob is not an admin", access.revoke, "bob", "alice", "admin")


def test_revoking_a_role_not_held_is_refused(staffed: sa.Engine):
    refused(staffed, "bob does not hold editor", access.revoke, "alice", "bob", "editor")


def test_granting_a_role_already_held_is_refused(staffed: sa.Engine):
    refused(staffed, "bob already holds viewer", access.grant, "alice", "bob", "viewer")


def test_the_last_admin_cannot_be_revoked(staffed: sa.Engine):
    refused(staffed, "alice is the last admin", access.revoke, "alice", "alice", "admin")


def test_an_unknown_role_is_refused(staffed: sa.Engine):
    refused(staffed, "unknown role 'owner'", access.grant, "alice", "bob", "owner")


def test_a_revoked_admin_can_no_longer_grant(staffed: sa.Engine):
    with staffed.begin() as con:
        access.grant(con, "alice", "bob", "admin")
        access.revoke(con, "bob", "alice", "admin")
    refused(staffed, "alice is not an admin", access.grant, "alice", "carol", "viewer")


def test_grants_and_revokes_are_in_the_trail_and_it_verifies(staffed: sa.Engine):
    with staffed.begin() as con:
        access.revoke(con, "alice", "bob", "viewer")
        assert access.roles_of(con, "bob") == set()
    assert trail(staffed) == [
        ("alice", "bootstrap", "alice:admin"),
        ("alice", "grant", "bob:viewer"),
        ("alice", "revoke", "bob:viewer"),
    ]
    with staffed.connect() as con:
        assert audit_trail.verify(con).entries == 3
        kept = con.execute(sa.select(role_grants).where(role_grants.c.person_id == "bob")).one()
    assert (kept.revoked_by, kept.granted_by) == ("alice", "alice")


def test_a_grant_that_fails_leaves_no_entry(staffed: sa.Engine):
    with pytest.raises(RuntimeError), staffed.begin() as con:
        access.grant(con, "alice", "carol", "editor")
        raise RuntimeError("the transaction failed")
    assert len(trail(staffed)) == 2


def test_the_review_lists_holders_last_action_and_unused_grants(staffed: sa.Engine):
    with staffed.begin() as con:
        audit_trail.record(con, "alice", "approve", "c1", at=T0 + timedelta(days=100))
        frame = access.review(con, 90, now=T0 + timedelta(days=120))
    rows = frame.set_index("person_id")
    assert list(frame.columns) == access.REVIEW_COLUMNS
    assert rows.loc["alice", "last_acted_at"] == T0 + timedelta(days=100)
    assert (rows.loc["alice", "granted_by"], rows.loc["bob", "name"]) == ("alice", "Bob")
    assert rows["unused"].to_dict() == {"alice": False, "bob": True}


def test_a_recent_grant_is_not_unused(staffed: sa.Engine):
    with staffed.connect() as con:
        frame = access.review(con, 90, now=T0 + timedelta(days=30))
    assert not frame["unused"].any()


# --- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, database_url: str | None) -> Iterator[tuple[Path, str | None]]:
    yield tmp_path, database_url


@pytest.fixture
def embedded(tmp_path: Path) -> tuple[Path, None]:
    return tmp_path, None


@pytest.fixture
def on_postgres(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    with fresh_database() as url:
        yield tmp_path, url


def run(home: tuple[Path, str | None], user: str | None, *args: str) -> int:
    path, url = home
    variables = backend_variables(path, path / "data", url)
    if user:
        variables["LICENSING_USER"] = user
    with backend_environment(variables):
        return cli.main(["access", *args])


def login(home: tuple[Path, str | None]) -> str:
    """Who the CLI acts as: the login on PostgreSQL, else LICENSING_USER (alice here)."""
    url = home[1]
    return sa.make_url(url).username or "" if url else "alice"


def test_cli_bootstrap_grant_and_review(home, capsys):
    me = login(home)
    assert run(home, "alice", "grant", me, "admin", "--name", "First") == 0
    assert f"granted admin to {me} by {me} (bootstrap: no admin existed)" in capsys.readouterr().out
    assert run(home, "alice", "grant", "bob", "viewer", "--email", "bob@x.io") == 0
    assert run(home, "alice", "review") == 0
    out = capsys.readouterr().out
    assert f"granted viewer to bob by {me}" in out
    assert "2 grant(s); 0 unused for 90 days or more" in out
    assert "NaT" not in out and ".0" not in out  # never acted: blank; times to the second


def test_cli_refuses_a_viewer_in_one_line(embedded, capsys):
    home = embedded
    assert run(home, "alice", "grant", "alice", "admin") == 0
    assert run(home, "alice", "grant", "bob", "viewer") == 0
    assert run(home, "bob", "grant", "bob", "admin") == 2
    err = capsys.readouterr().err
    assert err == "licensing-pipeline: grant of admin to bob refused: bob is not an admin\n"


def test_cli_without_licensing_user_is_refused_on_the_embedded_profile(embedded, capsys):
    home = embedded
    assert run(home, None, "grant", "alice", "admin") == 2
    assert "no acting person: set LICENSING_USER" in capsys.readouterr().err


def test_cli_postgres_acts_as_the_login_not_licensing_user(on_postgres, capsys):
    home = on_postgres
    me = login(home)
    assert run(home, "mallory", "grant", me, "admin") == 0
    assert run(home, "mallory", "revoke", me, "admin") == 2
    assert f"revoke of admin from {me} refused: {me} is the last admin" in capsys.readouterr().err


# --- the asset ------------------------------------------------------------------------------


def test_the_access_review_asset_shows_the_review_as_a_markdown_table(
    staffed: sa.Engine, repository_url: str
):
    result = dg.materialize(
        [access_review], resources={"repository": LicensingRepository(database_url=repository_url)}
    )
    metadata = result.asset_materializations_for_node("access_review")[0].metadata
    assert (metadata["grants"].value, metadata["people"].value) == (2, 2)
    assert metadata["unused_grants"].value == 2  # granted in September, no action since
    table = metadata["review"].value
    assert table.splitlines()[0].split("|")[1].strip() == "person_id"
    assert "| bob " in table and "UNUSED" in table


def test_the_access_review_asset_with_no_grants_says_so(engine: sa.Engine, repository_url: str):
    result = dg.materialize(
        [access_review], resources={"repository": LicensingRepository(database_url=repository_url)}
    )
    metadata = result.asset_materializations_for_node("access_review")[0].metadata
    assert (metadata["grants"].value, metadata["review"].value) == (0, "_no roles granted_")


def test_a_login_without_privileges_is_refused_by_the_database(tmp_path: Path, capsys):
    """A PostgreSQL login that is not the owner holds no write privilege on the access tables
    or the trail: the database itself refuses its grant in direct SQL; the CLI refuses it in
    one line (without even SELECT, at the first read; with SELECT, at the grant function,
    which only ``licensing_admin`` may execute)."""
    name = f"licensing_test_nobody_{uuid.uuid4().hex[:10]}"
    server = sa.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as con:
        con.exec_driver_sql(f'CREATE ROLE "{name}" LOGIN')
    try:
        with fresh_database() as url:
            owner = checked_engine(url)
            with owner.begin() as con:
                access.grant(con, "postgres", "postgres", "admin")
            as_nobody = sa.make_url(url).set(username=name).render_as_string(hide_password=False)
            try:
                assert run((tmp_path, as_nobody), None, "grant", name, "admin") == 2
                err = capsys.readouterr().err
                assert err == (
                    "licensing-pipeline: refused by the database: permission denied for table "
                    "licensing_alembic_version\n"
                )
                with owner.begin() as con:
                    con.exec_driver_sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{name}"')
                assert run((tmp_path, as_nobody), None, "grant", name, "admin") == 2
                assert capsys.readouterr().err == (
                    "licensing-pipeline: refused by the database: permission denied for function "
                    "licensing_grant_role\n"
                )
                nobody = sa.create_engine(as_nobody)
                for table in ("people", "role_grants", "audit_log"):
                    with (
                        pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
                        nobody.begin() as con,
                    ):
                        con.exec_driver_sql(f"INSERT INTO {table} DEFAULT VALUES")
                nobody.dispose()
            finally:
                dispose_engine(as_nobody)
            assert trail(owner) == [("postgres", "bootstrap", "postgres:admin")]
    finally:
        with server.connect() as con:
            con.exec_driver_sql(f'DROP ROLE IF EXISTS "{name}"')
        server.dispose()
