"""Benchmark `licensing-pipeline run` end to end on 1M and 5M demo events.

Prints a markdown table (wall time, peak memory, per-step times, a reference DuckDB query
that reads, dedupes and aggregates the same events, and the validation overhead: the
data-quality check steps plus dbt's tests, against the run's duration) and writes
bench-results/benchmark.json. Usage: python scripts/benchmark.py [--sizes 1000000 5000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb
from bench_results import save_results

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-20"
TENANTS = 50


def reference_query_seconds(usage_dir: Path) -> float:
    """One DuckDB query: read every JSON Lines file, dedupe on (source, id), aggregate."""
    con = duckdb.connect()
    started = time.perf_counter()
    con.execute(
        f"""
        SELECT subject, type, date_trunc('month', CAST("time" AS TIMESTAMPTZ)) AS m, count(*)
        FROM (
            SELECT DISTINCT ON (source, id) source, id, subject, type, "time"
            FROM read_json('{usage_dir}/**/*.jsonl*', format='newline_delimited',
                           ignore_errors=true,
                           columns={{source: 'VARCHAR', id: 'VARCHAR', subject: 'VARCHAR',
                                     type: 'VARCHAR', "time": 'VARCHAR'}})
        )
        GROUP BY ALL
        """
    ).fetchall()
    return time.perf_counter() - started


def storing_reference_seconds(usage_dir: Path, scratch: Path) -> float:
    """The same read and dedupe, but every attribute kept and the rows stored in a DuckDB
    file, as the event stage must: the reference for the stage's write, not its checks."""
    database = scratch / "reference.duckdb"
    database.unlink(missing_ok=True)
    con = duckdb.connect(str(database))
    started = time.perf_counter()
    con.execute(
        f"""
        CREATE TABLE usage_events AS
        SELECT DISTINCT ON (source, id) source, id, type, subject,
               CAST("time" AS TIMESTAMPTZ) AS "time", data
        FROM read_json('{usage_dir}/**/*.jsonl*', format='newline_delimited',
                       ignore_errors=true,
                       columns={{source: 'VARCHAR', id: 'VARCHAR', subject: 'VARCHAR',
                                 type: 'VARCHAR', "time": 'VARCHAR', data: 'JSON'}})
        """
    )
    seconds = time.perf_counter() - started
    con.close()
    database.unlink()
    return seconds


def usage_stage_seconds(dagster_home: Path, run_id: str) -> dict[str, float]:
    """The event stage's own timings (read and check, dedupe, write) from that run's
    ``usage_events`` materialization."""
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("usage_events")), limit=20
        ).records
        for record in records:
            if record.run_id == run_id and record.asset_materialization:
                return {
                    key.removesuffix("_seconds"): round(float(value.value), 2)
                    for key, value in record.asset_materialization.metadata.items()
                    if key.endswith("_seconds") and isinstance(value.value, float)
                }
    return {}


# `licensing-pipeline run` exactly, but with the Great Expectations checks left out of the
# code location (dbt's tests stay: they are part of the dbt build).
BASELINE = """
import sys
import licensing_pipeline.quality.definitions as quality
from licensing_pipeline import cli

quality.quality_checks = []
sys.exit(cli.main(["run", "--full-refresh", "--as-of", sys.argv[1]]))
"""


def run_timings(
    dagster_home: Path, run_id: str | None = None
) -> tuple[str, float, dict[str, float]]:
    """A nightly run (default: the latest): its id, its duration (start to success) and each
    step's."""
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        run = (
            instance.get_run_by_id(run_id)
            if run_id
            else instance.get_runs(dg.RunsFilter(job_name="nightly_compliance"), limit=1)[0]
        )
        assert run is not None
        starts: dict[str, float] = {}
        out: dict[str, float] = {}
        run_start = run_end = 0.0
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None:
                continue
            if event.event_type_value == "PIPELINE_START":
                run_start = record.timestamp
            elif event.event_type_value in ("PIPELINE_SUCCESS", "PIPELINE_FAILURE"):
                run_end = record.timestamp
            if event.step_key is None:
                continue
            if event.event_type_value == "STEP_START":
                starts[event.step_key] = record.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                out[event.step_key] = record.timestamp - starts.get(
                    event.step_key, record.timestamp
                )
    steps = dict(sorted(out.items(), key=lambda kv: -kv[1]))
    return run.run_id, run_end - run_start, steps


