"""The ``compliance_dashboard`` asset (group ``reports``): the page rebuilt after every
nightly evaluation, linking each tenant to their statement of the month."""

import os

import dagster as dg
import pandas as pd

from licensing_pipeline.dashboard.page import (
    dashboard_summary,
    leakage_totals,
    render_dashboard,
    success_summary,
)
from licensing_pipeline.dashboard.resources import DashboardFolder
from licensing_pipeline.dashboard.trends import dashboard_trends
from licensing_pipeline.governance.tables import CHANGE_STATUSES
from licensing_pipeline.quality.report import load_report
from licensing_pipeline.remediation.change_alerts import recent_requests
from licensing_pipeline.remediation.outbox import utcnow
from licensing_pipeline.remediation.store import load_tickets
from licensing_pipeline.reports.assets import success_metrics
from licensing_pipeline.reports.store import load_success_metrics
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.run_config import RunSettings
from licensing_pipeline.statements.assets import customer_statements
from licensing_pipeline.statements.resources import StatementFolder

RUNS_SHOWN = 30
DECIDED = tuple(s for s in CHANGE_STATUSES if s != "pending")


@dg.asset(
    group_name="reports",
    kinds={"html"},
    deps=[customer_statements, success_metrics],
    description=(
        "Open findings by check, severity and action, the tenants needing attention (linked "
        "to their statements), pending change requests and the last week's decisions, the "
        "success metrics, the trend of the latest runs and charts of findings, revenue "
        "leakage, tickets, data quality and risk over time: one static page under "
        "LICENSING_DASHBOARD_DIR, for the people who never open Dagster."
    ),
)
def compliance_dashboard(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    repository: LicensingRepository,
    statements: StatementFolder,
    dashboard: DashboardFolder,
    tenants: pd.DataFrame,
    compliance_findings: pd.DataFrame,
    billing_records: pd.DataFrame,
) -> dg.MaterializeResult:
    as_of = run_settings.as_of_date()
    names = dict(zip(tenants["tenant_id"].astype(str), tenants["name"].astype(str), strict=True))
    runs = repository.load_finding_runs(RUNS_SHOWN)
    with repository.connect() as con:
        changes = recent_requests(con, now=utcnow(), decided=DECIDED)
        success = success_summary(load_success_metrics(con))
    summary = dashboard_summary(compliance_findings, runs, as_of, names, changes)
    summary["success"] = success
    engine = repository.engine()
    trends = dashboard_trends(
        history=repository.load_finding_history(),
        runs=runs,
        findings=compliance_findings,
        billing_records=billing_records,
        tickets=load_tickets(engine),
        quality_report=load_report(engine, last_runs=RUNS_SHOWN),
    )
    period = as_of.strftime("%Y-%m")
    folder = dashboard.page_path.parent

    def statement_link(tenant_id: str) -> str | None:
        page = statements.path_for(tenant_id, period, ".html")
        return os.path.relpath(page, folder).replace(os.sep, "/") if page.exists() else None

    path = dashboard.publish(render_dashboard(summary, statement_link, trends))
    context.log.info(f"compliance dashboard: {path}")
    return dg.MaterializeResult(
        metadata={
            "page": dg.MetadataValue.path(str(path)),
            "open": summary["open"],
            "critical_open": summary["critical_open"],
            "tenants_with_open": summary["tenants_with_open"],
            "change_requests_pending": sum(
                1 for c in summary["changes"] if c["status"] == "pending"
            ),
            "leakage": ", ".join(
                f"{a:.2f} {c}" for c, a in leakage_totals(trends["unbilled"]).items()
            ),
        }
    )
