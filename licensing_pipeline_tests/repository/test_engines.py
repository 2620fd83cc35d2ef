"""One engine per process and URL, and a forked child that leaves its parent's connections be."""

import os

import sqlalchemy as sa

from licensing_pipeline.repository.engines import dispose_engine, shared_engine
from licensing_pipeline.repository.resources import LicensingRepository


def test_every_use_of_a_url_shares_one_engine(repository_url: str):
    repository = LicensingRepository(database_url=repository_url)
    assert repository.engine() is shared_engine(repository_url) is repository.engine()
    with repository.begin() as con:
        con.execute(sa.text("CREATE TABLE probe (n INTEGER)"))
        con.execute(sa.text("INSERT INTO probe VALUES (1)"))
    with repository.connect() as con:
        assert con.execute(sa.text("SELECT n FROM probe")).scalar_one() == 1
    dispose_engine(repository_url)
    assert shared_engine(repository_url) is not None


def test_a_forked_child_opens_its_own_connections(repository_url: str):
    repository = LicensingRepository(database_url=repository_url)
    backend = "SELECT 1" if repository_url.startswith("sqlite") else "SELECT pg_backend_pid()"
    with repository.connect() as con:
        parent_backend = con.execute(sa.text(backend)).scalar_one()
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 when it got a working connection of its own
        try:
            with repository.connect() as con:
                child_backend = con.execute(sa.text(backend)).scalar_one()
            own = repository_url.startswith("sqlite") or child_backend != parent_backend
            os._exit(0 if own else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with repository.connect() as con:  # the parent's pooled connection still answers
        assert con.execute(sa.text(backend)).scalar_one() == parent_backend
