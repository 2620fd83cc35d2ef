"""`licensing-pipeline policy ...`: validate a bundle, explain a decision, diff two bundles on
the latest data, and manage exceptions kept in the repository."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.contract.errors import ContractError
from licensing_pipeline.contract.schemas import (
    CHECKS,
    EFFECTIVE_ENTITLEMENTS,
    POLICY_EVALUATIONS,
    POLICY_EXCEPTIONS,
    conform,
)
from licensing_pipeline.settings import Settings

if TYPE_CHECKING:
    from licensing_pipeline.warehouse.resources import Warehouse

Command = Callable[[argparse.Namespace, Settings], int]

NO_DATA = "no evaluated data yet: run `licensing-pipeline run` first"


class PolicyCliError(Exception):
    """A problem the user can fix; printed without a traceback (exit 2)."""


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date like 2026-11-27: {text!r}") from None


# --- the latest data ----------------------------------------------------------------------


@dataclass(frozen=True)
class LatestData:
    results: pd.DataFrame
    tenants: pd.DataFrame
    catalog: pd.DataFrame
    exceptions: pd.DataFrame
    history: pd.DataFrame
    as_of: date
    catalog_version: str


def _warehouse(settings: Settings) -> Warehouse:
    from licensing_pipeline.warehouse.resources import warehouse_for

    if not settings.warehouse_url and not settings.warehouse_path.exists():
        raise PolicyCliError(f"{settings.warehouse_path}: {NO_DATA}")
    return warehouse_for(settings)


def load_latest(settings: Settings) -> LatestData:
    """The check results, tenants, catalog and exceptions of the latest run, from the stores."""
    from licensing_pipeline.compliance.assets import CHECK_TABLES
    from licensing_pipeline.compliance.overrides import change_exceptions
    from licensing_pipeline.governance.change_kinds import approved_changes
    from licensing_pipeline.policy import store
    from licensing_pipeline.policy.decisions import combine_results
    from licensing_pipeline.repository.resources import LicensingRepository

    warehouse = _warehouse(settings)
    needed = (*CHECK_TABLES, "tenants", "catalog", "policy_exceptions")
    missing = [t for t in needed if not warehouse.table_exists(t)]
    if missing:
        raise PolicyCliError(f"table(s) {', '.join(missing)} missing from the warehouse: {NO_DATA}")
    repository = LicensingRepository(database_url=settings.database_url)
    engine = repository.engine()
    last = store.last_run(engine)
    managed = store.managed_exception_frame(engine)
    if last is None:
        raise PolicyCliError(f"no run has been recorded in the repository: {NO_DATA}")
    with engine.connect() as con:
        governed = change_exceptions(approved_changes(con), last.as_of)
    catalog = warehouse.read_frame("catalog")
    return LatestData(
        results=combine_results([warehouse.read_frame(t) for t in CHECK_TABLES]),
        tenants=warehouse.read_frame("tenants"),
        catalog=catalog,
        exceptions=pd.concat(
            [
                conform(warehouse.read_frame("policy_exceptions"), POLICY_EXCEPTIONS),
                managed,
                governed,
            ],
            ignore_index=True,
        ),
        history=repository.load_finding_records(),
        as_of=last.as_of,
        catalog_version=str(catalog["catalog_version"].iloc[0]) if len(catalog) else "",
    )


# --- validate -----------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.policy.bundle import load_policy

    path = Path(args.path).expanduser().resolve() if args.path else settings.policy_path
    bundle = load_policy(path)  # a ContractError is printed by the entry point (exit 2)
    print(
        f"OK: {path} is policy {bundle.version}, hash {bundle.content_hash}, "
        f"{len(bundle.rules)} rule(s), fallback {bundle.fallback.severity}/"
        f"{bundle.fallback.action}."
    )
    uncovered = bundle.uncovered_checks()
    if uncovered:
        print(
            f"note: no rule names {', '.join(uncovered)}: their findings get the fallback.",
            file=sys.stderr,
        )
    return 0


# --- explain ------------------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.policy import store
    from licensing_pipeline.policy.bundle import PolicyBundle, load_policy
    from licensing_pipeline.policy.decisions import explain, facts_of
    from licensing_pipeline.repository.resources import LicensingRepository

    warehouse = _warehouse(settings)
    if not warehouse.table_exists("policy_evaluations"):
        raise PolicyCliError(f"no policy_evaluations table: {NO_DATA}")
    evaluations = conform(warehouse.read_frame("policy_evaluations"), POLICY_EVALUATIONS)
    chosen = evaluations[
        (evaluations["tenant_id"] == args.tenant) & (evaluations["check"] == args.check)
    ]
    if args.subject:
        chosen = chosen[chosen["subject"] == args.subject]
    if args.period:
        chosen = chosen[chosen["period"] == args.period]
    if chosen.empty:
        as_of = evaluations["as_of"].max() if len(evaluations) else None
        when = f" as of {as_of:%Y-%m-%d}" if as_of is not None and pd.notna(as_of) else ""
        print(f"No finding for tenant {args.tenant} and check {args.check}{when}.")
        return 0
    bundles: dict[str, PolicyBundle | None] = {}
    engine = LicensingRepository(database_url=settings.database_url).engine()
    for content_hash in chosen["policy_hash"].dropna().unique():
        bundles[str(content_hash)] = store.bundle_by_hash(engine, str(content_hash))
    try:
        configured: PolicyBundle | None = load_policy(settings.policy_path)
    except ContractError:
        configured = None
    for line in _override_layer(warehouse, engine, args.tenant, chosen["period"]):
        print(line)
    for _, row in chosen.sort_values(["subject", "period"]).iterrows():
        bundle = bundles.get(str(row["policy_hash"]))
        print(
            f"{row['tenant_id']} {row['check']} {row['subject']} {row['period']}: "
            f"{row['severity']}/{row['action']} ({row['status']})"
        )
        print(
            f"  decided under policy {row['policy_version']} ({str(row['policy_hash'])[:12]}) "
            f"by rule {row['rule_id']}"
        )
        print(f"  why: {row['reason']}")
        if bundle is not None:
            for line in explain(row, bundle):
                print(f"  {line}")
        if configured is not None and configured.content_hash != row["policy_hash"]:
            now = configured.decide_facts(facts_of(row))
            print(
                f"  note: the configured bundle {configured.label} would fire rule {now.id} "
                f"({now.severity}/{now.action} before grace/escalation); it applies at the "
                "next run"
            )
        print(f"  customer sees: {row['details']}")
        print()
    return 0


def _override_layer(
    warehouse: Warehouse, engine: sa.Engine, tenant_id: str, periods: pd.Series
) -> list[str]:
    """The approved changes that shaped the tenant's entitlement in the findings' periods."""
    from licensing_pipeline.compliance.overrides import override_layer
    from licensing_pipeline.governance.change_kinds import approved_changes

    if not warehouse.table_exists("effective_entitlements"):
        return []
    entitlements = conform(warehouse.read_frame("effective_entitlements"), EFFECTIVE_ENTITLEMENTS)
    with engine.connect() as con:
        changes = approved_changes(con)
    lines = override_layer(entitlements, changes, tenant_id, periods)
    return [f"override layer of {tenant_id} (approved changes):", *(f"  {x}" for x in lines), ""]


# --- diff ---------------------------------------------------------------------------------


def cmd_diff(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.policy.bundle import load_policy
    from licensing_pipeline.policy.decisions import evaluate_policy
    from licensing_pipeline.policy.diff import bundle_changes, evaluation_diff

    old = load_policy(Path(args.old).expanduser().resolve())
    new = load_policy(Path(args.new).expanduser().resolve())
    data = load_latest(settings)
    evaluations = [
        evaluate_policy(
            data.results,
            bundle,
            exceptions=data.exceptions,
            as_of=data.as_of,
            tenants=data.tenants,
            catalog=data.catalog,
            history=data.history,
            catalog_version=data.catalog_version,
        )
        for bundle in (old, new)
    ]
    changed = evaluation_diff(*evaluations)
    if args.format == "jsonl":
        if len(changed):
            changed.to_json(sys.stdout, orient="records", lines=True)
        return 0
    if args.format == "csv":
        changed.to_csv(sys.stdout, index=False)
        return 0
    print(f"policy {old.label} -> {new.label}, on the findings as of {data.as_of.isoformat()}")
    for line in bundle_changes(old, new):
        print(f"  {line}")
    print()
    if changed.empty:
        print(f"No finding changes severity or action ({len(evaluations[1])} compared).")
        return 0
    columns = ["tenant_id", "check", "subject", "period", "status"]
    shown = changed[columns].copy()
    shown["severity"] = changed["old_severity"] + " -> " + changed["new_severity"]
    shown["action"] = changed["old_action"] + " -> " + changed["new_action"]
    shown["rule"] = changed["old_rule_id"] + " -> " + changed["new_rule_id"]
    print(shown.to_string(index=False, max_colwidth=40))
    print(f"\n{len(changed)} of {len(evaluations[1])} finding(s) would change severity or action.")
    return 0


# --- exceptions ---------------------------------------------------------------------------


def cmd_exception_add(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.policy import store
    from licensing_pipeline.repository.resources import checked_engine

    engine = checked_engine(settings.database_url)
    exception_id = store.add_exception(
        engine,
        tenant_id=args.tenant,
        check=args.check,
        subject=args.subject or "",
        approved_by=args.approved_by,
        expires_on=args.expires_on,
        reason=args.reason,
        today=datetime.now(UTC).date(),
        created_by=getpass.getuser(),
        exception_id=args.id,
    )
    scope = args.subject or "every subject"
    print(
        f"Exception {exception_id}: {args.tenant} / {args.check} / {scope}, approved by "
        f"{args.approved_by}, until {args.expires_on.isoformat()} (inclusive). It waives "
        "matching findings from the next run on."
    )
    return 0


def cmd_exception_list(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.policy import store
    from licensing_pipeline.repository.resources import checked_engine

    engine = checked_engine(settings.database_url)
    frame = store.list_exceptions(engine, include_revoked=args.all)
    if frame.empty:
        print("No exceptions in the repository (exceptions.csv is read by each run).")
        return 0
    columns = ["exception_id", "tenant_id", "check", "subject", "approved_by", "expires_on"]
    if args.all:
        columns.append("revoked_at")
    print(frame[[*columns, "reason"]].to_string(index=False, max_colwidth=40))
    return 0


def cmd_exception_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.policy import store
    from licensing_pipeline.repository.resources import checked_engine

    engine = checked_engine(settings.database_url)
    revoked = store.revoke_exception(engine, args.exception_id, revoked_by=getpass.getuser())
    if not revoked:
        raise PolicyCliError(f"no active exception {args.exception_id} in the repository")
    print(f"Exception {args.exception_id} revoked; matching findings reopen at the next run.")
    return 0


# --- wiring -------------------------------------------------------------------------------


def _guarded(func: Command) -> Command:
    """Policy problems print as one line (exit 2), like the CLI's own errors."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return int(func(args, settings))
        except PolicyCliError as exc:
            raise ContractError(str(exc)) from None

    return run


