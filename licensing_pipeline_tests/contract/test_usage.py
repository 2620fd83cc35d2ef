"""Usage telemetry loading in DuckDB: parsing, UTC times, quarantine, de-duplication."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from licensing_pipeline.contract import usage
from licensing_pipeline.contract.catalog import Catalog, Metric, Package
from licensing_pipeline.contract.errors import MissingInputError
from licensing_pipeline.contract.schemas import QUARANTINED_RECORDS, USAGE_EVENTS_SQL
from licensing_pipeline.contract.usage import UsageLoadStats, load_usage_events

CATALOG = Catalog(
    version="test",
    regions={"eu-west-1": "EU", "us-east-1": "US"},
    features=("sso", "reports_export"),
    metrics={
        "api_calls": Metric("api_calls", "api.request", "COUNT"),
        "seats": Metric("seats", "auth.login", "UNIQUE_COUNT", "user_id"),
        "storage_gb": Metric("storage_gb", "storage.reported", "MAX", "gb"),
    },
    plans={"starter": Package("starter", ("sso",), {"api_calls": 1000.0})},
    addons={},
)


def event(
    id: str, time: str = "2026-10-03T14:12:09+02:00", type: str = "api.request", **data: Any
) -> str:
    body = {"user_id": "u-1", "feature": "sso", "region": "eu-west-1", **data}
    return json.dumps(
        {
            "specversion": "1.0",
            "id": id,
            "source": "api-gateway",
            "type": type,
            "subject": "t-1",
            "time": time,
            "data": body,
        }
    )


def write_lines(path: Path, lines: list[str], *, final_newline: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + ("\n" if final_newline else "")
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


def events(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute("SELECT * FROM main.usage_events ORDER BY file, line").df()


def quarantine(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[str | None, str]]:
    rows = con.execute(
        "SELECT line, field, reason FROM main.quarantine_usage_events ORDER BY line"
    ).fetchall()
    return {int(line): (field, reason) for line, field, reason in rows}


def test_offsets_become_utc_across_a_month_boundary(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    write_lines(
        tmp_path / "a.jsonl",
        [
            event("e1", "2026-11-01T01:30:00+02:00"),  # still October in UTC
            event("e2", "2026-10-31T21:15:00-05:00"),  # already November in UTC
            event("e3", "2026-10-31T23:59:59.250Z"),
            event("e4", "2026-10-31t23:00:00z"),  # RFC 3339 allows lower case
        ],
    )
    stats = load_usage_events(con, tmp_path, CATALOG)
    frame = events(con)
    assert frame["time"].tolist() == [
        pd.Timestamp("2026-10-31 23:30:00"),
        pd.Timestamp("2026-11-01 02:15:00"),
        pd.Timestamp("2026-10-31 23:59:59.250"),
        pd.Timestamp("2026-10-31 23:00:00"),
    ]
    assert stats.events_loaded == 4 and stats.quarantined == 0
    assert (stats.first_event_time, stats.last_event_time) == (
        "2026-10-31T23:00:00Z",
        "2026-11-01T02:15:00Z",
    )


def test_columns_are_flattened_and_data_kept(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    path = write_lines(tmp_path / "a.jsonl", [event("e1", user_id="u-9", extra=1)])
    load_usage_events(con, tmp_path, CATALOG)
    described = con.execute("DESCRIBE main.usage_events").fetchall()
    types = {name: sql_type for name, sql_type, *_ in described}
    assert types == USAGE_EVENTS_SQL
    row = events(con).iloc[0]
    assert (row["source"], row["id"], row["type"], row["tenant_id"]) == (
        "api-gateway",
        "e1",
        "api.request",
        "t-1",
    )
    assert (row["user_id"], row["feature"], row["region"]) == ("u-9", "sso", "eu-west-1")
    assert json.loads(row["data"])["extra"] == 1
    assert (row["file"], row["line"]) == (str(path), 1)


def test_bad_lines_are_quarantined_and_good_lines_kept(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    no_id = json.loads(event("x"))
    del no_id["id"]
    no_subject = {**json.loads(event("e6")), "subject": ""}
    no_type = json.loads(event("e7"))
    del no_type["type"]
    no_time = json.loads(event("e8"))
    del no_time["time"]
    path = write_lines(
        tmp_path / "a.jsonl",
        [
            event("e1"),  # 1 good
            "this is not json",  # 2
            "",  # 3 blank: skipped, not bad
            "[1, 2, 3]",  # 4
            json.dumps(no_id),  # 5
            json.dumps(no_subject),  # 6
            json.dumps(no_type),  # 7
            json.dumps(no_time),  # 8
            event("e9", "2026-10-03T14:12:09"),  # 9 no offset
            event("e10", "2026-02-30T10:00:00Z"),  # 10 no such day
            event("e11", "yesterday"),  # 11
            event("e12", type="storage.reported", gb=-3),  # 12 negative
            event("e13", type="storage.reported", gb="lots"),  # 13 not a number
            event("e14", type="storage.reported"),  # 14 value missing
            event("e15", type="storage.reported", gb=12.5),  # 15 good
            event("e16", type="api.request", gb=-3),  # 16 good: gb is not api_calls' value
            event("e17", type="auth.login", user_id=None),  # 17 good: UNIQUE_COUNT is lenient
            "   \t  ",  # 18 blank
            '{"id": "e19", "source": "api-gateway", "type": "api.req',  # 19 truncated last line
        ],
        final_newline=False,
    )
    stats = load_usage_events(con, tmp_path, CATALOG)

    assert events(con)["id"].tolist() == ["e1", "e15", "e16", "e17"]
    bad = quarantine(con)
    assert {line: field for line, (field, _) in bad.items()} == {
        2: None,
        4: None,
        5: "id",
        6: "subject",
        7: "type",
        8: "time",
        9: "time",
        10: "time",
        11: "time",
        12: "data.gb",
        13: "data.gb",
        14: "data.gb",
        19: None,
    }
    assert bad[2][1] == bad[19][1] == "not valid JSON"
    assert bad[4][1] == "not a JSON object"
    assert bad[5][1] == "missing required attribute 'id'"
    assert "offset" in bad[9][1] and "offset" in bad[11][1]
    assert bad[10][1] == "time is not a valid date-time"
    assert bad[12][1] == "data.gb is negative (metric storage_gb)"
    assert bad[13][1] == "data.gb is not a number (metric storage_gb)"
    assert bad[14][1] == "missing data.gb, needed by metric storage_gb"
    q = con.execute("SELECT * FROM main.quarantine_usage_events").df()
    assert list(q.columns) == list(QUARANTINED_RECORDS)
    assert set(q["source"]) == {"usage_events"} and set(q["file"]) == {str(path)}
    assert q.loc[q["line"] == 2, "raw"].item() == "this is not json"
    assert stats == UsageLoadStats(
        files=1,
        jsonl_files=1,
        parquet_files=0,
        lines_read=17,
        blank_lines=2,
        events_loaded=4,
        duplicates_dropped=0,
        quarantined=13,
        first_event_time=stats.first_event_time,
        last_event_time=stats.last_event_time,
    )


def test_unknown_tenants_are_kept(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    """Usage of a tenant nobody knows is a finding (inactive_contract_usage), not bad input."""
    line = json.loads(event("e1"))
    line["subject"] = "t-never-heard-of"
    write_lines(tmp_path / "a.jsonl", [json.dumps(line)])
    load_usage_events(con, tmp_path, CATALOG)
    assert events(con)["tenant_id"].tolist() == ["t-never-heard-of"]


def test_duplicates_count_once_keeping_the_first(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    write_lines(tmp_path / "a.jsonl", [event("e1"), event("e2"), event("e1", feature="late")])
    write_lines(tmp_path / "b" / "c.jsonl.gz", [event("e2", feature="again"), event("e3")])
    other_source = json.loads(event("e1"))
    other_source["source"] = "billing-service"  # same id, other source: another event
    write_lines(tmp_path / "d.jsonl", [json.dumps(other_source)])

    stats = load_usage_events(con, tmp_path, CATALOG)

    frame = events(con)
    assert sorted(zip(frame["source"], frame["id"], strict=True)) == [
        ("api-gateway", "e1"),
        ("api-gateway", "e2"),
        ("api-gateway", "e3"),
        ("billing-service", "e1"),
    ]
    assert set(frame["feature"]) == {"sso"}  # the first delivery wins
    assert stats.duplicates_dropped == 2 and stats.events_loaded == 4
    assert stats.files == 3 and stats.lines_read == 6


def test_gzip_and_parquet_inputs(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    write_lines(tmp_path / "2026-10" / "a.jsonl.gz", [event("e1"), "not json"])
    text_times = pa.table(
        {
            "id": ["p1", "p2", "p3", "p4"],
            "source": ["warehouse"] * 4,
            "type": ["storage.reported"] * 4,
            "subject": ["t-2", "t-2", "t-2", None],
            "time": [
                "2026-10-31T22:00:00-05:00",
                "2026-10-31T22:00:00",
                "2026-10-01T00:00:00Z",
                "2026-10-01T00:00:00Z",
            ],
            "user_id": ["u-1"] * 4,
            "feature": [None] * 4,
            "region": ["eu-west-1"] * 4,
            "gb": [1.5, 2.0, -1.0, 3.0],
        }
    )
    pq.write_table(text_times, tmp_path / "storage.parquet")
    real_times = pa.table(
        {
            "id": ["p5"],
            "source": ["warehouse"],
            "type": ["api.request"],
            "subject": ["t-3"],
            "time": pa.array([datetime(2026, 10, 5, 12, 0)], pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(real_times, tmp_path / "z.parquet")

    stats = load_usage_events(con, tmp_path, CATALOG)

    frame = events(con).set_index("id")
    assert sorted(frame.index) == ["e1", "p1", "p5"]
    assert frame.loc["p1", "time"] == pd.Timestamp("2026-11-01 03:00:00")
    assert frame.loc["p1", "line"] == 1
    assert json.loads(frame.loc["p1", "data"]) == {
        "user_id": "u-1",
        "feature": None,
        "region": "eu-west-1",
        "gb": 1.5,
    }
    assert frame.loc["p5", "time"] == pd.Timestamp("2026-10-05 12:00:00")
    q = con.execute(
        "SELECT file, line, field FROM main.quarantine_usage_events ORDER BY file, line"
    ).fetchall()
    assert [(Path(f).name, line, field) for f, line, field in q] == [
        ("a.jsonl.gz", 2, None),
        ("storage.parquet", 2, "time"),
        ("storage.parquet", 3, "data.gb"),
        ("storage.parquet", 4, "subject"),
    ]
    raw = con.execute(
        "SELECT raw FROM main.quarantine_usage_events WHERE line = 3 AND field = 'data.gb'"
    ).fetchone()
    assert raw is not None and json.loads(raw[0])["id"] == "p3"
    assert (stats.files, stats.jsonl_files, stats.parquet_files) == (3, 1, 2)


def test_empty_folder_gives_empty_tables(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    (tmp_path / "notes.txt").write_text("not usage")
    stats = load_usage_events(con, tmp_path, CATALOG)
    assert stats.files == 0 and stats.events_loaded == 0 and stats.lines_read == 0
    assert stats.first_event_time is None
    assert events(con).empty
    assert [r[0] for r in con.execute("DESCRIBE main.usage_events").fetchall()] == list(
        USAGE_EVENTS_SQL
    )
    assert con.execute("SELECT count(*) FROM main.quarantine_usage_events").fetchone() == (0,)


def test_missing_folder_is_a_missing_input(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(MissingInputError) as raised:
        load_usage_events(con, tmp_path / "usage", CATALOG)
    assert str(tmp_path / "usage") in str(raised.value)


def test_a_reload_replaces_the_tables(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = write_lines(tmp_path / "a.jsonl", [event("e1"), "bad"])
    load_usage_events(con, tmp_path, CATALOG)
    write_lines(path, [event("e2")])
    stats = load_usage_events(con, tmp_path, CATALOG)
    assert events(con)["id"].tolist() == ["e2"]
    assert stats.quarantined == 0 and quarantine(con) == {}
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone() == (0,)


def test_lines_that_are_not_utf8_are_quarantined_alone(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    good = event("e1").encode()
    (tmp_path / "a.jsonl").write_bytes(good + b"\n" + b'{"id": "caf\xe9"}\n' + event("e3").encode())
    load_usage_events(con, tmp_path, CATALOG)
    assert events(con)["id"].tolist() == ["e1", "e3"]
    assert events(con)["line"].tolist() == [1, 3]
    assert quarantine(con) == {2: (None, "line is not valid UTF-8 text")}


def test_line_numbers_stay_exact_in_a_large_file(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """DuckDB reads big files in parallel; every event must still point at its own line."""
    count = 200_000
    lines = (
        f'{{"id":"e{n}","source":"s","type":"api.request","subject":"t-1",'
        f'"time":"2026-10-03T14:12:09Z","data":{{"n":{n}}}}}'
        for n in range(1, count + 1)
    )
    (tmp_path / "big.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    stats = load_usage_events(con, tmp_path, CATALOG)
    assert stats.events_loaded == count
    mismatched = con.execute(
        "SELECT count(*) FROM main.usage_events WHERE line <> CAST(data->>'n' AS BIGINT)"
    ).fetchone()
    assert mismatched == (0,)


def test_damaged_files_keep_what_can_be_read(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    whole = tmp_path / "whole.jsonl.gz"
    write_lines(whole, [event(f"e{n}", extra="x" * 200) for n in range(1, 2001)])
    packed = whole.read_bytes()
    whole.unlink()
    (tmp_path / "cut.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")

    stats = load_usage_events(con, tmp_path, CATALOG)

    kept = events(con)
    assert 0 < len(kept) < 2000
    assert kept["line"].tolist() == list(range(1, len(kept) + 1))
    reasons = con.execute(
        "SELECT file, line, reason FROM main.quarantine_usage_events ORDER BY file"
    ).fetchall()
    assert [(Path(f).name, line) for f, line, _ in reasons] == [
        ("broken.parquet", None),
        ("cut.jsonl.gz", None),
    ]
    assert reasons[0][2].startswith("cannot read Parquet file")
    assert reasons[1][2].startswith(f"cannot read the file past line {len(kept)}")
    assert stats.quarantined == 2


def test_lines_are_never_split_inside(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    """No character a JSON line may hold (quotes, commas, backslashes) cuts it short."""
    tricky = event("e1", note='a,b;c|d\t"quoted" \\x1f \\u001f')
    control = event("e2").replace('"e2"', '"e\x1f2"')  # a raw control character: not JSON
    write_lines(tmp_path / "a.jsonl", [tricky, control])
    load_usage_events(con, tmp_path, CATALOG)
    [data] = events(con)["data"].tolist()
    assert json.loads(data)["note"] == 'a,b;c|d\t"quoted" \\x1f \\u001f'
    raw = con.execute("SELECT raw, reason FROM main.quarantine_usage_events").fetchall()
    assert raw == [(control, "not valid JSON")]


def test_file_by_file_fallback_gives_the_same_tables(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line the one-statement read refuses (here: longer than its limit) sends every JSON
    Lines file down the file-by-file path, which must load exactly the same rows."""
    lines = [event(f"e{n}", extra="x" * (300 if n == 3 else 10)) for n in range(1, 6)]
    write_lines(tmp_path / "a.jsonl", [*lines, "", "not json", lines[0]])
    write_lines(tmp_path / "b.jsonl.gz", [event("e1"), '{"id": "x"}'])
    fast_stats = load_usage_events(con, tmp_path, CATALOG)
    fast = events(con), con.execute("SELECT * FROM main.quarantine_usage_events").df()

    monkeypatch.setattr(usage, "FAST_MAX_LINE_SIZE", 200)
    slow_stats = load_usage_events(con, tmp_path, CATALOG, full_refresh=True)
    slow = events(con), con.execute("SELECT * FROM main.quarantine_usage_events").df()

    assert slow_stats == fast_stats
    assert fast_stats.blank_lines == 1 and fast_stats.duplicates_dropped == 2
    pd.testing.assert_frame_equal(slow[0], fast[0])
    pd.testing.assert_frame_equal(slow[1], fast[1])
    assert len(fast[0]) == 5 and len(fast[1]) == 2


