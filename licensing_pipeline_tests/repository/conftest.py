from collections.abc import Iterator
from pathlib import Path

import pytest

from licensing_pipeline_tests.postgres import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def repository_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'licensing.db'}"
    else:
        with fresh_database() as url:
            yield url
