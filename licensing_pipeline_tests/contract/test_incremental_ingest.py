"""Incremental usage ingest: the registry reads only new and changed files, on both warehouses.

Each case of a re-delivered file has its stated outcome here; the data contract's reading of
them is in the README.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from licensing_pipeline.contract import usage_registry as registry
from licensing_pipeline.contract.catalog import Catalog, Metric
from licensing_pipeline.contract.usage import UsageLoadStats, load_usage_events
from licensing_pipeline.quality.batches import _changed_files, _profile
from licensing_pipeline.warehouse.resources import Warehouse
from licensing_pipeline_tests.contract.test_usage import CATALOG, event, write_lines

REPO = Path(__file__).resolve().parents[2]


def ingest(
    warehouse: Warehouse, usage_dir: Path, catalog: Catalog = CATALOG, full_refresh: bool = False
) -> UsageLoadStats:
    with warehouse.staging() as con, warehouse.ingest_target(con) as target:
        return load_usage_events(con, usage_dir, catalog, target=target, full_refresh=full_refresh)


def held(warehouse: Warehouse) -> list[tuple[str, str, int]]:
    """(id, file name, line) of every event held."""
    frame = warehouse.read_frame("SELECT id, file, line FROM main.usage_events ORDER BY id")
    return [(r.id, Path(r.file).name, int(r.line)) for r in frame.itertuples()]


def quarantined(warehouse: Warehouse) -> list[tuple[str, int]]:
    frame = warehouse.read_frame(
        "SELECT file, line FROM main.quarantine_usage_events ORDER BY file, line"
    )
    return [(Path(r.file).name, int(r.line)) for r in frame.itertuples()]


def batches(warehouse: Warehouse) -> pd.DataFrame:
    return warehouse.read_frame(f"SELECT * FROM {registry.REGISTRY_TABLE} ORDER BY batch_id")


def night(usage: Path, name: str, ids: list[str], day: str = "2026-10-03") -> Path:
    return write_lines(usage / name, [event(i, f"{day}T10:00:00Z") for i in ids])


def test_a_second_run_reads_nothing_and_a_new_night_only_its_file(
    any_warehouse: Warehouse, tmp_path: Path
) -> None:
    usage = tmp_path / "usage"
    night(usage, "2026-10-03.jsonl", ["a1", "a2"])
    first = ingest(any_warehouse, usage)
    assert (first.files, first.events_loaded, first.events_held) == (1, 2, 2)

    again = ingest(any_warehouse, usage)
    assert (again.files, again.files_unchanged, again.events_loaded, again.lines_read) == (
        0,
        1,
        0,
        0,
    )
    assert again.events_held == 2 and not again.full_refresh

    # the next night re-delivers a2: still a duplicate, the first delivery stays
    night(usage, "2026-10-04.jsonl", ["a2", "b1"], day="2026-10-04")
    second = ingest(any_warehouse, usage)
    assert (second.files, second.files_unchanged) == (1, 1)
    assert (second.events_loaded, second.duplicates_dropped) == (1, 1)
    assert held(any_warehouse) == [
        ("a1", "2026-10-03.jsonl", 1),
        ("a2", "2026-10-03.jsonl", 2),
        ("b1", "2026-10-04.jsonl", 2),
    ]
    registered = batches(any_warehouse)
    assert registered["batch_id"].tolist() == [1, 2]
    assert registered["events_loaded"].tolist() == [2, 1]
    assert registered["duplicates_dropped"].tolist() == [0, 1]
    assert registered["content_sha256"].str.len().tolist() == [64, 64]
    days = any_warehouse.read_frame(
        f"SELECT batch_id, usage_date, events FROM {registry.BATCH_DAYS_TABLE} ORDER BY batch_id"
    )
    assert days["events"].tolist() == [2, 1]
    assert days["usage_date"].astype(str).str[:10].tolist() == ["2026-10-03", "2026-10-04"]


def test_a_changed_file_replaces_its_rows_as_a_unit(
    any_warehouse: Warehouse, tmp_path: Path
) -> None:
    usage = tmp_path / "usage"
    path = write_lines(usage / "a.jsonl", [event("e1"), "bad", event("e2")])
    night(usage, "b.jsonl", ["b1"])
    ingest(any_warehouse, usage)
    write_lines(path, [event("e3"), event("e2")])
    os.utime(path, ns=(1, 10**18))  # the time changes with the content
    stats = ingest(any_warehouse, usage)
    assert stats.files_changed == (str(path),) and stats.files == 1
    assert held(any_warehouse) == [("b1", "b.jsonl", 1), ("e2", "a.jsonl", 2), ("e3", "a.jsonl", 1)]
    assert quarantined(any_warehouse) == []
    registered = batches(any_warehouse)
    assert registered["replaced_by"].tolist()[0] == 3  # a.jsonl's first batch
    assert registered["events_loaded"].tolist() == [2, 1, 2]


def test_a_file_touched_without_a_change_is_not_read(
    any_warehouse: Warehouse, tmp_path: Path
) -> None:
    usage = tmp_path / "usage"
    path = night(usage, "a.jsonl", ["a1"])
    ingest(any_warehouse, usage)
    os.utime(path, ns=(1, 10**18))
    stats = ingest(any_warehouse, usage)
    assert (stats.files, stats.files_changed, stats.events_held) == (0, (), 1)
    assert ingest(any_warehouse, usage).files_unchanged == 1  # the new time was registered


def test_a_truncated_file_delivered_again_whole_replaces_the_cut_one(
    any_warehouse: Warehouse, tmp_path: Path
) -> None:
    """Outcome: the cut line is quarantined the first night; the whole file replaces the cut
    one's rows and quarantine the next night."""
    usage = tmp_path / "usage"
    whole = "\n".join(event(i) for i in ("e1", "e2", "e3")) + "\n"
    path = usage / "a.jsonl"
    usage.mkdir()
    path.write_text(whole[: whole.index("e3") + 5])
    first = ingest(any_warehouse, usage)
    assert (first.events_loaded, first.quarantined) == (2, 1)
    path.write_text(whole)
    stats = ingest(any_warehouse, usage)
    assert stats.files_changed == (str(path),)
    assert [e[0] for e in held(any_warehouse)] == ["e1", "e2", "e3"]
    assert quarantined(any_warehouse) == []


