"""What the remediation package adds to the code location."""

from licensing_pipeline.remediation.assets import remediation_assets
from licensing_pipeline.remediation.jobs import remediation_job, remediation_jobs
from licensing_pipeline.remediation.sensors import remediation_sensors

__all__ = ["remediation_assets", "remediation_job", "remediation_jobs", "remediation_sensors"]