def test_events_before_the_earliest_date_are_quarantined(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """A clock reset to 1970 or a year typed as 0001 would open a tenant's history decades
    early (or fall outside what pandas holds): such events are quarantined with the reason."""
    write_lines(
        tmp_path / "a.jsonl",
        [
            event("e1", "0001-01-01T00:00:00Z"),
            event("e2", "1600-06-15T00:00:00Z"),
            event("e3", "1970-01-01T00:00:00Z"),
            event("e4", "2000-01-01T00:59:59+01:00"),  # 1999-12-31 23:59:59 UTC
            event("e5", "2000-01-01T00:00:00Z"),
            event("e6", "2026-10-03T14:12:09Z"),
        ],
    )
    pq.write_table(
        pa.table(
            {
                "id": ["p1", "p2"],
                "source": ["warehouse"] * 2,
                "type": ["api.request"] * 2,
                "subject": ["t-2"] * 2,
                "time": pa.array(
                    [datetime(1, 1, 1), datetime(2026, 10, 5)], pa.timestamp("us", tz="UTC")
                ),
            }
        ),
        tmp_path / "times.parquet",
    )

    stats = load_usage_events(con, tmp_path, CATALOG)

    assert sorted(events(con)["id"]) == ["e5", "e6", "p2"]
    reason = "time is before 2000-01-01 (LICENSING_EARLIEST_EVENT_DATE)"
    rows = con.execute(
        "SELECT file, line, field, reason FROM main.quarantine_usage_events ORDER BY file, line"
    ).fetchall()
    assert [(Path(f).name, line, field, why) for f, line, field, why in rows] == [
        ("a.jsonl", 1, "time", reason),
        ("a.jsonl", 2, "time", reason),
        ("a.jsonl", 3, "time", reason),
        ("a.jsonl", 4, "time", reason),
        ("times.parquet", 1, "time", reason),
    ]
    assert stats.first_event_time == "2000-01-01T00:00:00Z"

    load_usage_events(con, tmp_path, CATALOG, earliest=date(2026, 10, 4))
    assert sorted(events(con)["id"]) == ["p2"]
    assert set(quarantine(con).values()) == {
        ("time", "time is before 2026-10-04 (LICENSING_EARLIEST_EVENT_DATE)")
    }


def test_quantities_above_the_largest_accepted_are_quarantined(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """Two values of 1e308 would sum to infinity: a value above 2**53 is out of range, so
    no sum of accepted values can overflow."""
    write_lines(
        tmp_path / "a.jsonl",
        [
            event("e1", type="storage.reported", gb=1e308),
            event("e2", type="storage.reported", gb=1e308),
            event("e3", type="storage.reported", gb=2**53),
            event("e4", type="storage.reported", gb=2**53 + 2),
            event("e5", type="storage.reported", gb=12.5),
        ],
    )
    load_usage_events(con, tmp_path, CATALOG)
    assert events(con)["id"].tolist() == ["e3", "e5"]
    above = (
        "data.gb",
        "data.gb is above 9,007,199,254,740,992, the largest quantity accepted (metric storage_gb)",
    )
    assert quarantine(con) == {1: above, 2: above, 4: above}


def test_links_out_of_the_data_folder_are_refused_unread(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """A usage file that is a symbolic link leading out of the data folder is quarantined
    as one row naming the link; nothing of the file it points to is read. A link to a file
    inside the data folder is read like any file."""
    data = tmp_path / "data"
    usage_dir = data / "usage"
    secret = write_lines(tmp_path / "elsewhere" / "passwd.jsonl", ["root:x:0:0:root:/root"])
    outside = write_lines(tmp_path / "elsewhere" / "events.jsonl", [event("outside-1")])
    inside = write_lines(data / "archive" / "old.jsonl", [event("inside-1")])
    write_lines(usage_dir / "a.jsonl", [event("e1")])
    (usage_dir / "passwd.jsonl").symlink_to(secret)
    (usage_dir / "more.jsonl").symlink_to(Path("..") / ".." / "elsewhere" / "events.jsonl")
    (usage_dir / "old.jsonl").symlink_to(Path("..") / "archive" / "old.jsonl")
    assert outside.is_file() and inside.is_file()

    stats = load_usage_events(con, usage_dir, CATALOG)

    assert sorted(events(con)["id"]) == ["e1", "inside-1"]
    rows = con.execute(
        "SELECT file, line, field, raw, reason FROM main.quarantine_usage_events ORDER BY file"
    ).fetchall()
    assert rows == [
        (str(usage_dir / "more.jsonl"), None, None, None, usage.LINK_OUTSIDE),
        (str(usage_dir / "passwd.jsonl"), None, None, None, usage.LINK_OUTSIDE),
    ]
    assert stats.quarantined == 2 and stats.lines_read == 4
