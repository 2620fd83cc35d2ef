"""What the governance package adds to the code location: the ledger's blocking check and
the access review."""

import dagster as dg

from licensing_pipeline.governance.assets import access_review
from licensing_pipeline.governance.checks import usage_events_ledger_intact


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[access_review], asset_checks=[usage_events_ledger_intact])
