"""The code location: every asset, check, job, schedule and resource, assembled."""

import dagster as dg

from licensing_pipeline.compliance.assets import compliance_assets
from licensing_pipeline.compliance.findings import compliance_findings
from licensing_pipeline.jobs import nightly_compliance, nightly_compliance_schedule
from licensing_pipeline.resources import build_resources
from licensing_pipeline.sources.assets import source_assets
from licensing_pipeline.warehouse.assets import warehouse_models

defs = dg.Definitions(
    assets=[*source_assets, warehouse_models, *compliance_assets, compliance_findings],
    jobs=[nightly_compliance],
    schedules=[nightly_compliance_schedule],
    resources=build_resources(),
    executor=dg.in_process_executor,
)
