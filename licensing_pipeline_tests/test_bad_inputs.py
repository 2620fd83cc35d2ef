"""One night over the demo dataset with an adversarial pass's bad values added, on the
embedded backend and on PostgreSQL: events dated 0001, 1600 and 1970, two values of 1e308
(which summed to infinity), usage decades before a tenant's first contract, and a usage
file that is a link to a file outside the data folder.

The night finishes; each bad value is quarantined with its reason and a tenant that sent
only bad values stays without findings; no finding, statement or Slack message holds an
infinity or a NaN; the link is refused unread; and what the run wrote is its owner's only,
even under a umask of 0.
"""

import io
import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from licensing_pipeline import cli
from licensing_pipeline.contract.usage import LINK_OUTSIDE
from licensing_pipeline.quality.report import load_report
from licensing_pipeline.repository.resources import LicensingRepository, checked_engine
from licensing_pipeline.settings import load_settings
from licensing_pipeline.warehouse.resources import warehouse_for
from licensing_pipeline_tests.backends import backend_environment, backend_variables
from licensing_pipeline_tests.postgres import fresh_database
from licensing_pipeline_tests.remediation.fakes import FakeSlack, FakeTicketSystem
from licensing_pipeline_tests.remediation.test_remediation_end_to_end import World

AS_OF = "2026-11-20"
SECRET = "root:x:0:0:root:/root:/bin/bash"
NOT_FINITE = re.compile(r"\b(inf|nan|infinity)\b", re.IGNORECASE)
pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Exports:
    folder: Path
    clean_tenant: str  # sends only bad values besides its usual usage
    early_tenant: str  # one event decades before its first contract


def event(id: str, tenant: str, time: str, type: str = "api.request", **data: Any) -> str:
    body = {"user_id": "u-1", "region": "us-east-1", **data}
    return json.dumps(
        {
            "specversion": "1.0",
            "id": id,
            "source": "adversary",
            "type": type,
            "subject": tenant,
            "time": time,
            "data": body,
        }
    )


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Exports:
    root = tmp_path_factory.mktemp("bad-inputs")
    folder = root / "data"
    assert (
        cli.main(
            ["demo", "--tenants", "24", "--months", "4", "--as-of", AS_OF, "--out", str(folder)]
        )
        == 0
    )
    manifest = json.loads((folder / "demo_manifest.json").read_text())
    clean, early = manifest["clean_tenants"][0], manifest["near_limit_tenants"][0]
    lines = [
        event("bad-0001", clean, "0001-01-01T00:00:00Z"),
        event("bad-1600", clean, "1600-06-15T00:00:00Z"),
        event("bad-1970", clean, "1970-01-01T00:00:00Z"),
        event("bad-rows-1", clean, "2026-11-19T10:00:00Z", "report.exported", rows=1e308),
        event("bad-rows-2", clean, "2026-11-19T11:00:00Z", "report.exported", rows=1e308),
        event("bad-gb", clean, "2026-11-19T12:00:00Z", "storage.reported", gb=1e308),
        event("early-2001", early, "2001-03-04T05:06:07Z"),
    ]
    with (folder / "usage" / "events-2026-11.jsonl").open("a") as handle:
        handle.writelines(line + "\n" for line in lines)
    (root / "passwd").write_text(SECRET + "\n")
    (folder / "usage" / "passwd.jsonl").symlink_to(root / "passwd")
    (folder / "archive").mkdir()
    (folder / "archive" / "late.jsonl").write_text(
        event("inside-link-1", early, "2026-11-20T09:00:00Z") + "\n"
    )
    (folder / "usage" / "late.jsonl").symlink_to(Path("..") / "archive" / "late.jsonl")
    return Exports(folder, clean, early)


@dataclass
class Night:
    home: Path
    code: int
    findings: pd.DataFrame
    findings_jsonl: str
    quarantined: pd.DataFrame
    inside_link_events: int
    report: pd.DataFrame
    slack_posts: list[dict[str, Any]]


def run_night(exports: Exports, home: Path, database_url: str | None) -> Night:
    slack = FakeSlack()
    slack.start()
    umask = os.umask(0)  # the files must come out private because the code makes them so
    try:
        with (
            pytest.MonkeyPatch.context() as env,
            backend_environment(backend_variables(home, exports.folder, database_url)),
        ):
            env.setenv("SLACK_BOT_TOKEN", "xoxb-bad-inputs")
            env.setenv("SLACK_API_URL", slack.base_url)
            code = cli.main(["run", "--as-of", AS_OF])
            World(home=home, slack=slack, tickets=FakeTicketSystem()).tick()
            settings = load_settings()
            out = io.StringIO()
            with redirect_stdout(out):
                assert cli.main(["findings", "--format", "jsonl", "--status", "all"]) == 0
            warehouse = warehouse_for(settings)
            engine = checked_engine(settings.database_url)
            try:
                report = load_report(engine, last_runs=1)
            finally:
                engine.dispose()
            return Night(
                home=home,
                code=code,
                findings=LicensingRepository(database_url=settings.database_url).load_findings(),
                findings_jsonl=out.getvalue(),
                quarantined=warehouse.read_frame("quarantined_records"),
                inside_link_events=len(
                    warehouse.read_frame(
                        "SELECT id FROM main.usage_events WHERE id = 'inside-link-1'"
                    )
                ),
                report=report,
                slack_posts=slack.posts(),
            )
    finally:
        os.umask(umask)
        slack.stop()


