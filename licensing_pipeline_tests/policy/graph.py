"""The policy assets over a small DuckDB warehouse and SQLite repository (no dbt, no sources)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd

from licensing_pipeline.compliance.findings import compliance_findings
from licensing_pipeline.contract.schemas import (
    APPROVED_CHANGES,
    CHECK_RESULTS,
    conform,
    empty_frame,
)
from licensing_pipeline.policy.assets import enforcement_actions, policy_evaluations
from licensing_pipeline.policy.bundle import PolicyResource
from licensing_pipeline.policy.enforcement import EnforcementFeed
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.run_config import RunSettings
from licensing_pipeline.warehouse.resources import Warehouse, WarehouseIOManager
from licensing_pipeline_tests.policy.builders import CATALOG, exceptions, tenants

# What policy_evaluations reads: the check families, and the tables every decision looks at.
UPSTREAM = sorted(key.path[-1] for key in policy_evaluations.dependency_keys)
FAMILIES = [
    name
    for name in UPSTREAM
    if name not in ("catalog", "tenants", "policy_exceptions", "approved_changes")
]
POLICY_ASSETS = [policy_evaluations, compliance_findings, enforcement_actions]


@dataclass
class Home:
    """A LICENSING_HOME laid out like the real one: warehouse, repository, enforcement."""

    root: Path

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(path=str(self.root / "warehouse.duckdb"))

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.root / 'licensing.db'}"

    @property
    def repository(self) -> LicensingRepository:
        return LicensingRepository(database_url=self.database_url)

    @property
    def enforcement_dir(self) -> Path:
        return self.root / "enforcement"

    def seed(self, results: pd.DataFrame, granted: pd.DataFrame | None = None) -> None:
        """Check results (split by family as the graph would), tenants, catalog, exceptions."""
        warehouse = self.warehouse
        results = conform(results, CHECK_RESULTS)
        family_of = {
            "quota_exceeded": "quota_consumption",
            "quota_near_limit": "quota_consumption",
            "feature_not_entitled": "feature_compliance",
            "inactive_contract_usage": "contract_status_compliance",
            "residency_violation": "residency_compliance",
            "config_feature_not_entitled": "config_drift",
            "config_feature_missing": "config_drift",
            "config_quota_mismatch": "config_drift",
            "config_policy_outdated": "config_drift",
            "unbilled_usage": "billing_reconciliation",
            "overbilled_usage": "billing_reconciliation",
            "usage_anomaly": "usage_anomalies",
        }
        for family in FAMILIES:
            rows = results[results["check"].map(family_of) == family]
            warehouse.write_frame(family, rows if len(rows) else empty_frame(CHECK_RESULTS))
        warehouse.write_frame(
            "tenants",
            tenants(
                {
                    "t-1": ("enterprise", "eu-west-1"),
                    "t-2": ("smb", "us-east-1"),
                    "t-3": ("smb", "us-east-1"),
                }
            ),
        )
        warehouse.write_frame("catalog", CATALOG)
        warehouse.write_frame("policy_exceptions", granted if granted is not None else exceptions())
        warehouse.write_frame("approved_changes", empty_frame(APPROVED_CHANGES))

    def materialize(
        self,
        policy_path: Path,
        as_of: str = "2026-11-20",
        *,
        raise_on_error: bool = True,
        io_manager: type[WarehouseIOManager] = WarehouseIOManager,
    ) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [*POLICY_ASSETS, *(dg.AssetSpec(key) for key in UPSTREAM)],
            selection=POLICY_ASSETS,
            resources={
                "io_manager": io_manager(warehouse=self.warehouse),
                "run_settings": RunSettings(data_dir=str(self.root / "data"), as_of=as_of),
                "policy": PolicyResource(path=str(policy_path), database_url=self.database_url),
                "repository": self.repository,
                "enforcement": EnforcementFeed(directory=str(self.enforcement_dir)),
            },
            raise_on_error=raise_on_error,
        )
