"""What the sources package adds to the code location: one asset per export, the quarantine."""

import dagster as dg

from licensing_pipeline.sources.assets import source_assets


def defs() -> dg.Definitions:
    return dg.Definitions(assets=source_assets)