@pytest.fixture(scope="module")
def embedded_night(exports: Exports, tmp_path_factory: pytest.TempPathFactory) -> Night:
    return run_night(exports, tmp_path_factory.mktemp("embedded-home"), None)


@pytest.fixture(scope="module")
def postgres_night(exports: Exports, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Night]:
    with fresh_database() as url:
        yield run_night(exports, tmp_path_factory.mktemp("postgres-home"), url)


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def night(request: pytest.FixtureRequest) -> Night:
    return request.getfixturevalue(f"{request.param}_night")


def test_the_night_finishes_and_every_bad_value_is_quarantined(night: Night, exports: Exports):
    assert night.code == 0
    usage = night.quarantined[night.quarantined["source"] == "usage_events"]
    by_id = {
        json.loads(raw)["id"]: reason
        for raw, reason in zip(usage["raw"], usage["reason"], strict=True)
        if isinstance(raw, str) and raw.startswith('{"specversion"') and "adversary" in raw
    }
    before = "time is before 2000-01-01 (LICENSING_EARLIEST_EVENT_DATE)"
    above = "is above 9,007,199,254,740,992, the largest quantity accepted"
    assert {k: v for k, v in by_id.items() if v == before}.keys() == {
        "bad-0001",
        "bad-1600",
        "bad-1970",
    }
    assert by_id["bad-rows-1"] == f"data.rows {above} (metric exports)"
    assert by_id["bad-rows-2"] == f"data.rows {above} (metric exports)"
    assert by_id["bad-gb"] == f"data.gb {above} (metric storage_gb)"
    assert "early-2001" not in by_id  # after the floor: evaluated, and warned about


def test_a_tenant_that_sent_only_bad_values_stays_without_findings(night: Night, exports: Exports):
    assert night.findings[night.findings["tenant_id"] == exports.clean_tenant].empty
    assert (night.findings["period"] >= "2000").all()


def test_usage_long_before_the_first_contract_warns(night: Night, exports: Exports):
    [row] = night.report[night.report["check_name"] == "usage_events_no_early_usage"].to_dict(
        "records"
    )
    assert row["outcome"] == "warn" and not row["blocking"]
    assert f"{exports.early_tenant}: an event on 2001-03-04" in row["summary"]
    blocking = night.report[night.report["blocking"].astype(bool)]
    assert set(blocking["outcome"]) == {"pass"}


def test_no_figure_that_is_not_finite_reaches_findings_statements_or_slack(night: Night):
    figures = night.findings[["observed", "allowed"]].astype("float64").to_numpy()
    assert figures.size and pd.notna(figures).all() and (abs(figures) < float("inf")).all()
    exported = [json.loads(line) for line in night.findings_jsonl.splitlines()]
    assert len(exported) == len(night.findings)
    assert all(isinstance(f["observed"], float | int) for f in exported)
    assert not NOT_FINITE.search(" ".join(str(d) for d in night.findings["details"]))
    statements = sorted((night.home / "statements").rglob("*.json"))
    assert statements
    for path in statements:
        assert not NOT_FINITE.search(path.read_text()), path  # NaN or Infinity: not JSON
        assert not NOT_FINITE.search(path.with_suffix(".html").read_text()), path
    assert night.slack_posts
    assert not [p for p in night.slack_posts if NOT_FINITE.search(json.dumps(p))]


def test_a_link_out_of_the_data_folder_is_refused_unread(night: Night, exports: Exports):
    link = str(exports.folder / "usage" / "passwd.jsonl")
    refused = night.quarantined[night.quarantined["file"] == link]
    assert refused["reason"].tolist() == [LINK_OUTSIDE]
    assert refused["line"].isna().all() and refused["raw"].isna().all()
    assert not night.quarantined["raw"].fillna("").str.contains("root:x:0:0").any()
    assert night.inside_link_events == 1  # a link inside the data folder is read


def test_what_the_night_wrote_is_its_owners_only(night: Night):
    written = [night.home / name for name in ("statements", "dashboard", "data_docs")]
    written += [
        p for p in (night.home / "warehouse.duckdb", night.home / "licensing.db") if p.exists()
    ]
    assert (night.home / "statements").is_dir() and (night.home / "data_docs").is_dir()
    loose = []
    for top in written:
        for path in [top, *top.rglob("*")] if top.is_dir() else [top]:
            expected = 0o700 if path.is_dir() else 0o600
            if stat.S_IMODE(path.stat().st_mode) != expected:
                loose.append(f"{path} {stat.S_IMODE(path.stat().st_mode):o}")
    assert not loose
    flags = night.home / "enforcement" / "flags.flagd.json"
    assert stat.S_IMODE(flags.stat().st_mode) == 0o644  # shared with the product on purpose
