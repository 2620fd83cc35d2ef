"""Dagster's instance configuration: the files shipped at the top level and the copies the
package falls back to when installed without them (a wheel) must say the same thing."""

from pathlib import Path

import pytest
import yaml

from licensing_pipeline.instance import (
    EMBEDDED_TEMPLATE,
    POSTGRES_TEMPLATE,
    InstanceError,
    ensure_dagster_home,
)
from licensing_pipeline.settings import PROJECT_DIR, load_settings
from licensing_pipeline_tests.backends import backend_environment


@pytest.mark.parametrize(
    ("shipped", "fallback"),
    [("dagster.yaml", EMBEDDED_TEMPLATE), ("dagster.postgres.yaml", POSTGRES_TEMPLATE)],
)
def test_the_fallback_templates_match_the_shipped_files(shipped: str, fallback: str) -> None:
    config = yaml.safe_load((PROJECT_DIR / shipped).read_text())
    assert config == yaml.safe_load(fallback)
    assert config["telemetry"] == {"enabled": False}


def test_a_sqlite_instance_is_refused_on_the_postgres_profile(tmp_path: Path) -> None:
    home = {"LICENSING_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster")}
    with backend_environment(home):
        ensure_dagster_home(load_settings())  # embedded: writes the SQLite dagster.yaml
    config = yaml.safe_load((tmp_path / "dagster" / "dagster.yaml").read_text())
    assert "storage" not in config
    postgres = {
        **home,
        "LICENSING_PROFILE": "postgres",
        "LICENSING_DATABASE_URL": "postgresql://app@127.0.0.1:5432/none",
    }
    with backend_environment(postgres), pytest.raises(InstanceError, match="in SQLite"):
        ensure_dagster_home(load_settings())