def dbt_breakdown(run_id: str) -> dict[str, object]:
    """Where the dbt step's time went in that run: dbt's own elapsed time, its models and
    tests (from the invocation's run_results), dbt's start-up and parse before the first
    node (from its log), and whether its partial parse took effect."""
    target = ROOT / "dbt_project" / "target"
    out: dict[str, object] = {}
    for folder in target.glob(f"warehouse_models-{run_id[:7]}-*"):
        results = folder / "run_results.json"
        if results.exists():
            parsed = json.loads(results.read_text())
            times = {
                r["unique_id"]: float(r.get("execution_time") or 0.0) for r in parsed["results"]
            }
            out["dbt_elapsed_seconds"] = round(float(parsed.get("elapsed_time") or 0.0), 2)
            out["models_seconds"] = round(
                sum(v for k, v in times.items() if k.startswith("model.")), 2
            )
            out["tests_seconds"] = round(
                sum(v for k, v in times.items() if k.startswith("test.")), 2
            )
        log = folder / "dbt.log"
        if log.exists():
            stamps: dict[str, str] = {}
            full_parse = False
            for line in log.read_text().splitlines():
                try:
                    info = json.loads(line)["info"]
                except (ValueError, KeyError):
                    continue
                stamps.setdefault(info["name"], info["ts"])
                full_parse = full_parse or info["name"] == "UnableToPartialParse"
            if "MainReportVersion" in stamps and "ConcurrencyLine" in stamps:
                began = datetime.fromisoformat(stamps["MainReportVersion"].replace("Z", "+00:00"))
                ready = datetime.fromisoformat(stamps["ConcurrencyLine"].replace("Z", "+00:00"))
                out["adapter_and_parse_seconds"] = round((ready - began).total_seconds(), 2)
            out["partial_parse"] = not full_parse
    return out


def dbt_test_seconds(run_id: str) -> float:
    """Time dbt spent in its tests during the run (from that invocation's run_results)."""
    tests = dbt_breakdown(run_id).get("tests_seconds", 0.0)
    assert isinstance(tests, float)
    return tests


def quality_steps() -> set[str]:
    """The step keys of the Great Expectations checks (one op per multi-asset check)."""
    sys.path.insert(0, str(ROOT))
    from licensing_pipeline.quality.checks import quality_checks

    return {checks.node_def.name for checks in quality_checks}


def validation_overhead(
    wall: float,
    baseline_wall: float,
    run_id: str,
    run_seconds: float,
    steps: dict[str, float],
    baseline_seconds: float,
) -> dict:
    """What validating costs, as a share of the run (`licensing-pipeline run`, wall time):
    the run against the same command with the GX checks left out (their import and Data
    Docs partly land in other steps, so their own steps do not show all of it), plus the
    time dbt spends in its tests. The same comparison on the Dagster runs' durations, and
    the GX check steps' own time, are kept beside it."""
    gx_steps = sum(seconds for step, seconds in steps.items() if step in quality_steps())
    dbt_tests = dbt_test_seconds(run_id)
    gx = max(wall - baseline_wall, 0.0)
    gx_in_run = max(run_seconds - baseline_seconds, 0.0)
    return {
        "run_seconds": round(wall, 1),
        "without_gx_checks_seconds": round(baseline_wall, 1),
        "gx_checks_seconds": round(gx, 2),
        "gx_check_steps_seconds": round(gx_steps, 2),
        "dbt_tests_seconds": round(dbt_tests, 2),
        "share_of_run": round((gx + dbt_tests) / wall, 3) if wall else 0.0,
        "dagster_run_seconds": round(run_seconds, 1),
        "dagster_run_without_gx_checks_seconds": round(baseline_seconds, 1),
        "share_of_dagster_run": round((gx_in_run + dbt_tests) / run_seconds, 3)
        if run_seconds
        else 0.0,
    }


