"""Benchmark nights: the nightly cost with a long history, and a full refresh of it.

A small demo dataset gives the tenants, contracts and catalog; its usage is replaced by nights
of generated events (each night's file holds ``--events`` events of that day, copied from the
demo's events with new ids and times, so every event is valid for the catalog). Then:

1. history: ``--nights`` nights (default 30), each added to the folder and run as of its day;
2. the next night: one more file over that history (what a nightly run costs);
3. fresh: the same night's file alone, in a new home (what the night costs without history);
4. full refresh: ``run --full-refresh`` over all the nights' files.

Prints wall time, the usage step's stage times, the slowest steps and the peak RSS (the
largest process of the run: the CLI or the dbt it starts) of each, as a markdown table, and
writes bench-results/benchmark_nights.json. Usage:
python scripts/benchmark_nights.py [--nights 30] [--events 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

# scripts/ is on sys.path when this file runs as a script
from benchmark import ROOT, run_timings, usage_stage_seconds

AS_OF = date(2026, 11, 20)
TENANTS = 50
DEMO_EVENTS_PER_TENANT = 4000


def demo(home: Path) -> Path:
    """A small demo dataset; its usage files become the templates of the nights."""
    data = home / "data"
    subprocess.run(
        [
            _cli(),
            "demo",
            "--tenants",
            str(TENANTS),
            "--events-per-tenant",
            str(DEMO_EVENTS_PER_TENANT),
            "--months",
            "3",
            "--as-of",
            AS_OF.isoformat(),
            "--out",
            str(data),
        ],
        env=_env(home),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return data


def write_night(templates: Path, day: date, events: int, out: Path) -> Path:
    """``events`` events of ``day``: the demo's valid events, cycled, with new ids and times."""
    path = out / f"night-{day.isoformat()}.jsonl"
    if path.exists():
        return path
    con = duckdb.connect()
    try:
        con.execute(
            f"""
            CREATE TEMP TABLE t AS
            SELECT row_number() OVER () - 1 AS n, line
            FROM read_json('{templates}/**/*.jsonl*', format = 'newline_delimited',
                           records = false, ignore_errors = true) AS r(line)
            WHERE json_extract_string(line, '$.id') IS NOT NULL
              AND try_cast(json_extract_string(line, '$.time') AS TIMESTAMPTZ) IS NOT NULL
            """
        )
        count = con.execute("SELECT count(*) FROM t").fetchone()
        assert count and count[0], f"no template events under {templates}"
        con.execute(
            f"""
            COPY (
                SELECT json_merge_patch(t.line, json_object(
                    'id', 'n{day:%Y%m%d}-' || i,
                    'time', strftime(TIMESTAMP '{day.isoformat()}'
                                     + to_microseconds(i * 86400000000 // {events}),
                                     '%Y-%m-%dT%H:%M:%S.%fZ')
                )) AS line
                FROM range({events}) AS r(i)
                JOIN t ON t.n = i % {count[0]}
            ) TO '{path}' (FORMAT csv, HEADER false, QUOTE '', DELIMITER '\x01')
            """
        )
        return path
    finally:
        con.close()


def _cli() -> str:
    return str(Path(sys.executable).parent / "licensing-pipeline")


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LICENSING_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "LICENSING_DATA_DIR": str(home / "data"),
        "DO_NOT_TRACK": "1",
    }


def run(home: Path, day: date, *options: str) -> dict[str, object]:
    """One `licensing-pipeline run`: wall time, peak RSS, the usage stages, the slowest steps."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [_cli(), "run", "--as-of", day.isoformat(), *options],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        assert process.stderr is not None
        sys.exit(f"run as of {day} failed:\n{process.stderr.read().decode()[-3000:]}")
    run_id, _, steps = run_timings(home / "dagster")
    return {
        "as_of": day.isoformat(),
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "usage_stages": usage_stage_seconds(home / "dagster", run_id),
        "steps": {k: round(v, 1) for k, v in list(steps.items())[:5]},
    }


def scenario(workdir: Path, nights: int, events: int) -> dict[str, object]:
    base = workdir / "history"
    data = demo(base)
    templates = workdir / "templates"
    if templates.exists():  # a --workdir of an earlier run: its nights are reused
        shutil.rmtree(data / "usage")
    else:
        shutil.move(str(data / "usage"), str(templates))
    (data / "usage").mkdir()
    days = [AS_OF - timedelta(days=nights - n) for n in range(nights + 1)]
    files = workdir / f"nights-{events}"
    files.mkdir(exist_ok=True)
    started = time.perf_counter()
    night_files = [write_night(templates, day, events, files) for day in days]
    generate = round(time.perf_counter() - started, 1)
    history = []
    for day, path in zip(days[:-1], night_files[:-1], strict=True):
        shutil.copy2(path, data / "usage" / path.name)
        history.append(run(base, day))
        print(json.dumps({"night": history[-1]}), file=sys.stderr, flush=True)
    shutil.copy2(night_files[-1], data / "usage" / night_files[-1].name)
    next_night = run(base, days[-1])
    print(json.dumps({"next_night": next_night}), file=sys.stderr, flush=True)

    fresh_home = workdir / "fresh"
    shutil.copytree(data, fresh_home / "data", ignore=shutil.ignore_patterns("usage"))
    (fresh_home / "data" / "usage").mkdir()
    shutil.copy2(night_files[-1], fresh_home / "data" / "usage" / night_files[-1].name)
    fresh = run(fresh_home, days[-1])
    print(json.dumps({"fresh": fresh}), file=sys.stderr, flush=True)

    full_refresh = run(base, days[-1], "--full-refresh")
    print(json.dumps({"full_refresh": full_refresh}), file=sys.stderr, flush=True)
    return {
        "nights": nights,
        "events_per_night": events,
        "generate_seconds": generate,
        "history": history,
        "next_night": next_night,
        "fresh": fresh,
        "full_refresh": full_refresh,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nights", type=int, default=30, help="nights of history")
    parser.add_argument("--events", type=int, default=1_000_000, help="events per night")
    parser.add_argument(
        "--workdir", type=Path, help="keep the generated data here (reused by the next run)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="licensing-nights-") as tmp:
        result = scenario(args.workdir or Path(tmp), args.nights, args.events)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "benchmark_nights.json").write_text(
        json.dumps({"date": date.today().isoformat(), "cores": os.cpu_count(), **result}, indent=2)
    )
    history = result["history"]
    assert isinstance(history, list)
    print(
        f"History: {len(history)} nights of {args.events:,} events; per night (s): "
        + ", ".join(str(n["seconds"]) for n in history)
    )
    print()
    print(
        "| run | events read | wall (s) | usage stages (s) | slowest steps (s) | peak RSS (MiB) |"
    )
    print("|---|---|---|---|---|---|")
    total = (args.nights + 1) * args.events
    for label, read, key in (
        (
            f"the next night, over {args.nights * args.events:,} of history",
            args.events,
            "next_night",
        ),
        ("the same night alone, fresh home", args.events, "fresh"),
        (f"full refresh of {total:,}", total, "full_refresh"),
    ):
        r = result[key]
        assert isinstance(r, dict)
        stages = ", ".join(f"{k} {v}" for k, v in r["usage_stages"].items())
        steps = ", ".join(f"{k} {v}" for k, v in r["steps"].items())
        print(f"| {label} | {read:,} | {r['seconds']} | {stages} | {steps} | {r['peak_rss_mib']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
