"""The ``customer_statements`` asset (group ``reports``): each tenant's statement of the
last month and this month to date, rebuilt every night after the findings."""

import dagster as dg
import pandas as pd

from licensing_pipeline.contract.catalog import Catalog
from licensing_pipeline.run_config import RunSettings
from licensing_pipeline.statements.resources import StatementFolder
from licensing_pipeline.statements.statement import period_statements, statement_periods


@dg.asset(
    group_name="reports",
    kinds={"html", "json"},
    description=(
        "One statement per tenant and month (last month, this month to date): contract, "
        "its tier and the next one up, usage against each limit (this month also projected "
        "to its end, with the day the limit is reached; charted per metric, the month by "
        "day) and the month's findings, that "
        "tenant's rows only; HTML "
        "and JSON under LICENSING_STATEMENTS_DIR/<tenant>/<YYYY-MM>."
    ),
)
def customer_statements(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    statements: StatementFolder,
    tenants: pd.DataFrame,
    effective_entitlements: pd.DataFrame,
    usage_monthly: pd.DataFrame,
    usage_forecasts: pd.DataFrame,
    usage_daily: pd.DataFrame,
    compliance_findings: pd.DataFrame,
    catalog: pd.DataFrame,
) -> dg.MaterializeResult:
    as_of = run_settings.as_of_date()
    written = 0
    with_findings = 0
    for period in statement_periods(as_of):
        for statement in period_statements(
            period,
            as_of=as_of,
            tenants=tenants,
            entitlements=effective_entitlements,
            usage=usage_monthly,
            findings=compliance_findings,
            catalog=Catalog.from_frame(catalog),
            forecasts=usage_forecasts,
            daily=usage_daily,
        ):
            statements.publish(statement)
            written += 1
            with_findings += any(f["status"] == "open" for f in statement["findings"])
    context.log.info(f"{written} statement(s) written to {statements.directory}")
    return dg.MaterializeResult(
        metadata={
            "statements": written,
            "with_open_findings": with_findings,
            "periods": ", ".join(statement_periods(as_of)),
            "folder": dg.MetadataValue.path(statements.directory),
        }
    )
