"""The nightly job on the demo dataset, then the sensors in-process, against fake Slack and
a fake ticket webhook: one ticket per open critical/warning finding, one Slack message per
critical finding plus one digest per channel, nothing more on a re-tick or a second
identical run; resolving the data closes the tickets and posts the resolutions."""

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from licensing_pipeline import cli
from licensing_pipeline.remediation.store import ticket_records
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.settings import load_settings
from licensing_pipeline_tests.remediation.fakes import FakeSlack, FakeTicketSystem, Reply

AS_OF = "2026-11-20"
TOKEN = "xoxb-end-to-end"
DAGSTER_URL = "http://dagster.example:3000"
DATA_CHANNEL = "#data-engineering"
pytestmark = pytest.mark.e2e


@dataclass
class World:
    home: Path
    slack: FakeSlack
    tickets: FakeTicketSystem
    cursors: dict[str, str | None] = field(default_factory=dict)
    launched: list[str] = field(default_factory=list)

    def findings(self) -> pd.DataFrame:
        return LicensingRepository(database_url=load_settings().database_url).load_findings()

    def tickets_now(self) -> list[dict[str, Any]]:
        return ticket_records(
            LicensingRepository(database_url=load_settings().database_url).engine()
        )

    def finding_posts(self) -> list[dict[str, Any]]:
        return [p for p in self.slack.posts() if p["channel"] != DATA_CHANNEL]

    def run_nightly(self) -> None:
        assert cli.main(["run", "--as-of", AS_OF]) == 0

    def tick(self) -> int:
        """Evaluate the sensors as the daemon would; launch new run requests in-process."""
        from licensing_pipeline.definitions import build_definitions

        defs = build_definitions(load_settings())
        resources = {k: (defs.resources or {})[k] for k in ("slack", "repository", "remediation")}
        launched = 0
        with dg.DagsterInstance.get() as instance:
            result = self._evaluate(instance, defs, "remediation_after_findings")
            for request in result.run_requests or []:
                key = request.run_key
                if key in self.launched:  # the daemon skips a run_key it has launched
                    continue
                self.launched.append(str(key))
                outcome = defs.resolve_job_def("remediation").execute_in_process(
                    instance=instance, tags=dict(request.tags)
                )
                assert outcome.success
                launched += 1
            self._evaluate(instance, defs, "alert_on_failed_asset_checks", resources=resources)
        return launched

    def _evaluate(
        self, instance: dg.DagsterInstance, defs: dg.Definitions, name: str, **context: Any
    ) -> Any:
        """One tick of the sensor ``name`` from where its last tick left off."""
        sensor = defs.resolve_sensor_def(name)
        result = sensor.evaluate_tick(
            dg.build_sensor_context(
                instance=instance, cursor=self.cursors.get(name), definitions=defs, **context
            )
        )
        self.cursors[name] = result.cursor
        return result


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("remediation-home")
    slack, tickets = FakeSlack(retry_after=1), FakeTicketSystem()
    counter = {"n": 0}

    def created(request: Any) -> Reply:
        counter["n"] += 1
        return Reply(201, {"id": f"INC-{counter['n']}"})

    tickets.respond = created  # type: ignore[method-assign]
    slack.start()
    tickets.start()
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("LICENSING_HOME", str(home))
            env.setenv("DAGSTER_HOME", str(home / "dagster"))
            env.setenv("LICENSING_DATA_DIR", str(home / "data"))
            for name in ("LICENSING_DATABASE_URL", "LICENSING_WAREHOUSE_PATH", "LICENSING_AS_OF"):
                env.delenv(name, raising=False)
            env.setenv("SLACK_BOT_TOKEN", TOKEN)
            env.setenv("SLACK_API_URL", slack.base_url)
            env.setenv("LICENSING_SLACK_DATA_CHANNEL", DATA_CHANNEL)
            env.setenv("LICENSING_TICKET_WEBHOOK_URL", f"{tickets.url}/hooks/tickets")
            env.setenv("DAGSTER_WEBSERVER_URL", DAGSTER_URL)
            assert cli.main(["demo", "--tenants", "24", "--months", "4", "--as-of", AS_OF]) == 0
            yield World(home=home, slack=slack, tickets=tickets)
    finally:
        slack.stop()
        tickets.stop()


