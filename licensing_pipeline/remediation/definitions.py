"""What the remediation package adds: tickets, alerts, their job, sensors and resources."""

import dagster as dg

from licensing_pipeline.remediation.assets import remediation_tickets
from licensing_pipeline.remediation.jobs import remediation_job
from licensing_pipeline.remediation.resources import remediation_resources
from licensing_pipeline.remediation.sensors import remediation_sensors


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[remediation_tickets],
        jobs=[remediation_job],
        sensors=remediation_sensors,
        resources=remediation_resources(),
    )
