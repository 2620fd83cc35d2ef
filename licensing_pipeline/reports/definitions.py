"""What the reports package adds: the success metrics asset."""

import dagster as dg

from licensing_pipeline.reports.assets import success_metrics


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[success_metrics])
