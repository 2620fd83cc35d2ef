"""Session-wide set-up: dbt telemetry off, and the dbt manifest built once for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from licensing_pipeline.warehouse.resources import Warehouse
from licensing_pipeline_tests.backends import backend_environment, inherited
from licensing_pipeline_tests.postgres import fresh_database

# Before anything imports or starts dbt: no anonymous usage statistics, no network.
os.environ["DO_NOT_TRACK"] = "1"
os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """``dbt_project/target/manifest.json``, parsed now if missing or older than the project."""
    from licensing_pipeline.warehouse.manifest import prepare_manifest

    return prepare_manifest()


@pytest.fixture(autouse=True)
def project_variables_restored() -> Iterator[None]:
    """The CLI exports DAGSTER_HOME and the Dagster storage URL for its children; a test that
    runs it under monkeypatch alone would leave them to the next test (pointing at a dropped
    database). Every test ends with the project's variables as it found them."""
    with backend_environment({k: v for k, v in os.environ.items() if inherited(k)}):
        yield


@pytest.fixture(params=["duckdb", "postgres"])
def any_warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """The embedded DuckDB warehouse, then a fresh PostgreSQL database: tests that take this
    fixture must pass on both."""
    if request.param == "duckdb":
        yield Warehouse(path=str(tmp_path / "warehouse.duckdb"))
        return
    with fresh_database() as url:
        yield Warehouse(url=url)


@pytest.fixture(params=["sqlite", "postgresql"])
def repository_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A licensing repository on SQLite, then on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'licensing.db'}"
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask (0): whatever comes out private was made so on purpose."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture(params=["embedded", "postgres"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The profile a CLI test runs on: None for the embedded one, then the URL of a fresh
    PostgreSQL database for the postgres one."""
    if request.param == "embedded":
        yield None
        return
    with fresh_database() as url:
        yield url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end files first: with ``--dist loadfile`` the suite ends when its slowest file
    does, so the long ones must not be handed out last (a stable sort keeps the rest)."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)