def test_another_data_folder_is_read_whole(any_warehouse: Warehouse, tmp_path: Path) -> None:
    """Outcome: the registry belongs to one usage folder; a run on another (`run --data-dir`,
    another dataset) reads it as --full-refresh does, so the first folder's files are not kept
    as "no longer delivered" and its events do not mix with the second's."""
    usage = tmp_path / "one" / "usage"
    night(usage, "a.jsonl", ["a1"])
    night(usage, "only-here.jsonl", ["x1"])
    ingest(any_warehouse, usage)
    other = tmp_path / "two" / "usage"
    shutil.copytree(usage, other)  # the same a.jsonl, time and all
    (other / "only-here.jsonl").unlink()
    night(other, "b.jsonl", ["b1"])
    stats = ingest(any_warehouse, other)
    assert stats.full_refresh and "another usage folder" in str(stats.refresh_reason)
    assert (stats.files, stats.files_missing) == (2, ())
    frame = any_warehouse.read_frame("SELECT id, file FROM main.usage_events ORDER BY id")
    assert frame.values.tolist() == [["a1", str(other / "a.jsonl")], ["b1", str(other / "b.jsonl")]]
    assert sorted(batches(any_warehouse)["delivery"]) == ["a.jsonl", "b.jsonl"]
    again = ingest(any_warehouse, other)  # and from then on, that folder's registry
    assert (again.files, again.files_unchanged, again.full_refresh) == (0, 2, False)


