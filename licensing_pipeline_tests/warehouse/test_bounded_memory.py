"""DuckDB's memory limit and spill folder: from the environment to every DuckDB connection of
a run (the warehouse file, the PostgreSQL loads' staging, dbt's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from licensing_pipeline.definitions import build_definitions
from licensing_pipeline.settings import SettingsError, load_settings
from licensing_pipeline.warehouse.assets import dbt_connection
from licensing_pipeline.warehouse.manifest import build_dbt_resource
from licensing_pipeline.warehouse.resources import Warehouse, warehouse_for


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("LICENSING_HOME", str(tmp_path))
    for name in (
        "LICENSING_DUCKDB_MEMORY_LIMIT",
        "LICENSING_DUCKDB_SPILL_DIR",
        "LICENSING_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_one_gigabyte_and_a_folder_under_the_home(env: pytest.MonkeyPatch, tmp_path: Path):
    warehouse = warehouse_for(load_settings())
    assert warehouse.memory_limit == "1GB"
    assert warehouse.spill_dir == str(tmp_path / "duckdb_spill")


def test_the_settings_reach_the_warehouse_and_dbt(env: pytest.MonkeyPatch, tmp_path: Path):
    env.setenv("LICENSING_DUCKDB_MEMORY_LIMIT", "256MB")
    env.setenv("LICENSING_DUCKDB_SPILL_DIR", str(tmp_path / "spill"))
    warehouse = build_definitions(load_settings()).resources["warehouse"]
    assert isinstance(warehouse, Warehouse)
    for connect in (warehouse.connect, warehouse.staging):
        with connect() as con:
            limit, spill = con.execute(
                "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
            ).fetchone()
        assert limit == "244.1 MiB" and spill == str(tmp_path / "spill")
    connection = dbt_connection(warehouse)
    assert connection["LICENSING_DUCKDB_MEMORY_LIMIT"] == "256MB"
    assert connection["LICENSING_DUCKDB_SPILL_DIR"] == str(tmp_path / "spill")


def test_a_limit_duckdb_cannot_read_stops_in_one_line(env: pytest.MonkeyPatch):
    env.setenv("LICENSING_DUCKDB_MEMORY_LIMIT", "lots")
    with pytest.raises(SettingsError, match="LICENSING_DUCKDB_MEMORY_LIMIT must be an amount"):
        warehouse_for(load_settings())


def test_dbt_opens_the_warehouse_with_the_limit_and_the_folder(
    env: pytest.MonkeyPatch, tmp_path: Path
):
    """dbt's connection holds the limit and the folder, and a query larger than the limit
    finishes. (They are given when dbt opens the file, profiles.yml's config_options, not per
    cursor: DuckDB refuses a second SET of the spill folder once a query has spilled, which
    failed a night of 1M events in the benchmark; this test does not reproduce that.)"""
    spill = tmp_path / "spill"
    warehouse = Warehouse(
        path=str(tmp_path / "w.duckdb"), memory_limit="64MB", spill_dir=str(spill)
    )
    for name, value in dbt_connection(warehouse).items():
        env.setenv(name, value)
    query = (
        "select current_setting('memory_limit') as m, current_setting('temp_directory') as t, "
        "(select count(distinct s) from (select md5(range::varchar) as s from range(2000000) "
        "order by s)) as n"
    )
    invocation = build_dbt_resource().cli(["show", "--inline", query, "--output", "json"])
    shown = [
        e.raw_event["data"]
        for e in invocation.stream_raw_events()
        if e.raw_event["info"]["name"] == "ShowNode"
    ]
    [row] = json.loads(shown[0]["preview"])
    assert (row["m"], row["t"], row["n"]) == ("61.0 MiB", str(spill), 2_000_000)
    assert invocation.is_successful()
