from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline_tests.remediation.fakes import FakeSlack, FakeTicketSystem


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack(retry_after=1)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_tickets() -> Iterator[FakeTicketSystem]:
    server = FakeTicketSystem()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def engine(repository_url: str) -> sa.Engine:
    """The process's engine on a migrated repository."""
    return LicensingRepository(database_url=repository_url).engine()
