from collections.abc import Iterator
from pathlib import Path

import pytest

from licensing_pipeline_tests.postgres import fresh_database
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


@pytest.fixture(params=["sqlite", "postgresql"])
def repository_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'licensing.db'}"
    else:
        with fresh_database() as url:
            yield url
