"""Benchmark `licensing-pipeline run` end to end on 1M and 5M demo events.

Prints a markdown table (wall time, peak memory, per-step times, and a reference DuckDB
query that reads, dedupes and aggregates the same events) and writes
bench-results/benchmark.json. Usage: python scripts/benchmark.py [--sizes 1000000 5000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

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


def step_seconds(dagster_home: Path) -> dict[str, float]:
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(dg.RunsFilter(job_name="nightly_compliance"), limit=1)[0]
        starts: dict[str, float] = {}
        out: dict[str, float] = {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type_value == "STEP_START":
                starts[event.step_key] = record.timestamp
            elif event.event_type_value == "STEP_SUCCESS":
                out[event.step_key] = record.timestamp - starts.get(
                    event.step_key, record.timestamp
                )
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def bench(events: int, workdir: Path) -> dict[str, object]:
    home = workdir / f"home-{events}"
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
    generate = time.perf_counter() - started
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(
        [cli, "run", "--as-of", AS_OF],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "events": events,
        "generate_seconds": round(generate, 1),
        "run_seconds": round(wall, 1),
        "peak_memory_mib": round(max(peak_kib, before) / 1024),
        "reference_query_seconds": round(reference_query_seconds(home / "data" / "usage"), 2),
        "steps": {k: round(v, 2) for k, v in step_seconds(home / "dagster").items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--workdir", type=Path, help="keep the generated data here")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="licensing-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        for size in args.sizes:
            result = bench(size, workdir)
            results.append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "benchmark.json").write_text(
        json.dumps(
            {"date": date.today().isoformat(), "cores": os.cpu_count(), "results": results},
            indent=2,
        )
    )
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
