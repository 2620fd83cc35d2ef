"""The compliance assets wired together over a small DuckDB warehouse (inputs by asset name)."""

from pathlib import Path

import dagster as dg
import pandas as pd

from licensing_pipeline.compliance.assets import compliance_assets
from licensing_pipeline.contract.schemas import APPROVED_CHANGES, CHECK_RESULTS, empty_frame
from licensing_pipeline.policy.bundle import PolicyResource
from licensing_pipeline.run_config import RunSettings
from licensing_pipeline.settings import DEFAULT_POLICY_PATH
from licensing_pipeline.warehouse.resources import Warehouse, WarehouseIOManager
from licensing_pipeline_tests.compliance import builders as b

UPSTREAM = [
    "catalog",
    "tenants",
    "contracts",
    "billing_records",
    "deployment_configs",
    "residency_configs",
    "usage_daily",
    "usage_monthly",
    "feature_usage_daily",
    "region_usage_daily",
    "tenant_activity_daily",
    "approved_changes",
]


def seed(warehouse: Warehouse) -> None:
    sept = pd.Timestamp("2026-09-03").date()
    tables = {
        "catalog": b.CATALOG.to_frame(),
        "tenants": b.tenants("t1"),
        "contracts": b.contracts(b.contract("t1", "2026-09-01")),
        "billing_records": pd.DataFrame(
            {
                "invoice_id": ["i-1"],
                "tenant_id": ["t1"],
                "period": ["2026-09"],
                "metric": ["api_calls"],
                "billed_quantity": [10.0],
                "amount": [1.0],
                "currency": ["EUR"],
            }
        ),
        "deployment_configs": b.deployments(
            b.deployment("t1", "2026-10-01", region="us-east-1", features=["sso"])
        ),
        "residency_configs": b.residency(t1="EU"),
        "usage_daily": pd.DataFrame(
            {
                "tenant_id": ["t1"],
                "metric": ["api_calls"],
                "usage_date": [sept],
                "quantity": [200000.0],
                "events": [200000],
            }
        ),
        "usage_monthly": pd.DataFrame(
            {
                "tenant_id": ["t1"],
                "metric": ["api_calls"],
                "period": ["2026-09"],
                "quantity": [200000.0],
                "events": [200000],
            }
        ),
        "feature_usage_daily": pd.DataFrame(
            {"tenant_id": ["t1"], "feature": ["sso"], "usage_date": [sept], "events": [3]}
        ),
        "region_usage_daily": pd.DataFrame(
            {"tenant_id": ["t1"], "region": ["us-east-1"], "usage_date": [sept], "events": [3]}
        ),
        "tenant_activity_daily": pd.DataFrame(
            {"tenant_id": ["t1", "t9"], "usage_date": [sept, sept], "events": [200000, 5]}
        ),
        "approved_changes": empty_frame(APPROVED_CHANGES),
    }
    for name, frame in tables.items():
        warehouse.write_frame(name, frame)


def test_every_family_materialises_its_check_results(tmp_path: Path):
    warehouse = Warehouse(path=str(tmp_path / "warehouse.duckdb"))
    seed(warehouse)
    result = dg.materialize(
        [*compliance_assets, *(dg.AssetSpec(key) for key in UPSTREAM)],
        selection=compliance_assets,
        resources={
            "io_manager": WarehouseIOManager(warehouse=warehouse),
            "run_settings": RunSettings(data_dir=str(tmp_path), as_of="2026-10-15"),
            "policy": PolicyResource(path=str(DEFAULT_POLICY_PATH)),
        },
    )
    assert result.success
    metadata = {
        event.materialization.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert metadata["effective_entitlements"]["status_none"].value == 2
    assert metadata["quota_consumption"]["quota_exceeded"].value == 1
    assert metadata["residency_compliance"]["results"].value == 2
    assert "| tenant_id" in str(metadata["feature_compliance"]["preview"].value)
    expected = {
        "quota_consumption": {"quota_exceeded"},
        "feature_compliance": {"feature_not_entitled"},
        "contract_status_compliance": {"inactive_contract_usage"},
        "residency_compliance": {"residency_violation"},
        "config_drift": {"config_feature_not_entitled", "config_feature_missing"},
        "billing_reconciliation": {"unbilled_usage"},
        "usage_anomalies": set(),
    }
    assert {name: set(warehouse.read_frame(name)["check"]) for name in expected} == expected
    assert list(warehouse.read_frame("usage_anomalies").columns) == list(CHECK_RESULTS)
