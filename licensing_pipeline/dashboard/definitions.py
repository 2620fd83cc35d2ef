"""What the dashboard package adds: the compliance page and the folder it is written to."""

import dagster as dg

from licensing_pipeline.dashboard.assets import compliance_dashboard
from licensing_pipeline.dashboard.resources import DashboardFolder
from licensing_pipeline.settings import Settings


def defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[compliance_dashboard],
        resources={"dashboard": DashboardFolder(directory=str(settings.dashboard_dir))},
    )
