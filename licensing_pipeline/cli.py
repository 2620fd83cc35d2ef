"""The `licensing-pipeline` command: demo data, a nightly run from the shell, and findings."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from licensing_pipeline.contract.errors import ContractError
from licensing_pipeline.contract.schemas import SEVERITIES
from licensing_pipeline.instance import (
    InstanceError,
    ensure_dagster_home,
    fail_abandoned_runs,
    process_tags,
)
from licensing_pipeline.repository.errors import SchemaNotCurrent, TenantIsolationError
from licensing_pipeline.settings import PROJECT_DIR, Settings, SettingsError, load_settings
from licensing_pipeline.warehouse.errors import WarehouseBusy

EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_FINDINGS_AT_OR_ABOVE = 3


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date like 2026-11-27: {text!r}") from None


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _progress_bar(label: str) -> Callable[[int, int], None]:
    """A bar on stderr, only when stderr is a terminal or the work is large."""
    state = {"last": -1.0}

    def show(done: int, total: int) -> None:
        if total <= 0:
            return
        share = min(done / total, 1.0)
        if share < 1.0 and share - state["last"] < 0.02:
            return
        state["last"] = share
        width = 30
        filled = int(width * share)
        bar = "#" * filled + "-" * (width - filled)
        end = "\n" if share >= 1.0 else "\r"
        print(f"{label} [{bar}] {share:6.1%}", end=end, file=sys.stderr, flush=True)

    return show


# --- demo ---------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.demo.generator import generate_demo

    out = Path(args.out).expanduser().resolve() if args.out else settings.data_dir
    as_of = date.fromisoformat(args.as_of) if args.as_of else datetime.now(UTC).date()
    total = args.tenants * args.events_per_tenant
    started = time.monotonic()
    try:
        manifest = generate_demo(
            out,
            tenants=args.tenants,
            months=args.months,
            events_per_tenant=args.events_per_tenant,
            seed=args.seed,
            as_of=as_of,
            progress=_progress_bar("writing demo data") if total >= 200_000 else None,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    elapsed = time.monotonic() - started
    print(
        f"Demo dataset in {out} ({elapsed:.1f}s): {args.tenants} tenants, "
        f"{manifest.total_events:,} usage events up to {as_of.isoformat()}, "
        f"{len(manifest.violations)} seeded violations "
        f"(see {out / 'demo_manifest.json'})."
    )
    return 0


# --- run ----------------------------------------------------------------------------------


def _summary(findings: pd.DataFrame, quarantined: int | None) -> str:
    lines = []
    live = findings[findings["status"] != "resolved"]
    if live.empty:
        lines.append("No open or waived findings.")
    else:
        table = (
            live.pivot_table(
                index="check",
                columns="severity",
                values="finding_id",
                aggfunc="count",
                fill_value=0,
            )
            .reindex(columns=[s for s in reversed(SEVERITIES) if s in set(live["severity"])])
            .reset_index()
        )
        lines.append("Findings (open + waived) by check and severity:")
        lines.append(table.to_string(index=False))
    counts = findings["status"].value_counts()
    lines.append(
        "Status: "
        + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("open", "waived", "resolved"))
        + (f"; {quarantined} input rows quarantined" if quarantined is not None else "")
    )
    return "\n".join(lines)


def matching(frame: pd.DataFrame, **wanted: str | Sequence[str] | None) -> pd.DataFrame:
    """The rows whose column holds the wanted value (or one of the wanted values) for every
    column named; an empty or None value leaves that column unfiltered."""
    for column, value in wanted.items():
        if value:
            frame = frame[frame[column].isin([value] if isinstance(value, str) else value)]
    return frame


def _say_waiting(holder: str) -> None:
    print(f"Another nightly run is in progress ({holder}): waiting for it.", file=sys.stderr)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """One nightly run at a time (run_lock.py): the lock comes before anything the run
    touches, the warehouse check below included."""
    from licensing_pipeline.run_lock import RunLocked, run_lock

    with contextlib.ExitStack() as held:
        try:
            held.enter_context(run_lock(settings, wait=args.wait, waiting=_say_waiting))
        except RunLocked as exc:
            raise CliError(f"{exc}; wait for it to end, or add --wait") from None
        return _run(args, settings)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    ensure_dagster_home(settings)
    from licensing_pipeline.quality.report import describe_run_checks
    from licensing_pipeline.repository.resources import LicensingRepository

    data_dir = _data_dir(args, settings)
    _check_stores(settings)
    as_of = args.as_of or settings.as_of
    celery = settings.executor.kind == "celery"
    if celery:
        _check_workers(settings)
    where = f", steps on Celery queue {settings.executor.celery_queue!r}" if celery else ""
    from licensing_pipeline.definitions import build_definitions
    from licensing_pipeline.jobs import NIGHTLY_JOB

    defs = build_definitions(settings)  # a bad value of a resource's variable stops here
    _check_policy_approval(settings, as_of)
    print(
        f"Running {NIGHTLY_JOB} on {data_dir} as of {as_of or 'today (UTC)'}{where}",
        flush=True,
    )
    result, elapsed = _execute_nightly(
        defs,
        data_dir,
        as_of,
        celery=celery,
        verbose=args.verbose,
        full_refresh=args.full_refresh,
    )
    quality, blocked_steps = describe_run_checks(result, settings.data_docs_dir)
    if not result.success:
        _report_failure(result, elapsed, quality, blocked_steps)
        return EXIT_JOB_FAILED
    findings = LicensingRepository(database_url=settings.database_url).load_findings()
    _report_success(settings, result, elapsed, findings, quality)
    return _exit_for_findings(findings, args.fail_on)


def _data_dir(args: argparse.Namespace, settings: Settings) -> Path:
    data_dir = Path(args.data_dir).expanduser().resolve() if args.data_dir else settings.data_dir
    if not data_dir.is_dir():
        raise CliError(
            f"{data_dir}: no such folder. Create a demo dataset with `licensing-pipeline demo`, "
            "or point --data-dir / LICENSING_DATA_DIR at your exports."
        )
    return data_dir


def _check_stores(settings: Settings) -> None:
    """A schema behind head, or an embedded warehouse another process holds, stops here in one
    line rather than as failed steps of the run."""
    from licensing_pipeline.repository.resources import LicensingRepository
    from licensing_pipeline.warehouse.resources import warehouse_for

    LicensingRepository(database_url=settings.database_url).engine()
    with warehouse_for(settings).connect():
        pass


def _check_policy_approval(settings: Settings, as_of: str | None) -> None:
    """An unapproved bundle stops a run that requires approval here, in one line; otherwise
    the run goes on and says so."""
    from licensing_pipeline.governance.policy_approval import PolicyNotApproved, run_approval

    day = date.fromisoformat(as_of) if as_of else datetime.now(UTC).date()
    try:
        approval = run_approval(settings, day)
    except PolicyNotApproved as exc:
        raise CliError(str(exc)) from None
    except ContractError:  # no valid bundle at all: the run itself says what is wrong
        return
    if approval.request_id is None:
        print(
            f"Note: {approval.problem(settings.policy_path)}. The {settings.profile} profile "
            "runs it anyway (LICENSING_REQUIRE_APPROVED_POLICY=on refuses it).",
            file=sys.stderr,
        )


def _check_workers(settings: Settings) -> None:
    from licensing_pipeline.workers import missing_workers

    problem = missing_workers(settings.executor)
    if problem:
        raise CliError(problem)


def _execute_nightly(
    defs: Any,
    data_dir: Path,
    as_of: str | None,
    *,
    celery: bool,
    verbose: bool,
    full_refresh: bool,
) -> tuple[Any, float]:
    """The job's result, in this process or through the Celery workers, and its seconds."""
    import dagster as dg

    from licensing_pipeline.jobs import NIGHTLY_JOB, run_settings_config

    run_config = run_settings_config(str(data_dir), as_of, full_refresh)
    run_config["loggers"] = {"progress": {}}
    started = time.monotonic()
    # dbt's own log lines go to the run's logs in the UI; the terminal gets one line a step.
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    result: Any
    with dg.DagsterInstance.get() as instance, quiet:
        for run_id in fail_abandoned_runs(instance, NIGHTLY_JOB):
            print(
                f"Run {run_id} was abandoned by a killed process: marked failed.", file=sys.stderr
            )
        if celery:
            from licensing_pipeline.workers import execute_nightly

            result = execute_nightly(instance, run_config, tags=process_tags())
        else:
            result = defs.resolve_job_def(NIGHTLY_JOB).execute_in_process(
                run_config=run_config, instance=instance, raise_on_error=False, tags=process_tags()
            )
    return result, time.monotonic() - started


