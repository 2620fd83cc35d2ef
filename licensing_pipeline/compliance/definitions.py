"""What the compliance package adds: entitlements, the check families and the findings."""

import dagster as dg

from licensing_pipeline.compliance.assets import compliance_assets
from licensing_pipeline.compliance.findings import compliance_findings


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[*compliance_assets, compliance_findings])
