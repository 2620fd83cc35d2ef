"""`licensing-pipeline statement TENANT`: one tenant's statement for any month, on demand.

Findings are read as the tenant: under PostgreSQL row-level security (the reader role of
``db grant-reader``) when the repository is PostgreSQL; on SQLite, which has none, by a
filter on the tenant. Warehouse rows are read with the tenant as a bound parameter.
"""

import argparse
import re
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.cli import CliError
from licensing_pipeline.contract.catalog import Catalog
from licensing_pipeline.settings import Settings
from licensing_pipeline.statements.statement import render_html, render_json, tenant_statement

_NEEDED = ("tenants", "effective_entitlements", "usage_monthly", "usage_daily", "catalog")


def _period(text: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise argparse.ArgumentTypeError(f"not a month like 2026-10: {text!r}")
    return text


def _tenant_findings(settings: Settings, tenant_id: str) -> pd.DataFrame:
    from licensing_pipeline.repository.resources import LicensingRepository

    repository = LicensingRepository(database_url=settings.database_url)
    if sa.make_url(settings.database_url).get_backend_name() == "postgresql":
        return repository.load_tenant_findings(tenant_id)
    findings = repository.load_findings()
    return findings[findings["tenant_id"] == tenant_id]


def _rows(con: Any, table: str, tenant_id: str, period: str | None = None) -> pd.DataFrame:
    sql = f"SELECT * FROM main.{table} WHERE tenant_id = ?"
    if period is None:
        return con.execute(sql, [tenant_id]).df()
    return con.execute(sql + " AND period = ?", [tenant_id, period]).df()


def cmd_statement(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.warehouse.resources import warehouse_for

    as_of = date.fromisoformat(settings.as_of) if settings.as_of else datetime.now(UTC).date()
    period = args.period or as_of.strftime("%Y-%m")
    warehouse = warehouse_for(settings)
    # read-only: a reader shares the file with other readers and never takes a run's lock
    tables = warehouse.table_names(read_only=True)
    missing = [t for t in _NEEDED if t not in tables]
    if missing:
        raise CliError(
            f"the warehouse has no {', '.join(missing)} yet: run `licensing-pipeline run` first"
        )
    with warehouse.connect(read_only=True) as con:
        tenant = _rows(con, "tenants", args.tenant)
        entitlement = _rows(con, "effective_entitlements", args.tenant, period)
        usage = _rows(con, "usage_monthly", args.tenant)
        daily = _rows(con, "usage_daily", args.tenant)
        catalog = con.execute("SELECT * FROM main.catalog").df()
        # the last run's forecasts, of its as-of month (a warehouse from before them has none)
        forecasts = (
            _rows(con, "usage_forecasts", args.tenant, period)
            if "usage_forecasts" in tables
            else None
        )
    if tenant.empty and entitlement.empty and usage.empty:
        raise CliError(f"no tenant {args.tenant!r} in the warehouse (tenants.csv, contracts)")
    statement = tenant_statement(
        args.tenant,
        period,
        as_of=as_of,
        tenant=tenant.iloc[0].to_dict() if len(tenant) else None,
        entitlement=entitlement.iloc[0].to_dict() if len(entitlement) else None,
        usage=usage,
        findings=_tenant_findings(settings, args.tenant),
        catalog=Catalog.from_frame(catalog),
        forecasts=forecasts,
        daily=daily,
    )
    text = render_html(statement) if args.format == "html" else render_json(statement)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"Statement of {args.tenant} for {period} written to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def add_statement_command(sub: Any) -> None:
    statement = sub.add_parser(
        "statement", help="one tenant's statement (contract, usage, findings) for a month"
    )
    statement.add_argument("tenant", help="the tenant_id")
    statement.add_argument(
        "--period", type=_period, help="the month, YYYY-MM (default: the as-of month)"
    )
    statement.add_argument("--format", choices=("html", "json"), default="html")
    statement.add_argument("--out", help="write to this file instead of standard output")
    statement.set_defaults(func=cmd_statement)
