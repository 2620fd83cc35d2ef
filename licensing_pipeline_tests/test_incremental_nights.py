"""Nights ingested one by one find exactly what full runs over the same files find.

A demo dataset's usage is cut into three nights: everything before the first night in one
file, then a file per night holding that day's events; the second night also brings late
events of the first night's day, the third a late event of the history and a re-delivered
event of the second night. Each night the folder gains its file and the CLI runs as of that
day, once incrementally (one warehouse that keeps its registry and models) and once with
``--full-refresh`` (every file read, every model rebuilt: what every run did before the
registry). After each night both hold the same findings: ids, status, observed, allowed, and
the night each was first detected; the last night also equals one full run over all the
nights' files in a fresh home (first detection aside: that run has no earlier nights).

Three nights, not more: each night is two whole runs per backend. The cases a longer
sequence would add (a month boundary, a changed file, the as-of day moved back, more nights
of late events) are carried at model level by ``warehouse/test_incremental_models.py``,
on both warehouses, at a fraction of the cost.
"""

import gzip
import json
import shutil
from contextlib import AbstractContextManager, nullcontext
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

LAST = date(2026, 11, 20)
NIGHTS = [LAST - timedelta(days=2 - n) for n in range(3)]
COMPARED = ["status", "observed", "allowed"]
pytestmark = pytest.mark.e2e


def _day(line: str) -> date | None:
    try:
        return date.fromisoformat(str(json.loads(line)["time"])[:10])
    except (ValueError, KeyError, TypeError):
        return None  # a seeded bad line: it goes with the history


def cut_into_nights(demo: Path, out: Path) -> dict[date, list[Path]]:
    """The demo's exports without usage in ``out``; each night's usage files, to add in turn."""
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
    # late events: two of the first night's arrive with the second, and one of the history
    # with the third, which also re-delivers an event of the second
    late, nights[NIGHTS[0]] = nights[NIGHTS[0]][:2], nights[NIGHTS[0]][2:]
    nights[NIGHTS[1]] += late
    nights[NIGHTS[2]].append(history.pop())
    nights[NIGHTS[2]].append(nights[NIGHTS[1]][0])
    files: dict[date, list[Path]] = {}
    first = staged / "history.jsonl.gz"
    with gzip.open(first, "wt", encoding="utf-8") as handle:
        handle.writelines(history)
    files[NIGHTS[0]] = [first, *parquet]
    for day, lines in nights.items():
        path = staged / f"night-{day.isoformat()}.jsonl"
        path.write_text("".join(lines), encoding="utf-8")
        files.setdefault(day, []).append(path)
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


@pytest.mark.parametrize("backend", ["embedded", "postgres"])
def test_nights_one_by_one_equal_full_runs(demo: Path, tmp_path: Path, backend: str) -> None:
    with database(backend) as url, database(backend) as reference_url:
        data_dir = tmp_path / "data"
        nights = cut_into_nights(demo, data_dir)
        incremental, full = tmp_path / "incremental", tmp_path / "full"
        started: dict[str, list[pd.Timestamp]] = {"incremental": [], "full": []}
        for day in NIGHTS:
            for path in nights[day]:
                shutil.copy2(path, data_dir / "usage" / path.name)
            started["incremental"].append(_now())
            a = run(incremental, data_dir, url, day)
            started["full"].append(_now())
            b = run(full, data_dir, reference_url, day, "--full-refresh")
            pd.testing.assert_frame_equal(
                night_of(a, started["incremental"]),
                night_of(b, started["full"]),
                obj=f"findings of the night of {day}",
            )
        with backend_environment(backend_variables(incremental, data_dir, url)):
            registry = warehouse_for(load_settings()).read_frame("usage_files")
        assert len(registry) == len(list((data_dir / "usage").iterdir()))  # each read once

        with database(backend) as once_url:
            once = run(tmp_path / "once", data_dir, once_url, LAST)
        assert len(a), "the demo's nights give no findings: nothing was compared"
        live = a[a["status"] != "resolved"]  # resolved: seen on an earlier night only
        pd.testing.assert_frame_equal(
            live.set_index("finding_id").sort_index()[COMPARED],
            once.set_index("finding_id").sort_index()[COMPARED],
        )


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")


def database(backend: str) -> AbstractContextManager[str | None]:
    return fresh_database() if backend == "postgres" else nullcontext()
