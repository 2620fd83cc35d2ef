"""The remediation job: tickets and alerts, outside the nightly run's critical path."""

from __future__ import annotations

import dagster as dg

REMEDIATION_GROUP = "remediation"

remediation_job = dg.define_asset_job(
    name="remediation",
    selection=dg.AssetSelection.groups(REMEDIATION_GROUP),
    description=(
        "Sync remediation tickets with the latest findings, export new tickets to the ticket "
        "system and post pending Slack alerts. Started by a sensor after compliance_findings."
    ),
)
