"""The whole graph on a generated demo dataset: the findings equal what the demo seeded."""

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from licensing_pipeline import cli
from licensing_pipeline.contract.schemas import CHECKS
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.settings import load_settings

AS_OF = "2026-11-20"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("licensing-home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LICENSING_HOME", str(home))
        env.setenv("DAGSTER_HOME", str(home / "dagster"))
        env.setenv("LICENSING_DATA_DIR", str(home / "data"))
        env.delenv("LICENSING_DATABASE_URL", raising=False)
        env.delenv("LICENSING_WAREHOUSE_PATH", raising=False)
        env.delenv("LICENSING_AS_OF", raising=False)
        assert cli.main(["demo", "--tenants", "24", "--months", "4", "--as-of", AS_OF]) == 0
        yield home


def findings_of(home: Path) -> pd.DataFrame:
    return LicensingRepository(database_url=load_settings().database_url).load_findings()


@pytest.fixture(scope="module")
def first_run(demo_home: Path) -> pd.DataFrame:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LICENSING_HOME", str(demo_home))
        env.setenv("DAGSTER_HOME", str(demo_home / "dagster"))
        env.setenv("LICENSING_DATA_DIR", str(demo_home / "data"))
        assert cli.main(["run", "--as-of", AS_OF]) == 0
        return findings_of(demo_home)


def manifest(home: Path) -> dict:
    return json.loads((home / "data" / "demo_manifest.json").read_text())


def test_every_seeded_violation_is_found_with_its_status_and_figures(
    demo_home: Path, first_run: pd.DataFrame
):
    found = first_run.set_index(["tenant_id", "check", "subject", "period"])
    seeded = manifest(demo_home)["violations"]
    assert {v["check"] for v in seeded} == set(CHECKS)
    missing = []
    for violation in seeded:
        key = (
            violation["tenant_id"],
            violation["check"],
            violation["subject"],
            violation["period"],
        )
        if key not in found.index:
            missing.append(key)
            continue
        row = found.loc[key]
        assert row["status"] == violation["expected_status"], key
        assert row["observed"] == pytest.approx(violation["observed"]), key
        assert row["allowed"] == pytest.approx(violation["allowed"]), key
    assert not missing, f"seeded but not found: {missing}"


def test_nothing_is_found_that_was_not_seeded(demo_home: Path, first_run: pd.DataFrame):
    seeded = {
        (v["tenant_id"], v["check"], v["subject"], v["period"])
        for v in manifest(demo_home)["violations"]
    }
    found = set(
        first_run[["tenant_id", "check", "subject", "period"]].itertuples(index=False, name=None)
    )
    assert found - seeded == set()


def test_clean_tenants_have_no_findings_and_near_limit_ones_only_notices(
    demo_home: Path, first_run: pd.DataFrame
):
    seeded = manifest(demo_home)
    clean, near = set(seeded["clean_tenants"]), set(seeded["near_limit_tenants"])
    assert clean and near
    assert first_run[first_run["tenant_id"].isin(clean)].empty
    on_near = first_run[first_run["tenant_id"].isin(near)]
    assert set(on_near["check"]) == {"quota_near_limit"}
    assert set(on_near["severity"]) == {"info"}


def test_quarantine_holds_exactly_the_seeded_bad_lines(demo_home: Path, first_run: pd.DataFrame):
    from licensing_pipeline.warehouse.resources import Warehouse

    with pytest.MonkeyPatch.context() as env:
        env.setenv("LICENSING_HOME", str(demo_home))
        quarantined = Warehouse(path=str(load_settings().warehouse_path)).read_frame(
            "quarantined_records"
        )
    assert len(quarantined) == manifest(demo_home)["expected_quarantined"]
    assert quarantined["reason"].notna().all()
    assert quarantined["line"].notna().all()


def test_a_second_run_keeps_every_finding_id_and_first_detection(
    demo_home: Path, first_run: pd.DataFrame
):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LICENSING_HOME", str(demo_home))
        env.setenv("DAGSTER_HOME", str(demo_home / "dagster"))
        env.setenv("LICENSING_DATA_DIR", str(demo_home / "data"))
        assert cli.main(["run", "--as-of", AS_OF]) == 0
        second = findings_of(demo_home)
    before = first_run.set_index("finding_id")
    after = second.set_index("finding_id")
    assert set(after.index) == set(before.index)
    assert (after.loc[before.index, "first_detected_at"] == before["first_detected_at"]).all()
    assert (after.loc[before.index, "status"] == before["status"]).all()


def test_fail_on_critical_exits_with_its_own_code(demo_home: Path, first_run: pd.DataFrame):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LICENSING_HOME", str(demo_home))
        env.setenv("DAGSTER_HOME", str(demo_home / "dagster"))
        env.setenv("LICENSING_DATA_DIR", str(demo_home / "data"))
        assert cli.main(["run", "--as-of", AS_OF, "--fail-on", "critical"]) == (
            cli.EXIT_FINDINGS_AT_OR_ABOVE
        )


def test_findings_command_prints_the_contract_columns(
    demo_home: Path, first_run: pd.DataFrame, capsys: pytest.CaptureFixture[str]
):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LICENSING_HOME", str(demo_home))
        capsys.readouterr()
        assert cli.main(["findings", "--format", "jsonl", "--status", "all"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(first_run)
    assert list(rows[0]) == [
        "finding_id",
        "tenant_id",
        "check",
        "subject",
        "period",
        "observed",
        "allowed",
        "severity",
        "action",
        "status",
        "policy_version",
        "catalog_version",
        "first_detected_at",
        "last_detected_at",
        "details",
    ]


def test_the_run_is_recorded_in_the_dagster_instance(demo_home: Path, first_run: pd.DataFrame):
    import dagster as dg

    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAGSTER_HOME", str(demo_home / "dagster"))
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs(dg.RunsFilter(job_name="nightly_compliance"))
    assert runs and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
