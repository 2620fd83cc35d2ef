"""Every resource of the code location, configured from the environment (settings.py)."""

from typing import Any

from licensing_pipeline.dashboard.resources import DashboardFolder
from licensing_pipeline.policy.bundle import PolicyResource
from licensing_pipeline.policy.enforcement import EnforcementFeed
from licensing_pipeline.quality.resources import data_quality_resource
from licensing_pipeline.remediation.resources import remediation_resources
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.run_settings import RunSettings
from licensing_pipeline.settings import Settings, load_settings
from licensing_pipeline.statements.resources import StatementFolder
from licensing_pipeline.warehouse.assets import dbt_resource
from licensing_pipeline.warehouse.resources import WarehouseIOManager, warehouse_for


def build_resources(settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or load_settings()
    warehouse = warehouse_for(settings)
    return {
        "run_settings": RunSettings(
            data_dir=str(settings.data_dir),
            as_of=settings.as_of,
            earliest_event_date=settings.earliest_event_date.isoformat(),
        ),
        "warehouse": warehouse,
        "io_manager": WarehouseIOManager(warehouse=warehouse),
        "dbt": dbt_resource(settings),
        "policy": PolicyResource(
            path=str(settings.policy_path), database_url=settings.database_url
        ),
        "enforcement": EnforcementFeed(directory=str(settings.enforcement_dir)),
        "statements": StatementFolder(
            directory=str(settings.statements_dir), file_mode=settings.statements_mode
        ),
        "dashboard": DashboardFolder(directory=str(settings.dashboard_dir)),
        "repository": LicensingRepository(database_url=settings.database_url),
        **remediation_resources(settings.remediation),
        "data_quality": data_quality_resource(settings),
    }
