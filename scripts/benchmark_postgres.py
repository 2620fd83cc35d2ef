"""Benchmark the PostgreSQL profile: the bulk load of usage events, and a whole run.

For each size: generate a demo dataset, create a fresh database on the local server, then
(1) time the usage load as the `usage_events` asset does it on the postgres profile: parse,
validate and de-duplicate in DuckDB, then COPY into PostgreSQL (both parts timed), and
(2) time `licensing-pipeline run` end to end with LICENSING_PROFILE=postgres.
Writes bench-results/benchmark_postgres.json. Usage:
python scripts/benchmark_postgres.py [--sizes 1000000] [--server postgresql://postgres@127.0.0.1:5432/postgres]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from bench_results import save_results

from licensing_pipeline.contract.catalog import load_catalog
from licensing_pipeline.contract.usage import load_usage_events
from licensing_pipeline.warehouse.resources import Warehouse

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-20"
TENANTS = 50


def generate(events: int, data_dir: Path) -> None:
    cli = str(Path(sys.executable).parent / "licensing-pipeline")
    per_tenant = str(max(events // TENANTS, 1))
    demo = ["demo", "--tenants", str(TENANTS), "--events-per-tenant", per_tenant]
    subprocess.run(
        [cli, *demo, "--months", "6", "--as-of", AS_OF, "--out", str(data_dir)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def bulk_load(url: str, data_dir: Path) -> dict[str, float | int]:
    warehouse = Warehouse(url=url)
    catalog = load_catalog(data_dir / "catalog.yaml")
    started = time.perf_counter()
    with warehouse.staging() as staging:
        stats = load_usage_events(staging, data_dir / "usage", catalog)
        parsed = time.perf_counter()
        warehouse.publish(staging, ["usage_events", "quarantine_usage_events"])
    copied = time.perf_counter()
    with warehouse.connect() as con:
        row = con.execute("SELECT count(*) FROM main.usage_events").fetchone()
    assert row is not None and row[0] == stats.events_loaded
    return {
        "events_loaded": stats.events_loaded,
        "parse_seconds": round(parsed - started, 2),
        "copy_seconds": round(copied - parsed, 2),
        "load_seconds": round(copied - started, 2),
    }


def whole_run(url: str, home: Path, data_dir: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICENSING_")}
    env.pop("DAGSTER_HOME", None)
    env.update(
        LICENSING_HOME=str(home),
        LICENSING_DATA_DIR=str(data_dir),
        LICENSING_PROFILE="postgres",
        LICENSING_DATABASE_URL=url,
        # a fresh database holds no approved policy_version change (docs/governance.md)
        LICENSING_REQUIRE_APPROVED_POLICY="off",
        DO_NOT_TRACK="1",
    )
    cli = str(Path(sys.executable).parent / "licensing-pipeline")
    started = time.perf_counter()
    run = subprocess.run([cli, "run", "--as-of", AS_OF], env=env, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"the run failed:\n{run.stderr[-3000:]}")
    return round(time.perf_counter() - started, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument(
        "--server",
        default=os.environ.get(
            "LICENSING_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
        ),
        help="a database on the server to bench against; a fresh one is created beside it",
    )
    args = parser.parse_args()
    admin = sa.create_engine(args.server, isolation_level="AUTOCOMMIT")
    results = []
    with tempfile.TemporaryDirectory(prefix="licensing-bench-pg-") as tmp:
        for size in args.sizes:
            data_dir = Path(tmp) / f"data-{size}"
            generate(size, data_dir)
            name = f"licensing_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as con:
                con.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = sa.make_url(args.server).set(database=name).render_as_string(False)
            try:
                result: dict[str, object] = {"events": size, **bulk_load(url, data_dir)}
                result["run_seconds"] = whole_run(url, Path(tmp) / f"home-{size}", data_dir)
            finally:
                with admin.connect() as con:
                    con.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            results.append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
    save_results("benchmark_postgres", results)
    print("| events | DuckDB parse (s) | COPY into PostgreSQL (s) | bulk load (s) | run (s) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['events']:,} | {r['parse_seconds']} | {r['copy_seconds']} | "
            f"{r['load_seconds']} | {r['run_seconds']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
