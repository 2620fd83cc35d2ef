"""A fresh PostgreSQL database per test, on the machine's local server."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from licensing_pipeline.repository.engines import dispose_engine

SERVER_URL = os.environ.get(
    "LICENSING_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def server_available() -> bool:
    engine = sa.create_engine(SERVER_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create a uniquely named database and drop it afterwards; skip if no server answers."""
    if not server_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but {SERVER_URL} does not answer")
        pytest.skip(f"no PostgreSQL server at {SERVER_URL}")
    name = f"licensing_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        dispose_engine(url)  # the pipeline's pooled connections to it
        with admin.connect() as con:
            con.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
