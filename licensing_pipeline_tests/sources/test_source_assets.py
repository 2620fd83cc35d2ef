"""The source assets materialised over a small exports folder and a DuckDB warehouse file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from licensing_pipeline.contract.schemas import QUARANTINED_RECORDS
from licensing_pipeline.run_config import RunSettings
from licensing_pipeline.sources.assets import source_assets
from licensing_pipeline.warehouse.resources import Warehouse, WarehouseIOManager

CATALOG_YAML = """\
version: "2026-10-01"
regions: {us-east-1: US, eu-west-1: EU}
features: [api_access, sso]
metrics:
  api_calls:  {event_type: api.request, aggregation: COUNT}
  storage_gb: {event_type: storage.reported, aggregation: MAX, value_property: gb}
plans:
  starter: {features: [api_access], quotas: {api_calls: 1000, storage_gb: 10}}
"""


def event(id: str, time: str, **fields: Any) -> str:
    body = {
        "specversion": "1.0",
        "id": id,
        "source": "gw",
        "type": "api.request",
        "subject": "t-1",
        "time": time,
        "data": {"region": "eu-west-1"},
    }
    return json.dumps({**body, **fields})


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "exports"
    (folder / "usage").mkdir(parents=True)
    (folder / "catalog.yaml").write_text(CATALOG_YAML)
    (folder / "tenants.csv").write_text(
        "tenant_id,name,home_region,segment,compliance_owner,slack_channel,crm_id\n"
        "t-1,Acme,eu-west-1,enterprise,ana@example.com,#acme,123\n"
        "t-2,Beta\n"
    )
    (folder / "contracts.csv").write_text(
        "contract_id,tenant_id,plan,addons,quota_overrides,start_date,end_date,status,enforcement\n"
        "c-1,t-1,starter,,,2026-01-01,,active,hard\n"
        "c-2,t-1,starter,,,2026-13-01,,active,hard\n"
    )
    (folder / "residency.csv").write_text("tenant_id,allowed_jurisdictions\nt-1,eu\n")
    (folder / "usage" / "a.jsonl").write_text(
        "\n".join(
            [
                event("e1", "2026-10-31T23:30:00-05:00"),
                event("e1", "2026-10-31T23:30:00-05:00"),  # delivered twice
                event("e2", "2026-10-03T10:00:00"),  # no offset
                event("e3", "2026-10-03T10:00:00Z", subject="t-unknown"),
                "{broken",
            ]
        )
        + "\n"
    )
    return folder


def materialize(
    data_dir: Path, where: Path | Warehouse
) -> tuple[dg.ExecuteInMemoryResult, Warehouse]:
    """Materialise the sources into ``where``: a Warehouse, or a folder for a DuckDB file."""
    warehouse = where if isinstance(where, Warehouse) else Warehouse(path=str(where / "wh.duckdb"))
    result = dg.materialize(
        source_assets,
        resources={
            "run_settings": RunSettings(data_dir=str(data_dir)),
            "warehouse": warehouse,
            "io_manager": WarehouseIOManager(warehouse=warehouse),
        },
        raise_on_error=False,
    )
    return result, warehouse


def metadata(result: dg.ExecuteInMemoryResult, asset: str) -> dict[str, Any]:
    [materialization] = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in materialization.metadata.items()}


def failure(result: dg.ExecuteInMemoryResult, step: str) -> str:
    [event] = [e for e in result.get_step_failure_events() if e.step_key == step]
    error = event.step_failure_data.user_failure_data
    assert error is not None, "expected a dg.Failure, not an unexpected exception"
    return str(error.description)


def test_sources_load_tables_and_quarantine(data_dir: Path, any_warehouse: Warehouse) -> None:
    result, warehouse = materialize(data_dir, any_warehouse)
    assert result.success

    assert warehouse.read_frame("tenants")["tenant_id"].tolist() == ["t-1"]
    assert warehouse.read_frame("contracts")["contract_id"].tolist() == ["c-1"]
    assert warehouse.read_frame("residency_configs")["allowed_jurisdictions"].tolist() == ["EU"]
    assert warehouse.read_frame("billing_records").empty  # optional and absent
    assert warehouse.read_frame("deployment_configs").empty
    assert warehouse.read_frame("policy_exceptions").empty
    catalog = warehouse.read_frame("catalog")
    assert set(catalog["catalog_version"]) == {"2026-10-01"}

    usage = warehouse.read_frame("SELECT id, tenant_id, time FROM main.usage_events ORDER BY id")
    assert usage["id"].tolist() == ["e1", "e3"]  # e1 counted once; unknown tenant kept
    assert usage["time"].iloc[0] == pd.Timestamp("2026-11-01 04:30:00")

    quarantined = warehouse.read_frame("quarantined_records")
    assert list(quarantined.columns) == list(QUARANTINED_RECORDS)
    found = set(
        zip(
            quarantined["source"], quarantined["line"], quarantined["field"].fillna(""), strict=True
        )
    )
    assert found == {
        ("tenants", 3, ""),
        ("contracts", 3, "start_date"),
        ("usage_events", 3, "time"),
        ("usage_events", 5, ""),
    }
    assert warehouse.read_frame("quarantine_contracts")["line"].tolist() == [3]

    tenants_meta = metadata(result, "tenants")
    assert tenants_meta["dagster/row_count"] == 1 and tenants_meta["quarantined"] == 1
    assert tenants_meta["file"] == str(data_dir / "tenants.csv")
    assert "expected 7 fields" in tenants_meta["quarantine_reasons"]
    usage_meta = metadata(result, "usage_events")
    assert usage_meta["dagster/row_count"] == 2
    assert (usage_meta["duplicates_dropped"], usage_meta["quarantined"]) == (1, 2)
    assert "not valid JSON" in usage_meta["quarantine_reasons"]
    stages = ("read_and_check_seconds", "dedupe_seconds", "write_seconds")
    assert all(usage_meta[stage] >= 0 for stage in stages)
    total = metadata(result, "quarantined_records")
    assert total["total"] == 4 and total["quarantined_usage_events"] == 2


def test_missing_required_file_fails_with_how_to_fix(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "contracts.csv").unlink()
    result, _ = materialize(data_dir, tmp_path)
    assert not result.success
    message = failure(result, "contracts")
    assert str(data_dir / "contracts.csv") in message
    assert "LICENSING_DATA_DIR" in message


def test_missing_column_fails_naming_file_line_and_field(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "tenants.csv").write_text("name,segment\nAcme,smb\n")
    result, _ = materialize(data_dir, tmp_path)
    message = failure(result, "tenants")
    assert str(data_dir / "tenants.csv") in message
    assert "line 1" in message and "tenant_id" in message


def test_broken_catalog_fails_naming_line_and_field(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "catalog.yaml").write_text(CATALOG_YAML.replace("storage_gb: 10", "gpu: 1"))
    result, _ = materialize(data_dir, tmp_path)
    message = failure(result, "catalog")
    assert "line 8" in message and "plans.starter.quotas.gpu" in message


def test_missing_usage_folder_fails(data_dir: Path, tmp_path: Path) -> None:
    for path in (data_dir / "usage").iterdir():
        path.unlink()
    (data_dir / "usage").rmdir()
    result, _ = materialize(data_dir, tmp_path)
    assert str(data_dir / "usage") in failure(result, "usage_events")


def test_empty_usage_folder_loads_no_events(data_dir: Path, any_warehouse: Warehouse) -> None:
    (data_dir / "usage" / "a.jsonl").unlink()
    result, warehouse = materialize(data_dir, any_warehouse)
    assert result.success
    assert warehouse.read_frame("usage_events").empty
    assert metadata(result, "usage_events")["files"] == 0


def test_missing_exports_folder(tmp_path: Path) -> None:
    result, _ = materialize(tmp_path / "nowhere", tmp_path)
    message = failure(result, "catalog")
    assert str(tmp_path / "nowhere") in message and "LICENSING_DATA_DIR" in message
