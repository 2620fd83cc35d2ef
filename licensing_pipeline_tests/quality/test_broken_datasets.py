"""Deliberately broken exports, each run through `licensing-pipeline run` after a clean night.

A blocking check stops the run before compliance_findings, so the findings of the clean
night stay as they were and the command says why; a non-blocking one lets the run finish
with a warning. Every broken dataset is the demo dataset with one thing wrong.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import yaml

from licensing_pipeline import cli
from licensing_pipeline.quality.report import load_report, trend
from licensing_pipeline.repository.resources import LicensingRepository, checked_engine
from licensing_pipeline.repository.tables import finding_runs
from licensing_pipeline.settings import load_settings

AS_OF = "2026-11-20"
LATEST_USAGE = "usage/events-2026-11.jsonl"
pytestmark = pytest.mark.e2e


@dataclass
class Night:
    """One `licensing-pipeline run`: its exit code, what it printed, and what it left."""

    code: int
    out: str
    err: str
    report: pd.DataFrame  # data_quality_report rows of this run
    findings: pd.DataFrame  # the repository's findings after it
    finding_runs: int  # rows of finding_runs after it

    def check(self, name: str) -> pd.Series:
        [row] = self.report[self.report["check_name"] == name].to_dict("records")
        return pd.Series(row)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("quality-home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LICENSING_HOME", str(home))
        env.setenv("DAGSTER_HOME", str(home / "dagster"))
        env.setenv("LICENSING_DATA_DIR", str(home / "clean"))
        for name in ("LICENSING_DATABASE_URL", "LICENSING_WAREHOUSE_PATH", "LICENSING_AS_OF"):
            env.delenv(name, raising=False)
        assert cli.main(["demo", "--tenants", "24", "--months", "4", "--as-of", AS_OF]) == 0
        yield home


def run_night(data_dir: Path) -> Night:
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        code = cli.main(["run", "--data-dir", str(data_dir), "--as-of", AS_OF])
    url = load_settings().database_url
    engine = checked_engine(url)
    try:
        report = load_report(engine, last_runs=1)
        with engine.connect() as con:
            runs = int(con.execute(sa.select(sa.func.count()).select_from(finding_runs)).scalar())
    finally:
        engine.dispose()
    findings = LicensingRepository(database_url=url).load_findings()
    return Night(code, stdout.getvalue(), stderr.getvalue(), report, findings, runs)


def broken(home: Path, name: str, damage: Callable[[Path], None]) -> Path:
    folder = home / name
    shutil.copytree(home / "clean", folder)
    damage(folder)
    return folder


@pytest.fixture(scope="module")
def clean_night(home: Path) -> Night:
    return run_night(home / "clean")


def current_findings() -> pd.DataFrame:
    return LicensingRepository(database_url=load_settings().database_url).load_findings()


def assert_findings_untouched(before: pd.DataFrame, after: Night, runs_before: int) -> None:
    pd.testing.assert_frame_equal(before, after.findings)
    assert after.finding_runs == runs_before


def blocked_night(
    home: Path, clean_night: Night, name: str, damage: Callable[[Path], None]
) -> Night:
    """The night of a damaged copy of the clean data: the run fails and keeps the findings."""
    before = current_findings()
    night = run_night(broken(home, name, damage))
    assert night.code == cli.EXIT_JOB_FAILED
    assert_findings_untouched(before, night, clean_night.finding_runs)
    return night


# --- the clean demo dataset ------------------------------------------------------------------


def test_the_demo_dataset_passes_every_check(clean_night: Night):
    assert clean_night.code == 0, clean_night.err
    report = clean_night.report
    assert len(report) >= 25
    assert set(report["outcome"]) == {"pass"}, report[report["outcome"] != "pass"]
    assert "Data quality: all" in clean_night.out and "checks passed" in clean_night.out
    assert len(clean_night.findings) > 0


def test_the_data_docs_are_linked_and_on_disk(home: Path, clean_night: Night):
    assert (home / "data_docs" / "index.html").is_file()
    pages = clean_night.report["data_docs"].dropna()
    assert len(pages) == len(clean_night.report)
    assert all(page.startswith(f"file://{home.resolve()}/data_docs/") for page in pages)


# --- blocking ---------------------------------------------------------------------------------


def cut_usage_in_half(folder: Path) -> None:
    usage = folder / LATEST_USAGE
    data = usage.read_bytes()
    usage.write_bytes(data[: len(data) // 2])


def test_a_usage_file_cut_in_half_blocks_the_findings(home: Path, clean_night: Night):
    night = blocked_night(home, clean_night, "cut", cut_usage_in_half)
    truncated = night.check("usage_events_files_complete")
    assert truncated["outcome"] == "fail"
    assert "usage file(s) look truncated: events-2026-11.jsonl at line" in truncated["summary"]
    short = night.check("usage_events_feed_volume")
    assert short["outcome"] == "fail" and "the feed arrived short" in short["summary"]
    assert "compliance_findings was NOT updated" in night.err
    assert "usage_events:usage_events_files_complete" in night.err


def duplicate_contract_rows(folder: Path) -> None:
    contracts = folder / "contracts.csv"
    lines = contracts.read_text().splitlines(keepends=True)
    contracts.write_text("".join([*lines, *lines[1:4]]))


def test_duplicated_contract_rows_block_the_findings(home: Path, clean_night: Night):
    night = blocked_night(home, clean_night, "duplicated", duplicate_contract_rows)
    unique = night.check("contracts_unique")
    assert unique["outcome"] == "fail"
    assert "3 duplicated line(s) in contracts.csv" in unique["summary"]
    assert "compliance_findings was NOT updated" in night.err
    assert "contracts:contracts_unique" in night.err


def drop_the_growth_plan(folder: Path) -> None:
    catalog = folder / "catalog.yaml"
    document = yaml.safe_load(catalog.read_text())
    del document["plans"]["growth"]
    catalog.write_text(yaml.safe_dump(document, sort_keys=False))


def test_a_plan_missing_from_the_catalog_blocks_the_findings(home: Path, clean_night: Night):
    night = blocked_night(home, clean_night, "no-growth", drop_the_growth_plan)
    reference = night.check("contracts_reference_catalog")
    assert reference["outcome"] == "fail"
    assert "contract(s) name a plan missing from the catalog" in reference["summary"]
    assert "plan=growth" in reference["summary"]
    assert "contracts:contracts_reference_catalog" in night.err


def _utc_day(text: str) -> date:
    return pd.Timestamp(text).tz_convert("UTC").date()


def keep_30_percent_of_the_as_of_day(folder: Path) -> None:
    """Drop 7 of every 10 events of the as-of day, in every usage file."""
    as_of = date.fromisoformat(AS_OF)
    for path in (folder / "usage").glob("*.jsonl"):
        kept, seen = [], 0
        for line in path.read_text().splitlines(keepends=True):
            try:
                day = _utc_day(json.loads(line)["time"])
            except (ValueError, KeyError, TypeError):
                kept.append(line)
                continue
            if day == as_of:
                seen += 1
                if seen % 10 < 7:
                    continue
            kept.append(line)
        path.write_text("".join(kept))
    parquet = folder / "usage" / "metering.parquet"
    table = pq.read_table(parquet)
    seen, mask = 0, []
    for text in table.column("time").to_pylist():
        on_day = _utc_day(text) == as_of
        seen += on_day
        mask.append(not on_day or seen % 10 >= 7)
    pq.write_table(table.filter(pa.array(mask)), parquet)


def test_a_feed_70_percent_short_blocks_the_findings(home: Path, clean_night: Night):
    night = blocked_night(home, clean_night, "short", keep_30_percent_of_the_as_of_day)
    short = night.check("usage_events_feed_volume")
    assert short["outcome"] == "fail"
    assert "the feed arrived short" in short["summary"]
    assert "events on 2026-11-20 (Friday), 3" in short["summary"]  # 30 % of the usual
    assert night.check("usage_events_files_complete")["outcome"] == "pass"
    assert "usage_events:usage_events_feed_volume" in night.err


# --- not blocking -----------------------------------------------------------------------------


def negative_billing_and_future_events(folder: Path) -> None:
    """Two problems the run survives: three invoice lines with a negative quantity, and
    three events dated a month ahead of the clock."""
    billing = folder / "billing_records.csv"
    rows = list(csv.reader(io.StringIO(billing.read_text())))
    column = rows[0].index("billed_quantity")
    for row in rows[1:4]:
        row[column] = "-" + row[column]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    billing.write_text(out.getvalue())
    ahead = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = [
        {
            "specversion": "1.0",
            "id": f"req-future-{n}",
            "source": "api-gateway",
            "type": "api.request",
            "subject": "t-0001",
            "time": ahead,
            "data": {"user_id": "u-1", "region": "us-east-1"},
        }
        for n in range(3)
    ]
    with (folder / LATEST_USAGE).open("a") as handle:
        handle.writelines(json.dumps(e) + "\n" for e in events)


@pytest.fixture(scope="module")
def warned_night(home: Path, clean_night: Night) -> Night:
    return run_night(broken(home, "warned", negative_billing_and_future_events))


def test_negative_billed_quantities_warn_and_the_run_finishes(warned_night: Night):
    assert warned_night.code == 0, warned_night.err
    billing = warned_night.check("billing_records_rows_valid")
    assert billing["outcome"] == "warn"
    assert (
        "3 line(s) of billing_records.csv quarantined: billed_quantity is negative "
        "(3: lines 2, 3, 4)" in billing["summary"]
    )
    assert "billing_records:billing_records_rows_valid" in warned_night.out
    assert "warned (the run went on)" in warned_night.out


def test_events_from_the_future_warn_and_the_run_finishes(warned_night: Night, clean_night: Night):
    future = warned_night.check("usage_events_no_future_events")
    assert future["outcome"] == "warn"
    assert "3 event(s) dated more than 48 hours after" in future["summary"]
    assert "req-future-" in future["summary"]
    assert warned_night.finding_runs == clean_night.finding_runs + 1  # findings rewritten
    blocking = warned_night.report[warned_night.report["blocking"].astype(bool)]
    assert set(blocking["outcome"]) == {"pass"}


# --- the report, night after night -------------------------------------------------------------


def test_the_report_keeps_each_run_for_trends(
    clean_night: Night, warned_night: Night, capsys: pytest.CaptureFixture[str]
):
    engine = checked_engine(load_settings().database_url)
    try:
        report = load_report(engine)
    finally:
        engine.dispose()
    by_run = trend(report).set_index("run_id")
    clean = by_run.loc[clean_night.report["run_id"].iloc[0]]
    warned = by_run.loc[warned_night.report["run_id"].iloc[0]]
    assert (clean["warn"], clean["fail"]) == (0, 0)
    assert warned["warn"] >= 2 and warned["fail"] == 0
    capsys.readouterr()
    assert cli.main(["quality", "--runs", "30"]) == 0
    out = capsys.readouterr().out
    assert "pass  warn  fail" in out
    assert cli.main(["quality", "--format", "jsonl", "--runs", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and {"run_id", "check_name", "outcome", "blocking", "summary"} <= set(rows[0])