def _report_failure(
    result: Any, elapsed: float, quality: list[str], blocked_steps: set[str]
) -> None:
    """The failed steps, except those a blocking check stopped (``quality`` says why)."""
    from licensing_pipeline.cli_progress import error_summary

    failed = [
        e
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE" and e.step_key not in blocked_steps
    ]
    print(f"\nRun {result.run_id} FAILED after {elapsed:.1f}s.", file=sys.stderr)
    for line in quality:
        print(line, file=sys.stderr)
    for event in failed:
        error = getattr(event.event_specific_data, "error", None)
        print(f"  {event.step_key}: {error_summary(error)}", file=sys.stderr)
    print("Open the run in the Dagster UI (`make dev`) for the full log.", file=sys.stderr)


def _report_success(
    settings: Settings, result: Any, elapsed: float, findings: pd.DataFrame, quality: list[str]
) -> None:
    from licensing_pipeline.warehouse.resources import warehouse_for

    warehouse = warehouse_for(settings)
    quarantined = (
        len(warehouse.read_frame("quarantined_records"))
        if warehouse.table_exists("quarantined_records")
        else None
    )
    print(f"\nRun {result.run_id} succeeded in {elapsed:.1f}s.\n")
    print(_summary(findings, quarantined))
    if quality:
        print("\n" + "\n".join(quality))
    print("\nDetails: `licensing-pipeline findings` (add --format csv|jsonl, --status all).")
    dashboard = settings.dashboard_dir / "index.html"
    if dashboard.is_file():
        print(f"Dashboard: {dashboard}")
    if settings.statements_dir.is_dir():
        print(
            f"Customer statements: {settings.statements_dir} (a folder per tenant; "
            "`licensing-pipeline statement TENANT` for one)."
        )


