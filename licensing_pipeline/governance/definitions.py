"""What the governance package adds to the code location: the ledger's blocking check, the
approved changes and the access review."""

import dagster as dg

from licensing_pipeline.governance.assets import access_review, approved_changes
from licensing_pipeline.governance.checks import usage_events_ledger_intact


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[approved_changes, access_review], asset_checks=[usage_events_ledger_intact]
    )
