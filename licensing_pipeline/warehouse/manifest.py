"""The dbt project as Dagster sees it, and the manifest that Dagster builds its assets from.

``@dbt_assets`` reads ``dbt_project/target/manifest.json`` when the code location loads, so
the manifest must exist (and match the models) before then: the Makefile's set-up step and
the test session run ``python -m licensing_pipeline.warehouse.manifest``, and importing the
assets re-parses when the manifest is missing or older than a project file. ``dbt parse``
needs no database connection and no network.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from filelock import FileLock

from licensing_pipeline.settings import DBT_PROJECT_DIR

# The profile target the models run on. DuckDB today: the asset hands dbt the `warehouse`
# resource's file. The `postgres` target in profiles.yml is for the PostgreSQL warehouse.
DBT_TARGET = "duckdb"

_NO_TELEMETRY = {"DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}

# Files and folders of the dbt project that are outputs, not inputs, of a parse.
_GENERATED = {"target", "logs", "dbt_packages", ".user.yml"}

dbt_project = DbtProject(
    project_dir=DBT_PROJECT_DIR,
    profiles_dir=DBT_PROJECT_DIR,
    target=DBT_TARGET,
)


def dbt_executable() -> str:
    """The ``dbt`` next to this interpreter: the venv's bin folder is often not on PATH."""
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def build_dbt_resource() -> DbtCliResource:
    """The ``dbt`` resource (resource key ``dbt``) for the definitions and the tests."""
    from licensing_pipeline.warehouse.resources import WarehouseDbtResource

    return WarehouseDbtResource(
        project_dir=str(dbt_project.project_dir),
        profiles_dir=str(dbt_project.profiles_dir),
        target=DBT_TARGET,
        dbt_executable=dbt_executable(),
    )


def _newest_source_mtime(project_dir: Path) -> float:
    """Newest change to the project's files; folders count too, so a deleted model shows."""
    newest = 0.0
    for root, dirs, files in os.walk(project_dir):
        if Path(root) == project_dir:
            dirs[:] = [d for d in dirs if d not in _GENERATED]
            files = [f for f in files if f not in _GENERATED]
        else:
            newest = max(newest, Path(root).stat().st_mtime)
        for name in files:
            newest = max(newest, (Path(root) / name).stat().st_mtime)
    return newest


def manifest_is_current(project: DbtProject = dbt_project) -> bool:
    manifest = project.manifest_path
    return manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime(
        project.project_dir
    )


@contextmanager
def dbt_environment(**values: str) -> Iterator[None]:
    """Environment for the dbt subprocess started inside this block (telemetry always off).

    ``DbtCliResource.cli`` copies ``os.environ`` when it starts dbt and offers no other way
    to pass variables, so they are set for the duration of that call and then restored.
    """
    values = {**_NO_TELEMETRY, **values}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _parse(project: DbtProject) -> None:
    # A plain subprocess: DbtCliResource would also load dbt in-process and ask its version,
    # which doubles the time of a parse.
    command = [dbt_executable(), "parse", "--quiet", "--no-use-colors"]
    command += ["--profiles-dir", str(project.profiles_dir)]
    command += ["--target-path", str(project.target_path)]
    if project.target:
        command += ["--target", project.target]
    done = subprocess.run(
        command,
        cwd=project.project_dir,
        env={**os.environ, **_NO_TELEMETRY},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise RuntimeError(f"dbt parse of {project.project_dir} failed:\n{output}")


def prepare_manifest(force: bool = False, project: DbtProject = dbt_project) -> Path:
    """Run ``dbt parse`` unless the manifest is newer than every project file; return its path.

    A file lock keeps concurrent callers (test workers, the code server) from parsing at once.
    """
    if force or not manifest_is_current(project):
        project.manifest_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(project.manifest_path.with_suffix(".lock")))
        with lock.acquire(timeout=300):
            if force or not manifest_is_current(project):
                _parse(project)
    return project.manifest_path


if __name__ == "__main__":
    try:
        print(prepare_manifest(force="--force" in sys.argv[1:]))
    except RuntimeError as error:
        sys.exit(str(error))
