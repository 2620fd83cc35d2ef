"""PostgreSQL roles for the repository's tests: the pipeline as a plain LOGIN that owns the
database (a superuser would pass row-level security and every privilege, and prove nothing)."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from licensing_pipeline_tests.postgres import SERVER_URL, fresh_database

quote = sa.create_engine(SERVER_URL).dialect.identifier_preparer.quote


@dataclass
class Cluster:
    admin: sa.Engine  # postgres, superuser: sets the stage only
    pipeline: sa.Engine  # the owner role the pipeline connects as
    owner: str
    roles: list[str]  # more roles of this test, dropped with the owner
    engines: list[sa.Engine]

    def role(self, kind: str, attributes: str = "LOGIN") -> str:
        """A role of this test only (roles are cluster-wide; other tests run meanwhile)."""
        name = f"licensing_test_{kind}_{uuid.uuid4().hex[:10]}"
        with self.admin.begin() as con:
            con.exec_driver_sql(f"CREATE ROLE {quote(name)} {attributes}")
        self.roles.append(name)
        return name

    def login(self, role: str) -> sa.Engine:
        engine = sa.create_engine(self.admin.url.set(username=role))
        self.engines.append(engine)
        return engine


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    owner = f"licensing_test_owner_{uuid.uuid4().hex[:10]}"
    server = sa.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    roles = [owner]
    try:
        with fresh_database() as url:
            database = sa.make_url(url).database
            with server.connect() as con:
                con.execute(sa.text(f'CREATE ROLE "{owner}" LOGIN'))
                con.execute(sa.text(f'ALTER DATABASE "{database}" OWNER TO "{owner}"'))
            admin = sa.create_engine(url)
            pipeline = sa.create_engine(sa.make_url(url).set(username=owner))
            engines = [admin, pipeline]
            try:
                yield Cluster(admin, pipeline, owner, roles, engines)
            finally:
                for engine in engines:
                    engine.dispose()
    finally:
        with server.connect() as con:
            for role in roles:  # their grants went with the database
                con.exec_driver_sql(f"DROP ROLE IF EXISTS {quote(role)}")
        server.dispose()
