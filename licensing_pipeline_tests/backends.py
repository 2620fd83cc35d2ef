"""The environment of one backend, for tests that run the CLI on the embedded profile or on
PostgreSQL: everything else the process inherited (LICENSING_*, DAGSTER_HOME) is cleared, so
a variable set by one backend never leaks into the next."""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


def backend_variables(home: Path, data_dir: Path, database_url: str | None) -> dict[str, str]:
    """LICENSING_* of the embedded profile, or of the postgres profile on ``database_url``.

    The postgres profile's policy approval gate is off here (these databases hold no approved
    policy_version change); ``governance/test_policy_approval.py`` tests the gate itself."""
    variables = {"LICENSING_HOME": str(home), "LICENSING_DATA_DIR": str(data_dir)}
    if database_url:
        variables.update(
            LICENSING_PROFILE="postgres",
            LICENSING_DATABASE_URL=database_url,
            LICENSING_REQUIRE_APPROVED_POLICY="off",
        )
    return variables


def inherited(name: str) -> bool:
    return name.startswith("LICENSING_") or name == "DAGSTER_HOME"


def process_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with only ``variables`` of the project's own, for a child."""
    return {**{k: v for k, v in os.environ.items() if not inherited(k)}, **variables}


@contextmanager
def backend_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """This process's environment set to ``variables`` for the block, then restored, also
    what the code under test exported itself (the CLI exports DAGSTER_HOME and the storage
    URL of the backend, which must not outlive the backend's database)."""
    before = {k: v for k, v in os.environ.items() if inherited(k)}
    _replace_inherited(variables)
    try:
        yield
    finally:
        _replace_inherited(before)


def _replace_inherited(variables: Mapping[str, str]) -> None:
    for name in [n for n in os.environ if inherited(n)]:
        del os.environ[name]
    os.environ.update(variables)