@pytest.fixture(scope="module")
def first_night(world: World) -> World:
    world.run_nightly()
    assert world.slack.requests == []  # the nightly job itself posts nothing
    assert world.tick() == 1
    return world


def ticketed(findings: pd.DataFrame) -> pd.DataFrame:
    return findings[
        (findings["status"] == "open") & findings["severity"].isin(["critical", "warning"])
    ]


def test_one_ticket_per_open_critical_or_warning_finding(first_night: World):
    expected = ticketed(first_night.findings())
    assert len(expected) > 0 and (expected["severity"] == "critical").any()
    tickets = first_night.tickets_now()
    assert sorted(t["finding_id"] for t in tickets) == sorted(expected["finding_id"])
    assert {t["status"] for t in tickets} == {"open"}
    tenants = pd.read_csv(first_night.home / "data" / "tenants.csv", dtype=str)
    owners = dict(zip(tenants["tenant_id"], tenants["compliance_owner"], strict=True))
    for ticket in tickets:
        if ticket["tenant_id"] in owners:
            assert ticket["owner"] == owners[ticket["tenant_id"]]


def test_one_message_per_critical_finding_and_one_digest_per_channel(first_night: World):
    tickets = first_night.tickets_now()
    critical = [t for t in tickets if t["severity"] == "critical"]
    warning_channels = {t["channel"] for t in tickets if t["severity"] == "warning"}
    posts = first_night.finding_posts()
    alerts = [p for p in posts if p["text"].startswith("Critical: ")]
    digests = [p for p in posts if f"open warning finding(s) for {AS_OF}" in p["text"]]
    assert len(alerts) == len(critical)
    assert len(digests) == len(warning_channels)
    assert sorted(p["channel"] for p in digests) == sorted(warning_channels)
    assert len(posts) == len(alerts) + len(digests)
    by_channel = sorted((t["channel"], t["tenant_id"]) for t in critical)
    assert sorted((p["channel"], p["text"].split(" for ")[1].split(" ")[0]) for p in alerts) == (
        by_channel
    )
    link = f"<{DAGSTER_URL}/assets/compliance_findings|compliance_findings in Dagster>"
    assert all(link in p["blocks"][-1]["elements"][0]["text"] for p in alerts)
    assert {r.headers["Authorization"] for r in first_night.slack.requests} == {f"Bearer {TOKEN}"}


def test_every_ticket_is_exported_to_the_ticket_system_once(first_night: World):
    tickets = first_night.tickets_now()
    assert len(first_night.tickets.requests) == len(tickets)
    assert {r.path for r in first_night.tickets.requests} == {"/hooks/tickets"}
    assert all(t["sink_status"] == "synced" and t["external_id"] for t in tickets)
    sent = sorted(r.body["ticket"]["finding_id"] for r in first_night.tickets.requests)
    assert sent == sorted(t["finding_id"] for t in tickets)


@pytest.fixture(scope="module")
def second_tick(first_night: World) -> World:
    first_night.posts_before = len(first_night.slack.posts())  # type: ignore[attr-defined]
    first_night.exports_before = len(first_night.tickets.requests)  # type: ignore[attr-defined]
    assert first_night.tick() == 0
    return first_night


def test_a_second_tick_posts_nothing(second_tick: World):
    assert len(second_tick.slack.posts()) == second_tick.posts_before  # type: ignore[attr-defined]
    assert len(second_tick.tickets.requests) == second_tick.exports_before  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def second_run(second_tick: World) -> World:
    second_tick.tickets_before = second_tick.tickets_now()  # type: ignore[attr-defined]
    second_tick.run_nightly()
    assert second_tick.tick() == 1  # a new materialization: a new remediation run
    return second_tick


