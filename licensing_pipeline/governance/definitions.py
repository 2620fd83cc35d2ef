"""What the governance package adds to the code location: the ledger's blocking check."""

import dagster as dg

from licensing_pipeline.governance.checks import usage_events_ledger_intact


def defs() -> dg.Definitions:
    return dg.Definitions(asset_checks=[usage_events_ledger_intact])
