"""Every environment variable the project reads, in one place.

Modules never call ``os.environ`` themselves: they ask for a ``Settings`` and
pass the values on to resources, so what can be configured is visible here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
DBT_PROJECT_DIR = PROJECT_DIR / "dbt_project"
DEFAULT_POLICY_PATH = PACKAGE_DIR / "policy" / "default_policy.yaml"


def _path(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class Settings:
    home: Path
    data_dir: Path
    database_url: str
    warehouse_path: Path
    policy_path: Path
    as_of: str | None

    @property
    def dagster_home(self) -> Path:
        return _path("DAGSTER_HOME", self.home / "dagster")


def load_settings() -> Settings:
    """Read the environment now (not at import), so tests and the CLI can set it first.

    LICENSING_HOME          where the embedded stores live (default ~/.licensing-pipeline)
    LICENSING_DATA_DIR      the exports folder of the data contract (default LICENSING_HOME/data)
    LICENSING_DATABASE_URL  the licensing repository, any SQLAlchemy URL
                            (default sqlite:///LICENSING_HOME/licensing.db)
    LICENSING_WAREHOUSE_PATH  the DuckDB warehouse file (default LICENSING_HOME/warehouse.duckdb)
    LICENSING_POLICY_PATH   the policy bundle (default: the one shipped with the package)
    LICENSING_AS_OF         evaluate as of this date (YYYY-MM-DD); default today in UTC
    """
    home = _path("LICENSING_HOME", Path.home() / ".licensing-pipeline")
    database_url = os.environ.get("LICENSING_DATABASE_URL", "").strip()
    return Settings(
        home=home,
        data_dir=_path("LICENSING_DATA_DIR", home / "data"),
        database_url=database_url or f"sqlite:///{home / 'licensing.db'}",
        warehouse_path=_path("LICENSING_WAREHOUSE_PATH", home / "warehouse.duckdb"),
        policy_path=_path("LICENSING_POLICY_PATH", DEFAULT_POLICY_PATH),
        as_of=os.environ.get("LICENSING_AS_OF", "").strip() or None,
    )