def test_a_renamed_file_keeps_its_rows_under_the_new_name(
    any_warehouse: Warehouse, tmp_path: Path
) -> None:
    """Outcome: recognised by its content hash, not read again; its rows and batch take the
    new name."""
    usage = tmp_path / "usage"
    path = write_lines(usage / "a.jsonl", [event("e1"), "bad"])
    ingest(any_warehouse, usage)
    path.rename(usage / "z.jsonl")
    stats = ingest(any_warehouse, usage)
    assert (stats.files, stats.files_missing) == (0, ())
    assert stats.files_renamed == ((str(path), str(usage / "z.jsonl")),)
    assert held(any_warehouse) == [("e1", "z.jsonl", 1)]
    assert quarantined(any_warehouse) == [("z.jsonl", 2)]
    assert batches(any_warehouse)["file"].tolist() == [str(usage / "z.jsonl")]


def test_the_same_content_under_two_names_is_one_set_of_events(
    any_warehouse: Warehouse, tmp_path: Path
) -> None:
    """Outcome: the copy is read; its events are duplicates (none added) and its bad lines are
    quarantined under its own name, as a full load of both files gives."""
    usage = tmp_path / "usage"
    write_lines(usage / "a.jsonl", [event("e1"), "bad"])
    ingest(any_warehouse, usage)
    write_lines(usage / "copy.jsonl", [event("e1"), "bad"])
    stats = ingest(any_warehouse, usage)
    assert (stats.files, stats.events_loaded, stats.duplicates_dropped) == (1, 0, 1)
    assert held(any_warehouse) == [("e1", "a.jsonl", 1)]
    assert quarantined(any_warehouse) == [("a.jsonl", 2), ("copy.jsonl", 2)]


def test_jsonl_replaced_by_the_same_events_gzipped(
    any_warehouse: Warehouse, tmp_path: Path
) -> None:
    """Outcome: the .gz is a new file whose events are all duplicates; the .jsonl is reported
    missing and its rows are kept (until --full-refresh, which takes them from the .gz)."""
    usage = tmp_path / "usage"
    plain = write_lines(usage / "a.jsonl", [event("e1"), event("e2")])
    ingest(any_warehouse, usage)
    plain.unlink()
    write_lines(usage / "a.jsonl.gz", [event("e1"), event("e2")])
    stats = ingest(any_warehouse, usage)
    assert (stats.files, stats.events_loaded, stats.duplicates_dropped) == (1, 0, 2)
    assert stats.files_missing == (str(plain),)
    assert held(any_warehouse) == [("e1", "a.jsonl", 1), ("e2", "a.jsonl", 2)]

    refreshed = ingest(any_warehouse, usage, full_refresh=True)
    assert refreshed.full_refresh and refreshed.files_missing == ()
    assert held(any_warehouse) == [("e1", "a.jsonl.gz", 1), ("e2", "a.jsonl.gz", 2)]
    with gzip.open(usage / "a.jsonl.gz", "rt") as handle:
        assert len(handle.readlines()) == 2


def test_a_change_of_the_checks_reads_every_file_again(
    any_warehouse: Warehouse, tmp_path: Path
) -> None:
    usage = tmp_path / "usage"
    write_lines(usage / "a.jsonl", [event("e1", type="storage.reported", gb=2)])
    ingest(any_warehouse, usage)
    terabytes = Metric("storage_tb", "storage.reported", "MAX", "tb")
    metered = dataclasses.replace(CATALOG, metrics={**CATALOG.metrics, "storage_tb": terabytes})
    stats = ingest(any_warehouse, usage, metered)
    assert stats.full_refresh and stats.files == 1
    assert (stats.events_loaded, stats.quarantined) == (0, 1)  # data.tb is missing now


