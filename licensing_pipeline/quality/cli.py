"""`licensing-pipeline quality`: the data_quality_report of the latest runs, from the shell."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from licensing_pipeline.settings import Settings


def cmd_quality(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.quality.report import load_report, trend
    from licensing_pipeline.repository.resources import checked_engine

    report = load_report(checked_engine(settings.database_url), last_runs=args.runs)
    if args.format in ("csv", "jsonl"):
        out = report.copy()
        out["evaluated_at"] = out["evaluated_at"].astype(str)
        out["as_of"] = out["as_of"].astype(str)
        if args.format == "csv":
            out.to_csv(sys.stdout, index=False)
        elif len(out):
            out.to_json(sys.stdout, orient="records", lines=True)
        return 0
    if report.empty:
        print("No data-quality checks recorded yet: run `licensing-pipeline run` first.")
        return 0
    runs = trend(report)
    runs["run_id"] = runs["run_id"].str.slice(0, 8)
    print(f"Data-quality checks of the last {len(runs)} run(s) (newest first):")
    print(runs.to_string(index=False))
    latest = report[report["run_id"] == report["run_id"].iloc[0]]
    shown = latest[latest["outcome"] != "pass"] if not args.all else latest
    print(f"\nRun {latest['run_id'].iloc[0][:8]} (as of {latest['as_of'].iloc[0]}):")
    if shown.empty:
        print(f"all {len(latest)} checks passed.")
        return 0
    table = shown.assign(
        check=shown["asset"] + ":" + shown["check_name"],
        blocking=shown["blocking"].map({True: "blocking", False: ""}),
    )[["outcome", "blocking", "check", "summary"]]
    print(table.to_string(index=False, max_colwidth=100))
    return 0


def add_quality_commands(sub: Any) -> None:
    quality = sub.add_parser(
        "quality", help="print the data-quality checks of the latest runs (pass/warn/fail)"
    )
    quality.add_argument("--runs", type=int, default=7, help="how many runs (default 7)")
    quality.add_argument("--all", action="store_true", help="list passed checks too")
    quality.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")
    quality.set_defaults(func=cmd_quality)
