"""Seven nights ingested one by one find exactly what full runs over the same files find.

A demo dataset's usage is cut into seven nights across a month boundary (28 October to
3 November): everything before the first night in one file, then a file per night holding that
day's events. Telemetry arrives as it does in practice: two events of the first night come
with the second, an event of the history with the fifth, the seventh re-delivers an event of
the sixth, and on the fourth night the third night's file is delivered again with one more
event (a changed file: replaced as a unit, with a data-quality warning). Each night the folder
gains its files and the CLI runs as of that day three times: incrementally on DuckDB and on
PostgreSQL (each a warehouse that keeps its registry and models), and with ``--full-refresh``
on DuckDB (every file read, every model rebuilt: what every run did before the registry). After
each night all three hold the same findings: ids, status, observed, allowed, and the night each
was first detected. The last night also equals one full run over all the nights' files in a
fresh home (first detection aside: that run has no earlier nights).

The reference series runs on DuckDB only: that both warehouses give the same findings from
the same files is the end-to-end test's (``test_end_to_end.py``), so PostgreSQL's incremental
series is held to DuckDB's full one. The cases a run-level test would make slow (the as-of
day moved back, many more nights of late events) are at model level in
``warehouse/test_incremental_models.py``, on both warehouses.
"""

import gzip
import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from licensing_pipeline import cli
from licensing_pipeline.contract.usage import usage_files
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.settings import load_settings
from licensing_pipeline.warehouse.resources import warehouse_for
from licensing_pipeline_tests.backends import backend_environment, backend_variables
from licensing_pipeline_tests.postgres import fresh_database

LAST = date(2026, 11, 3)
NIGHTS = [LAST - timedelta(days=6 - n) for n in range(7)]
CHANGED = NIGHTS[2]  # its file is delivered again, one event longer, on the fourth night
COMPARED = ["status", "observed", "allowed"]
pytestmark = pytest.mark.e2e


def _day(line: str) -> date | None:
    try:
        return date.fromisoformat(str(json.loads(line)["time"])[:10])
    except (ValueError, KeyError, TypeError):
        return None  # a seeded bad line: it goes with the history


def cut_into_nights(demo: Path, out: Path) -> dict[date, list[tuple[Path, str]]]:
    """The demo's exports without usage in ``out``; each night's usage files (staged path,
    name in usage/), to add in turn."""
    shutil.copytree(demo, out, ignore=shutil.ignore_patterns("usage"))
    (out / "usage").mkdir()
    staged = out.parent / f"{out.name}-nights"
    staged.mkdir()
    history: list[str] = []
    nights: dict[date, list[str]] = {day: [] for day in NIGHTS}
    parquet: list[Path] = []
    for path in usage_files(demo / "usage"):
        if path.name.endswith(".parquet"):
            parquet.append(path)
            continue
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                day = _day(line)
                nights.get(day, history).append(line)
    assert all(len(nights[day]) > 3 for day in NIGHTS), "a night without events"
    late, nights[NIGHTS[0]] = nights[NIGHTS[0]][:2], nights[NIGHTS[0]][2:]
    nights[NIGHTS[1]] += late
    nights[NIGHTS[4]].append(history.pop())
    nights[NIGHTS[6]].append(nights[NIGHTS[5]][0])
    held_back = nights[CHANGED].pop()
    files: dict[date, list[tuple[Path, str]]] = {day: [] for day in NIGHTS}
    first = staged / "history.jsonl.gz"
    with gzip.open(first, "wt", encoding="utf-8") as handle:
        handle.writelines(history)
    files[NIGHTS[0]] = [(first, first.name), *((p, p.name) for p in parquet)]
    for day, lines in nights.items():
        path = staged / f"night-{day.isoformat()}.jsonl"
        path.write_text("".join(lines), encoding="utf-8")
        files[day].append((path, path.name))
    again = staged / f"night-{CHANGED.isoformat()}-again.jsonl"
    again.write_text("".join([*nights[CHANGED], held_back]), encoding="utf-8")
    files[NIGHTS[3]].append((again, f"night-{CHANGED.isoformat()}.jsonl"))
    assert all(pq.read_metadata(p).num_rows for p in parquet)
    return files


def run(home: Path, data_dir: Path, url: str | None, day: date, *options: str) -> pd.DataFrame:
    with backend_environment(backend_variables(home, data_dir, url)):
        assert cli.main(["run", "--as-of", day.isoformat(), *options]) == 0
        return LicensingRepository(database_url=load_settings().database_url).load_findings()


def night_of(findings: pd.DataFrame, started: list[pd.Timestamp]) -> pd.DataFrame:
    """The findings by id, with the night each was first detected instead of the wall time."""
    frame = findings.set_index("finding_id").sort_index()
    frame["first_night"] = [
        sum(1 for s in started if s <= t) for t in pd.to_datetime(frame["first_detected_at"])
    ]
    return frame[[*COMPARED, "first_night"]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "data"
    args = ["demo", "--tenants", "22", "--months", "3", "--as-of", LAST.isoformat()]
    assert cli.main([*args, "--out", str(folder)]) == 0
    return folder


SERIES = {  # name: (backend, options)
    "incremental, DuckDB": ("embedded", ()),
    "incremental, PostgreSQL": ("postgres", ()),
    "full refresh, DuckDB": ("embedded", ("--full-refresh",)),
}


def test_seven_nights_one_by_one_equal_full_runs(demo: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    nights = cut_into_nights(demo, data_dir)
    with fresh_database() as postgres_url:
        urls = {"embedded": None, "postgres": postgres_url}
        started: dict[str, list[pd.Timestamp]] = {name: [] for name in SERIES}
        homes = {name: tmp_path / f"home-{n}" for n, name in enumerate(SERIES)}
        for day in NIGHTS:
            for path, name in nights[day]:
                shutil.copyfile(path, data_dir / "usage" / name)  # a new modification time
            found, last = {}, {}
            for name, (backend, options) in SERIES.items():
                started[name].append(_now())
                last[name] = run(homes[name], data_dir, urls[backend], day, *options)
                found[name] = night_of(last[name], started[name])
            reference = found.pop("full refresh, DuckDB")
            for name, frame in found.items():
                pd.testing.assert_frame_equal(frame, reference, obj=f"{name}, night of {day}")
        for name, (backend, options) in SERIES.items():
            if options:
                continue
            variables = backend_variables(homes[name], data_dir, urls[backend])
            with backend_environment(variables):
                registry = warehouse_for(load_settings()).read_frame("usage_files")
            # each delivery read once, the changed one twice (its first batch replaced)
            assert len(registry) == len(list((data_dir / "usage").iterdir())) + 1, name
            assert registry["replaced_by"].notna().sum() == 1, name
    assert len(reference), "the demo's nights give no findings: nothing was compared"
    assert reference["first_night"].nunique() > 1, "every finding came on one night"
    once = run(tmp_path / "once", data_dir, None, LAST)
    incremental = last["incremental, DuckDB"]
    live = incremental[
        incremental["status"] != "resolved"
    ]  # resolved: seen on an earlier night only
    pd.testing.assert_frame_equal(
        live.set_index("finding_id").sort_index()[COMPARED],
        once.set_index("finding_id").sort_index()[COMPARED],
    )


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")