KILLED = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from licensing_pipeline.contract import usage_registry as registry
    from licensing_pipeline.warehouse.resources import Warehouse
    from licensing_pipeline_tests.contract.test_incremental_ingest import ingest

    step = getattr(registry, sys.argv[1])

    def killed(*args, **kwargs):
        if sys.argv[2] == "after":
            step(*args, **kwargs)
        os._exit(9)

    setattr(registry, sys.argv[1], killed)
    ingest(Warehouse(path=sys.argv[3], url=sys.argv[4]), Path(sys.argv[5]))
    """
)


@pytest.mark.parametrize(
    ("step", "when"),
    [
        ("store_rows", "before"),  # the registry is written, the rows are not
        ("finish_batches", "before"),  # the rows are written, the registry is not finished
    ],
)
def test_a_run_killed_mid_batch_leaves_no_half_batch(
    any_warehouse: Warehouse, tmp_path: Path, step: str, when: str
) -> None:
    usage = tmp_path / "usage"
    night(usage, "2026-10-03.jsonl", ["a1", "a2"])
    ingest(any_warehouse, usage)
    night(usage, "2026-10-04.jsonl", ["b1", "a1"], day="2026-10-04")
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED,
            step,
            when,
            any_warehouse.path,
            any_warehouse.url,
            str(usage),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == 9, killed.stderr
    assert [e[0] for e in held(any_warehouse)] == ["a1", "a2"]
    assert batches(any_warehouse)["batch_id"].tolist() == [1]

    stats = ingest(any_warehouse, usage)
    assert (stats.files, stats.events_loaded, stats.duplicates_dropped) == (1, 1, 1)
    assert [e[0] for e in held(any_warehouse)] == ["a1", "a2", "b1"]
    assert batches(any_warehouse)["batch_id"].tolist() == [1, 2]


def test_a_changed_file_is_a_data_quality_warning_of_the_night_that_finds_it(
    any_warehouse: Warehouse, tmp_path: Path
) -> None:
    usage = tmp_path / "usage"
    path = night(usage, "a.jsonl", ["a1"])
    night(usage, "b.jsonl", ["b1"])
    ingest(any_warehouse, usage)

    def changed() -> list[str]:
        with any_warehouse.connect() as con:
            frame = _changed_files(con, registry.REGISTRY_TABLE).frame
        return [Path(f).name for f in frame["changed_file"]]

    assert changed() == []
    night(usage, "a.jsonl", ["a1", "a2"])
    os.utime(path, ns=(1, 10**18))
    ingest(any_warehouse, usage)
    assert changed() == ["a.jsonl"]
    night(usage, "c.jsonl", ["c1"])
    ingest(any_warehouse, usage)
    assert changed() == []  # warned once, by the night that found it


def test_the_key_check_probes_the_latest_events_against_the_whole_history(
    any_warehouse: Warehouse, tmp_path: Path
) -> None:
    """usage_events_schema's distinct keys: a repeated (source, id) involving an event of the
    latest ingest is counted, whichever night held the other copy; one between two older
    events was counted the night it came. Without a registry every key is checked."""
    usage = tmp_path / "usage"
    night(usage, "1.jsonl", ["a1", "a2"])
    ingest(any_warehouse, usage)
    latest = night(usage, "2.jsonl", ["b1"], day="2026-10-04")
    ingest(any_warehouse, usage)

    def repeat(id: str, file: str) -> None:
        with any_warehouse.connect() as con:
            con.execute(
                "INSERT INTO main.usage_events SELECT source, id, type, tenant_id, time, user_id,"
                " feature, region, data, ?, line + 100 FROM main.usage_events WHERE id = ?",
                [file, id],
            )
            if hasattr(con, "commit"):
                con.commit()

    def distinct_keys(registry_table: str = registry.REGISTRY_TABLE) -> tuple[int, int]:
        with any_warehouse.connect() as con:
            facts = _profile(
                con, registry.EVENTS_TABLE, registry.QUARANTINE_TABLE, registry_table
            ).facts
        return facts["events"], facts["distinct_keys"]

    assert distinct_keys() == (3, 3)
    repeat("a1", str(usage / "1.jsonl"))  # between two events of the first night
    assert distinct_keys() == (4, 4)
    assert distinct_keys("main.no_registry") == (4, 3)
    repeat("a2", str(latest))  # an old event again in the latest night's file
    assert distinct_keys() == (5, 4)