def test_a_second_identical_run_posts_and_opens_nothing(second_run: World):
    assert len(second_run.slack.posts()) == second_run.posts_before  # type: ignore[attr-defined]
    assert len(second_run.tickets.requests) == second_run.exports_before  # type: ignore[attr-defined]
    before = {t["ticket_id"]: t["status"] for t in second_run.tickets_before}  # type: ignore[attr-defined]
    assert {t["ticket_id"]: t["status"] for t in second_run.tickets_now()} == before


def remove_tenants(data_dir: Path, tenant_ids: set[str]) -> None:
    """Resolve the breaches the hard way: the tenants' rows leave every export."""
    for name in (
        "tenants.csv",
        "contracts.csv",
        "billing_records.csv",
        "residency.csv",
        "exceptions.csv",
    ):
        path = data_dir / name
        if path.exists():
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame[~frame["tenant_id"].isin(tenant_ids)].to_csv(path, index=False)

    def keep(line: str, field_name: str) -> bool:
        try:
            return json.loads(line).get(field_name) not in tenant_ids
        except (json.JSONDecodeError, AttributeError):
            return True  # bad lines stay bad (quarantined), whoever they were for

    configs = data_dir / "deployment_configs.jsonl"
    if configs.exists():
        lines = configs.read_text().splitlines()
        configs.write_text("".join(f"{x}\n" for x in lines if keep(x, "tenant_id")))
    for path in (data_dir / "usage").iterdir():
        if path.name.endswith(".jsonl.gz"):
            lines = gzip.decompress(path.read_bytes()).decode().splitlines()
            kept = "".join(f"{x}\n" for x in lines if keep(x, "subject"))
            path.write_bytes(gzip.compress(kept.encode()))
        elif path.name.endswith(".jsonl"):
            lines = path.read_text().splitlines()
            path.write_text("".join(f"{x}\n" for x in lines if keep(x, "subject")))
        elif path.name.endswith(".parquet"):
            frame = pd.read_parquet(path)
            frame[~frame["subject"].isin(tenant_ids)].to_parquet(path, index=False)


@pytest.fixture(scope="module")
def resolved_night(second_run: World) -> World:
    tickets = second_run.tickets_now()
    second_run.posts_before = len(second_run.slack.posts())  # type: ignore[attr-defined]
    remove_tenants(second_run.home / "data", {t["tenant_id"] for t in tickets})
    second_run.run_nightly()
    assert second_run.tick() == 1
    return second_run


def test_resolving_the_data_closes_the_tickets_and_posts_the_resolutions(resolved_night: World):
    tickets = resolved_night.tickets_now()
    assert tickets and {t["status"] for t in tickets} == {"resolved"}
    assert all("no longer detected" in t["status_reason"] for t in tickets)
    assert ticketed(resolved_night.findings()).empty
    new_posts = resolved_night.slack.posts()[resolved_night.posts_before :]  # type: ignore[attr-defined]
    finding_posts = [p for p in new_posts if p["channel"] != DATA_CHANNEL]
    assert len(finding_posts) == len(tickets)
    assert all(p["text"].startswith("Resolved: ") for p in finding_posts)
    assert sorted(p["channel"] for p in finding_posts) == sorted(t["channel"] for t in tickets)


def test_after_resolution_a_further_tick_posts_nothing(resolved_night: World):
    before = len(resolved_night.slack.posts())
    assert resolved_night.tick() == 0
    assert len(resolved_night.slack.posts()) == before


def test_the_code_location_keeps_remediation_out_of_the_nightly_job():
    from licensing_pipeline.definitions import defs

    nightly = defs.resolve_job_def("nightly_compliance")
    keys = nightly.asset_layer.asset_graph.get_all_asset_keys()
    assert dg.AssetKey("compliance_findings") in keys
    assert dg.AssetKey("remediation_tickets") not in nightly.asset_layer.executable_asset_keys
    remediation = defs.resolve_job_def("remediation")
    assert remediation.asset_layer.executable_asset_keys == {dg.AssetKey("remediation_tickets")}
    for name in (
        "remediation_after_findings",
        "alert_on_failed_asset_checks",
        "post_failed_runs_to_slack",
        "deliver_queued_alerts",
    ):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
