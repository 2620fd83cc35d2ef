"""What the quality package adds: the Great Expectations checks and their thresholds."""

import dagster as dg

from licensing_pipeline.quality.checks import quality_checks
from licensing_pipeline.quality.resources import data_quality_resource
from licensing_pipeline.settings import Settings


def defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        asset_checks=quality_checks,
        resources={"data_quality": data_quality_resource(settings)},
    )
