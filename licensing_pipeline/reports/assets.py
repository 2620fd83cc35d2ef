"""The ``success_metrics`` asset (group ``reports``): issue 19's figures per month, stored in
the licensing repository and shown as Markdown tables in the Dagster UI."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from licensing_pipeline.compliance.findings import compliance_findings
from licensing_pipeline.contract.catalog import Catalog
from licensing_pipeline.metadata import markdown_table
from licensing_pipeline.remediation.store import load_tickets
from licensing_pipeline.reports.store import (
    load_ticket_history,
    metric_rows,
    save_success_metrics,
)
from licensing_pipeline.reports.success import contract_movements, incident_response, leakage
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.run_config import RunSettings


@dg.asset(
    group_name="reports",
    kinds={"sql"},
    deps=[compliance_findings],
    description=(
        "Per month: renewals and renewal rate, upgrades, downgrades, pauses and cancellations "
        "from the contracts; detection → acknowledged → resolved hours (median, p90) by "
        "severity from the tickets; unbilled amounts found and recovered. Stored in the "
        "repository's success_metrics table."
    ),
)
def success_metrics(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    repository: LicensingRepository,
    contracts: pd.DataFrame,
    catalog: pd.DataFrame,
    billing_records: pd.DataFrame,
) -> dg.MaterializeResult:
    as_of = run_settings.as_of_date()
    movements = contract_movements(contracts, Catalog.from_frame(catalog), as_of)
    findings = repository.load_finding_records()
    with repository.connect() as con:
        tickets, history = load_tickets(con), load_ticket_history(con)
    response = incident_response(tickets, history, findings)
    leak = leakage(findings, billing_records)
    rows = metric_rows(movements, response, leak)
    with repository.begin() as con:
        stored = save_success_metrics(
            con, rows, as_of, datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        )
    context.log.info(f"success metrics: {stored} figure(s) stored")
    return dg.MaterializeResult(
        metadata={
            "figures": stored,
            "contract_movements": markdown_table(movements),
            "incident_response": markdown_table(response),
            "leakage": markdown_table(leak),
            "leakage_found": float(leak["found_amount"].sum()) if len(leak) else 0.0,
            "leakage_recovered": float(leak["recovered_amount"].sum()) if len(leak) else 0.0,
        }
    )
