"""Benchmark the usage ledger: `ledger verify` over 10M events, and what the ledger adds to
ingest at 1M events (the event stage alone, and the whole `licensing-pipeline run`).

The verify figure is over a DuckDB warehouse whose 10M events and ledger are made by SQL
(the same append ingest runs, over events generated in the database: verify does not care how
they arrived). The ingest figures use scripts/benchmark.py's demo data; "without the ledger"
is the same code with the ledger's append replaced by nothing (and its check left out of the
run). Best of ``--repeat``, alternating. Writes bench-results/benchmark_ledger.json.
Usage: python scripts/benchmark_ledger.py [--verify-events 10000000] [--ingest-events 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb
from bench_results import save_results
from benchmark import demo_home

AS_OF = "2026-11-20"
TENANTS = 50  # as scripts/benchmark.py's demo data
BATCHES = 30  # nights of a month, one file each

# The ledger's append made a no-op, its check left out: the pipeline as it was before.
WITHOUT_LEDGER = """
import sys
import licensing_pipeline.governance.definitions as governance
import licensing_pipeline.governance.ledger as ledger
import dagster as dg
from licensing_pipeline import cli

ledger.append = lambda *args, **kwargs: []
governance.defs = lambda: dg.Definitions()
sys.exit(cli.main(["run", "--full-refresh", "--as-of", sys.argv[1]]))
"""
WITH_LEDGER = """
import sys
from licensing_pipeline import cli

sys.exit(cli.main(["run", "--full-refresh", "--as-of", sys.argv[1]]))
"""
# The event stage alone: load_usage_events into a fresh warehouse file, timed.
STAGE = """
import sys, time, duckdb
from pathlib import Path
import licensing_pipeline.governance.ledger as ledger
from licensing_pipeline.contract.catalog import load_catalog
from licensing_pipeline.contract.usage import load_usage_events

data, out, with_ledger = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
if not with_ledger:
    ledger.append = lambda *args, **kwargs: []
con = duckdb.connect(out)
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")
catalog = load_catalog(data / "catalog.yaml")
started = time.perf_counter()
stats = load_usage_events(con, data / "usage", catalog)
print(time.perf_counter() - started, stats.events_loaded)
"""


def synthetic_ledger(path: Path, events: int) -> float:
    """A warehouse of ``events`` events in ``BATCHES`` batches, appended to the ledger by the
    ingest's own append; returns the append's seconds."""
    from licensing_pipeline.contract import usage_registry as registry
    from licensing_pipeline.governance import ledger

    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    registry.ensure_tables(con)
    con.execute(
        f"""
        CREATE TEMP TABLE _added AS
        SELECT 'gateway-' || (i % 3) AS source, 'evt-' || i AS id, 'api.request' AS type,
               't-' || (i % {TENANTS}) AS tenant_id,
               TIMESTAMP '2026-10-01' + to_microseconds(i * 250_000) AS time,
               'u-' || (i % 997) AS user_id, 'sso' AS feature, 'eu-west-1' AS region,
               '{{"quantity": ' || (i % 100) || '}}' AS data,
               'usage/night-' || (i % {BATCHES}) || '.jsonl' AS file, i // {BATCHES} + 1 AS line
        FROM range({events}) AS r(i)
        """
    )
    con.execute(
        f"""
        CREATE TEMP TABLE _files AS
        SELECT b + 1 AS batch_id, 'usage/night-' || b || '.jsonl' AS file
        FROM range({BATCHES}) AS r(b)
        """
    )
    con.execute(f"INSERT INTO {registry.EVENTS_TABLE} SELECT * FROM _added")
    batches = [ledger.NewBatch(b + 1, f"night-{b}.jsonl", "0" * 64, None) for b in range(BATCHES)]
    started = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    ledger.append(con, "_added", "_files", batches, False, datetime(2026, 11, 20))
    con.execute("COMMIT")
    seconds = time.perf_counter() - started
    con.close()
    return seconds


def verify_seconds(path: Path) -> tuple[float, int]:
    from licensing_pipeline.governance import ledger_verify

    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    started = time.perf_counter()
    result = ledger_verify.verify(con)
    seconds = time.perf_counter() - started
    con.close()
    return seconds, result.events_checked


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{command[:3]} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started, done.stdout


def ingest_figures(workdir: Path, events: int, repeat: int) -> dict[str, object]:
    home = workdir / f"home-{events}"
    env, _ = demo_home(home, events)
    stage: dict[str, list[float]] = {"with": [], "without": []}
    runs: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(repeat):
        for kind, flag in (("without", "0"), ("with", "1")):
            out = workdir / f"stage-{kind}.duckdb"
            out.unlink(missing_ok=True)
            _, said = timed([sys.executable, "-c", STAGE, str(home / "data"), str(out), flag], env)
            stage[kind].append(round(float(said.split()[-2]), 2))
        for kind, script in (("without", WITHOUT_LEDGER), ("with", WITH_LEDGER)):
            seconds, _ = timed([sys.executable, "-c", script, AS_OF], env)
            runs[kind].append(round(seconds, 1))

    def extra(figures: dict[str, list[float]]) -> float:
        return round(100 * (min(figures["with"]) / min(figures["without"]) - 1), 1)

    return {
        "events": events,
        "event_stage_seconds": stage,
        "event_stage_extra_percent": extra(stage),
        "run_seconds": runs,
        "run_extra_percent": extra(runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--verify-events", type=int, default=10_000_000)
    parser.add_argument("--ingest-events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each kind; best counts")
    parser.add_argument("--workdir", type=Path, help="keep the generated data here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="licensing-bench-ledger-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        warehouse = workdir / "ledger-10m.duckdb"
        warehouse.unlink(missing_ok=True)
        append = synthetic_ledger(warehouse, args.verify_events)
        verify, checked = verify_seconds(warehouse)
        print(f"verify of {checked} events: {verify:.1f}s (append {append:.1f}s)", file=sys.stderr)
        result: dict[str, object] = {
            "verify_events": checked,
            "append_seconds": round(append, 1),
            "verify_seconds": round(verify, 1),
            "ingest": ingest_figures(workdir, args.ingest_events, args.repeat),
        }
    print(json.dumps(result, indent=2))
    save_results("benchmark_ledger", [result])
    return 0


if __name__ == "__main__":
    sys.exit(main())
