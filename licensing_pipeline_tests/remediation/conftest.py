from collections.abc import Iterator
from typing import TypeVar

import pytest
import sqlalchemy as sa

from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline_tests.remediation.fakes import FakeSlack, FakeTicketSystem

Server = TypeVar("Server", FakeSlack, FakeTicketSystem)


def _running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    yield from _running(FakeSlack(retry_after=1))


@pytest.fixture
def fake_tickets() -> Iterator[FakeTicketSystem]:
    yield from _running(FakeTicketSystem())


@pytest.fixture
def engine(repository_url: str) -> sa.Engine:
    """The process's engine on a migrated repository."""
    return LicensingRepository(database_url=repository_url).engine()