def demo_home(home: Path, events: int) -> tuple[dict[str, str], float]:
    """A home with the demo data of about ``events`` usage events: its environment and the
    seconds the generator took."""
    env = {
        **os.environ,
        "LICENSING_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "LICENSING_DATA_DIR": str(home / "data"),
        "DO_NOT_TRACK": "1",
    }
    cli = str(Path(sys.executable).parent / "licensing-pipeline")
    per_tenant = max(events // TENANTS, 1)
    started = time.perf_counter()
    subprocess.run(
        [
            cli,
            "demo",
            "--tenants",
            str(TENANTS),
            "--events-per-tenant",
            str(per_tenant),
            "--months",
            "6",
            "--as-of",
            AS_OF,
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return env, time.perf_counter() - started


def bench(events: int, workdir: Path, repeat: int = 1) -> dict[str, object]:
    home = workdir / f"home-{events}"
    env, generate = demo_home(home, events)
    cli = str(Path(sys.executable).parent / "licensing-pipeline")
    # Best of `repeat` for both: the run with the checks and the same job without them
    # alternate, so a busy moment of the machine does not decide the comparison.
    best: dict[str, tuple[float, str]] = {}
    every: dict[str, list[float]] = {"full": [], "baseline": []}
    peak_kib = 0
    for _ in range(repeat):
        started = time.perf_counter()
        baseline = subprocess.run(
            [sys.executable, "-c", BASELINE, AS_OF],
            env=env,
            check=False,
            capture_output=True,
            text=True,
        )
        if baseline.returncode != 0:
            sys.exit(f"the run without GX checks failed:\n{baseline.stderr[-3000:]}")
        seconds = time.perf_counter() - started
        every["baseline"].append(round(seconds, 1))
        if seconds < best.get("baseline", (float("inf"), ""))[0]:
            best["baseline"] = (seconds, run_timings(home / "dagster")[0])
        started = time.perf_counter()
        # wait4 gives this run's own peak (with the dbt process it starts), not the demo
        # generator's, which RUSAGE_CHILDREN would mix in.
        # --full-refresh: every run reads every file, as a first night does (the runs share
        # a home, and without it the later ones would find nothing new)
        process = subprocess.Popen(
            [cli, "run", "--full-refresh", "--as-of", AS_OF],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        if process.returncode != 0:
            sys.exit(f"licensing-pipeline run failed with exit code {process.returncode}")
        peak_kib = max(peak_kib, usage.ru_maxrss)
        every["full"].append(round(seconds, 1))
        if seconds < best.get("full", (float("inf"), ""))[0]:
            best["full"] = (seconds, run_timings(home / "dagster")[0])
    wall, full_run_id = best["full"]
    baseline_wall, baseline_run_id = best["baseline"]
    run_id, run_seconds, steps = run_timings(home / "dagster", full_run_id)
    _, baseline_seconds, _ = run_timings(home / "dagster", baseline_run_id)
    return {
        "events": events,
        "generate_seconds": round(generate, 1),
        "run_seconds": round(wall, 1),
        # In order; the first run of a fresh home (a baseline one) also pays dbt's full parse.
        "every_run_seconds": every,
        "peak_memory_mib": round(peak_kib / 1024),
        "reference_query_seconds": round(reference_query_seconds(home / "data" / "usage"), 2),
        "storing_reference_seconds": round(
            storing_reference_seconds(home / "data" / "usage", workdir), 2
        ),
        "usage_stage_seconds": usage_stage_seconds(home / "dagster", run_id),
        "validation": validation_overhead(
            wall, baseline_wall, run_id, run_seconds, steps, baseline_seconds
        ),
        "outside_dagster_run_seconds": round(wall - run_seconds, 1),
        "dbt": dbt_breakdown(run_id),
        "steps": {k: round(v, 2) for k, v in steps.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--workdir", type=Path, help="keep the generated data here")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each kind; the best one counts"
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="licensing-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        for size in args.sizes:
            result = bench(size, workdir, args.repeat)
            results.append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
    save_results("benchmark", results)
    print(
        "| events | run (s) | peak memory (MiB) | reference DuckDB query (s) | slowest steps (s) |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        steps = r["steps"]
        assert isinstance(steps, dict)
        slowest = ", ".join(f"{k} {v}" for k, v in list(steps.items())[:4])
        print(
            f"| {r['events']:,} | {r['run_seconds']} | {r['peak_memory_mib']} | "
            f"{r['reference_query_seconds']} | {slowest} |"
        )
    print()
    print(
        "| events | reference query (s) | same, storing all attributes (s) "
        "| `usage_events` step (s) | of which read+check / dedupe / write (s) |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        steps, stages = r["steps"], r["usage_stage_seconds"]
        assert isinstance(steps, dict) and isinstance(stages, dict)
        print(
            f"| {r['events']:,} | {r['reference_query_seconds']} "
            f"| {r['storing_reference_seconds']} | {steps.get('usage_events')} "
            f"| {' / '.join(str(stages.get(k)) for k in ('read_and_check', 'dedupe', 'write'))} |"
        )
    print()
    print(
        "| events | run (s) | without GX checks (s) | GX checks (s) | their steps (s) "
        "| dbt tests (s) | validation, share of the run | same, of the Dagster run |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        v = r["validation"]
        assert isinstance(v, dict)
        print(
            f"| {r['events']:,} | {v['run_seconds']} | {v['without_gx_checks_seconds']} "
            f"| {v['gx_checks_seconds']} | {v['gx_check_steps_seconds']} "
            f"| {v['dbt_tests_seconds']} | {v['share_of_run']:.1%} "
            f"| {v['share_of_dagster_run']:.1%} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
