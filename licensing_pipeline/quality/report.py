"""The data_quality_report table (write and read) and the run summary the CLI prints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.quality.tables import data_quality_report
from licensing_pipeline.quality.validation import CheckOutcome

SUMMARY_CHARS = 2000


def report_rows(
    outcomes: Iterable[CheckOutcome], *, run_id: str, as_of: date, evaluated_at: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "run_id": run_id,
            "asset": o.spec.asset,
            "check_name": o.spec.name,
            "as_of": as_of,
            "evaluated_at": evaluated_at,
            "outcome": o.outcome,
            "blocking": o.spec.blocking,
            "expectations": len(o.expectations),
            "failed_expectations": len(o.failed),
            "unexpected_count": o.unexpected_count,
            "summary": o.description()[:SUMMARY_CHARS],
            "data_docs": next(iter(o.data_docs.values()), None),
            "seconds": round(o.seconds, 3),
        }
        for o in outcomes
    ]


def record_outcomes(
    engine: sa.Engine, outcomes: Sequence[CheckOutcome], *, run_id: str, as_of: date
) -> None:
    """Replace this run's rows for these checks (a re-executed step overwrites its own)."""
    if not outcomes:
        return
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    rows = report_rows(outcomes, run_id=run_id, as_of=as_of, evaluated_at=now)
    table = data_quality_report.c
    with engine.begin() as con:
        for row in rows:
            con.execute(
                sa.delete(data_quality_report).where(
                    (table.run_id == run_id)
                    & (table.asset == row["asset"])
                    & (table.check_name == row["check_name"])
                )
            )
        con.execute(sa.insert(data_quality_report), rows)


def load_report(engine: sa.Engine, *, last_runs: int | None = None) -> pd.DataFrame:
    """Rows of the latest ``last_runs`` runs (all when None), newest run first."""
    table = data_quality_report.c
    query = sa.select(data_quality_report)
    if last_runs is not None:
        runs = (
            sa.select(table.run_id, sa.func.max(table.evaluated_at).label("at"))
            .group_by(table.run_id)
            .order_by(sa.desc("at"))
            .limit(last_runs)
            .subquery()
        )
        query = query.where(table.run_id.in_(sa.select(runs.c.run_id)))
    with engine.connect() as con:
        frame = pd.DataFrame(con.execute(query).mappings().all())
    if frame.empty:
        return pd.DataFrame(columns=[c.name for c in data_quality_report.columns])
    started = frame.groupby("run_id")["evaluated_at"].transform("min")
    return (
        frame.assign(_started=started)
        .sort_values(["_started", "asset", "check_name"], ascending=[False, True, True])
        .drop(columns="_started")
        .reset_index(drop=True)
    )


def trend(report: pd.DataFrame) -> pd.DataFrame:
    """pass / warn / fail counts per run (newest first): the night-by-night picture."""
    if report.empty:
        return pd.DataFrame(columns=["run_id", "as_of", "pass", "warn", "fail"])
    counts = (
        report.pivot_table(
            index=["run_id", "as_of"],
            columns="outcome",
            values="check_name",
            aggfunc="count",
            fill_value=0,
        )
        .reindex(columns=["pass", "warn", "fail"], fill_value=0)
        .reset_index()
    )
    order = report.groupby("run_id")["evaluated_at"].min()
    counts["_at"] = counts["run_id"].map(order)
    return counts.sort_values("_at", ascending=False).drop(columns="_at").reset_index(drop=True)


# --- the CLI's words about a run -------------------------------------------------------------


def describe_checks(
    evaluations: Sequence[Any], data_docs: str | None = None, *, findings_written: bool = False
) -> list[str]:
    """Lines about a run's asset checks (GX suites and dbt tests): what blocked the run, what
    warned, or that everything passed. ``evaluations``: Dagster AssetCheckEvaluations;
    ``findings_written``: compliance_findings was materialized in the run."""
    if not evaluations:
        return []
    blocked = [e for e in evaluations if not e.passed and _is_error(e) and e.blocking]
    warned = [e for e in evaluations if not e.passed and e not in blocked]
    lines: list[str] = []

    def line(e: Any) -> str:
        text = " ".join((e.description or "failed").split())
        if len(text) > 300:
            text = text[:299] + "…"
        return f"  {e.asset_key.to_user_string()}:{e.check_name}  {text}"

    if blocked and findings_written:
        lines.append(
            f"Blocked by {len(blocked)} data-quality check(s): compliance_findings was written, "
            "but nothing after it ran."
        )
    elif blocked:
        lines.append(
            f"Blocked by {len(blocked)} data-quality check(s): compliance_findings was NOT "
            "updated, so the findings of the previous run are unchanged."
        )
        lines += [line(e) for e in blocked]
    if warned:
        lines.append(f"{len(warned)} data-quality check(s) warned (the run went on):")
        lines += [line(e) for e in warned]
    if not blocked and not warned:
        lines.append(f"Data quality: all {len(evaluations)} checks passed.")
    if data_docs:
        lines.append(f"Data Docs: {data_docs}")
    return lines


def _is_error(evaluation: Any) -> bool:
    severity = getattr(evaluation, "severity", None)
    return getattr(severity, "value", str(severity)) == "ERROR"


def describe_run_checks(result: Any, data_docs_dir: Path) -> tuple[list[str], set[str]]:
    """What the CLI says about a finished run's checks, and the steps that failed only
    because a blocking check failed (their failure is already explained by these lines).
    The run's Data Docs are written by then: the data_quality resource's teardown writes
    them."""
    evaluations = result.get_asset_check_evaluations()
    index = data_docs_dir / "index.html"
    written = any(
        event.asset_key is not None and event.asset_key.to_user_string() == "compliance_findings"
        for event in result.get_asset_materialization_events()
    )
    lines = describe_checks(
        evaluations, str(index) if index.exists() else None, findings_written=written
    )
    blocked_steps = {
        str(event.step_key)
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE"
        and getattr(getattr(event.event_specific_data, "error", None), "cls_name", "")
        == "DagsterAssetCheckFailedError"
    }
    return lines, blocked_steps