def add_policy_commands(sub: Any) -> None:
    """Add ``policy`` (validate, explain, diff, exceptions) to the ``licensing-pipeline`` parser."""
    policy = sub.add_parser("policy", help="validate, explain and diff policy bundles; exceptions")
    commands = policy.add_subparsers(dest="policy_command", required=True)

    validate = commands.add_parser("validate", help="check a bundle (default: the configured one)")
    validate.add_argument("path", nargs="?", help="a YAML file or a folder of them")
    validate.set_defaults(func=_guarded(cmd_validate))

    explain = commands.add_parser("explain", help="which rule fired for a finding, and why")
    explain.add_argument("--tenant", required=True)
    explain.add_argument("--check", required=True, choices=CHECKS)
    explain.add_argument("--subject", help="only this subject (metric, feature, region)")
    explain.add_argument("--period", help="only this period (YYYY-MM, or YYYY-MM-DD)")
    explain.set_defaults(func=_guarded(cmd_explain))

    diff = commands.add_parser(
        "diff", help="findings whose severity or action NEW would change (dry run on latest data)"
    )
    diff.add_argument("old", help="the bundle in force (file or folder)")
    diff.add_argument("new", help="the candidate bundle (file or folder)")
    diff.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")
    diff.set_defaults(func=_guarded(cmd_diff))

    exceptions = commands.add_parser("exceptions", help="exceptions kept in the repository")
    actions = exceptions.add_subparsers(dest="exception_command", required=True)
    add = actions.add_parser("add", help="grant a time-limited exception")
    add.add_argument("--tenant", required=True)
    add.add_argument("--check", required=True, choices=CHECKS)
    add.add_argument("--subject", help="metric, feature or region (default: every subject)")
    add.add_argument("--approved-by", required=True, help="the person who approved it")
    add.add_argument(
        "--expires-on", required=True, type=_iso_date, help="last day it applies (YYYY-MM-DD)"
    )
    add.add_argument("--reason", required=True)
    add.add_argument("--id", help="exception id (default: MX-<date>-<random>)")
    add.set_defaults(func=_guarded(cmd_exception_add))
    listing = actions.add_parser("list", help="exceptions in the repository")
    listing.add_argument("--all", action="store_true", help="include revoked ones")
    listing.set_defaults(func=_guarded(cmd_exception_list))
    revoke = actions.add_parser("revoke", help="withdraw an exception before it expires")
    revoke.add_argument("exception_id")
    revoke.set_defaults(func=_guarded(cmd_exception_revoke))
