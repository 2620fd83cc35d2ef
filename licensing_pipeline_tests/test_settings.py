"""The settings of the hardening: the earliest event date and the statements' file mode,
from the environment to the resources a run uses."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from licensing_pipeline import cli
from licensing_pipeline.definitions import build_definitions
from licensing_pipeline.jobs import run_settings_config
from licensing_pipeline.settings import SettingsError, load_settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("LICENSING_HOME", str(tmp_path))
    for name in ("LICENSING_EARLIEST_EVENT_DATE", "LICENSING_STATEMENTS_MODE", "LICENSING_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults(env: pytest.MonkeyPatch):
    settings = load_settings()
    assert settings.earliest_event_date == date(2000, 1, 1)
    assert settings.statements_mode == 0o600


def test_the_earliest_event_date_reaches_every_run(env: pytest.MonkeyPatch):
    """Run config replaces a resource's whole configuration, so the CLI's and the
    schedule's run config must carry the floor too, or a run would fall back to 2000."""
    env.setenv("LICENSING_EARLIEST_EVENT_DATE", "2020-01-01")
    resources = build_definitions(load_settings()).resources
    assert resources["run_settings"].earliest_event_day() == date(2020, 1, 1)
    config = run_settings_config("/data", "2026-11-20")["resources"]["run_settings"]["config"]
    assert config == {
        "data_dir": "/data",
        "as_of": "2026-11-20",
        "earliest_event_date": "2020-01-01",
    }
    env.setenv("LICENSING_EARLIEST_EVENT_DATE", "2020-13-01")
    with pytest.raises(SettingsError, match="LICENSING_EARLIEST_EVENT_DATE must be a day"):
        load_settings()


@pytest.mark.parametrize(("value", "mode"), [("0640", 0o640), ("644", 0o644), ("0600", 0o600)])
def test_statements_may_be_shared_on_purpose(env: pytest.MonkeyPatch, value: str, mode: int):
    env.setenv("LICENSING_STATEMENTS_MODE", value)
    assert build_definitions(load_settings()).resources["statements"].file_mode == mode


@pytest.mark.parametrize("value", ["0666", "0400", "0755", "0660", "rw-r-----"])
def test_a_statements_mode_that_writes_or_executes_is_refused(env: pytest.MonkeyPatch, value: str):
    env.setenv("LICENSING_STATEMENTS_MODE", value)
    with pytest.raises(SettingsError, match="LICENSING_STATEMENTS_MODE must be an octal file mode"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LICENSING_SLA_WARNING_DAYS", "two weeks", "must be a whole number of days"),
        ("LICENSING_DQ_MIN_VOLUME_SHARE", "2", "must be at least 0 and at most 1, got 2"),
        ("LICENSING_JIRA_TRANSITIONS", "closed=Done", "is not event=transition"),
    ],
)
def test_a_bad_resource_variable_stops_a_run_in_one_line(
    env: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    message: str,
):
    """Resources read their own variables when the definitions are built: before anything
    runs, with the CLI's one line that names the variable."""
    env.setenv(name, value)
    env.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    env.delenv("LICENSING_DATABASE_URL", raising=False)
    (tmp_path / "data").mkdir()
    assert cli.main(["run", "--data-dir", str(tmp_path / "data")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"licensing-pipeline: {name}") and message in err
    assert len(err.splitlines()) == 1
