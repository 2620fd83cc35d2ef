"""Session-wide set-up: dbt telemetry off, and the dbt manifest built once for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before anything imports or starts dbt: no anonymous usage statistics, no network.
os.environ["DO_NOT_TRACK"] = "1"
os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """``dbt_project/target/manifest.json``, parsed now if missing or older than the project."""
    from licensing_pipeline.warehouse.manifest import prepare_manifest

    return prepare_manifest()