def _exit_for_findings(findings: pd.DataFrame, fail_on: str | None) -> int:
    """``--fail-on``: open findings at or above that severity fail the command."""
    if not fail_on:
        return 0
    threshold = SEVERITIES.index(fail_on)
    ranks = findings["severity"].map(SEVERITIES.index)
    breaching = findings[(findings["status"] == "open") & (ranks >= threshold)]
    if len(breaching):
        print(
            f"\n{len(breaching)} open finding(s) at or above '{fail_on}': exiting with "
            f"{EXIT_FINDINGS_AT_OR_ABOVE}.",
            file=sys.stderr,
        )
        return EXIT_FINDINGS_AT_OR_ABOVE
    return 0


# --- dev ----------------------------------------------------------------------------------


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    """`dagster dev` on the profile's instance: the UI shows the runs `run` started."""
    ensure_dagster_home(settings)
    dagster = Path(sys.executable).with_name("dagster")
    command = [
        str(dagster) if dagster.exists() else "dagster",
        "dev",
        "-w",
        str(PROJECT_DIR / "workspace.yaml"),
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    os.execvp(command[0], command)
    return 0  # not reached: exec replaces this process


# --- findings -----------------------------------------------------------------------------


def cmd_findings(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.repository.resources import LicensingRepository

    findings = matching(
        LicensingRepository(database_url=settings.database_url).load_findings(),
        status=None if args.status == "all" else args.status,
        severity=args.severity,
        tenant_id=args.tenant,
        check=args.check,
    )
    out = findings.copy()
    for column in ("first_detected_at", "last_detected_at"):
        out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if args.format == "csv":
        out.to_csv(sys.stdout, index=False)
    elif args.format == "jsonl":
        if len(out):
            out.to_json(sys.stdout, orient="records", lines=True)
    elif out.empty:
        print("No findings match.")
    else:
        columns = ["tenant_id", "check", "subject", "period", "observed", "allowed"]
        shown = out[[*columns, "severity", "action", "status"]]
        print(shown.to_string(index=False, max_colwidth=40))
        print(f"\n{len(out)} finding(s).")
    return 0


# --- entry point --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="licensing-pipeline",
        description="Keep a SaaS business in compliance with its own contracts.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="write a demo dataset with known, seeded violations")
    demo.add_argument("--tenants", type=_positive, default=40)
    demo.add_argument("--months", type=_positive, default=6)
    demo.add_argument("--events-per-tenant", type=_positive, default=2500)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--as-of", type=_iso_date, help="last day of data (default: today, UTC)")
    demo.add_argument("--out", help="folder to write (default: LICENSING_DATA_DIR)")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="run the nightly_compliance job now, in this process")
    run.add_argument("--data-dir", help="exports folder (default: LICENSING_DATA_DIR)")
    run.add_argument("--as-of", type=_iso_date, help="evaluate as of this day (default: today)")
    run.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        help=f"exit {EXIT_FINDINGS_AT_OR_ABOVE} if an open finding at or above this severity exists",
    )
    run.add_argument("--verbose", action="store_true", help="also print dbt's and Dagster's logs")
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="read every usage file again and rebuild the usage tables (default: new and "
        "changed files only); rows of files no longer delivered are dropped",
    )
    run.add_argument(
        "--wait",
        action="store_true",
        help=f"if another run is in progress, wait for it instead of exiting {EXIT_USAGE}",
    )
    run.set_defaults(func=cmd_run)

    dev = sub.add_parser("dev", help="start the Dagster UI on this profile's instance")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(func=cmd_dev)

    findings = sub.add_parser("findings", help="print the findings of the latest run")
    findings.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")
    findings.add_argument("--status", choices=("open", "waived", "resolved", "all"), default="open")
    findings.add_argument("--severity", choices=SEVERITIES, nargs="+")
    findings.add_argument("--tenant", help="only this tenant_id")
    findings.add_argument("--check", help="only this check")
    findings.set_defaults(func=cmd_findings)

    from licensing_pipeline.remediation.cli import add_remediation_commands

    add_remediation_commands(sub)

    from licensing_pipeline.policy.cli import add_policy_commands

    add_policy_commands(sub)

    from licensing_pipeline.quality.cli import add_quality_commands

    add_quality_commands(sub)

    from licensing_pipeline.repository.cli import add_db_commands

    add_db_commands(sub)

    from licensing_pipeline.warehouse.cli import add_snapshot_commands

    add_snapshot_commands(sub)

    from licensing_pipeline.governance.ledger_cli import add_ledger_commands

    add_ledger_commands(sub)

    from licensing_pipeline.statements.cli import add_statement_command

    add_statement_command(sub)

    from licensing_pipeline.workers import add_worker_command

    add_worker_command(sub)

    from licensing_pipeline.governance.backup_cli import add_backup_commands

    add_backup_commands(sub)

    from licensing_pipeline.governance.audit_cli import add_audit_commands

    add_audit_commands(sub)

    from licensing_pipeline.governance.access_cli import add_access_commands

    add_access_commands(sub)

    from licensing_pipeline.governance.changes_cli import add_change_commands

    add_change_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings: Settings | None = None
    try:
        settings = load_settings()
        return int(args.func(args, settings))
    except (
        CliError,
        ContractError,
        InstanceError,
        SettingsError,
        SchemaNotCurrent,
        TenantIsolationError,
        WarehouseBusy,
    ) as exc:
        print(f"licensing-pipeline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from licensing_pipeline.unreachable import unreachable_postgres

        urls = (
            (settings.database_url, settings.warehouse_url, settings.dagster_storage_url)
            if settings
            else ()
        )
        unreachable = unreachable_postgres(exc, urls)
        if unreachable is None:
            raise
        print(f"licensing-pipeline: {unreachable}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
