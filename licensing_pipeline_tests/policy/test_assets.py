"""policy_evaluations -> compliance_findings -> enforcement_actions, over real stores."""

import json
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from licensing_pipeline.contract.schemas import (
    APPROVED_CHANGES,
    COMPLIANCE_FINDINGS,
    FINDING_RECORDS,
    conform,
)
from licensing_pipeline.governance import audit_trail
from licensing_pipeline.policy import store
from licensing_pipeline.policy.assets import BUNDLE_CHECK
from licensing_pipeline.policy.bundle import load_policy
from licensing_pipeline.settings import DEFAULT_POLICY_PATH
from licensing_pipeline.warehouse.resources import WarehouseIOManager
from licensing_pipeline_tests.governance.change_rows import approve_bundle
from licensing_pipeline_tests.policy.builders import exceptions, result, results
from licensing_pipeline_tests.policy.flagd import flagd_problems
from licensing_pipeline_tests.policy.graph import Home

NOVEMBER = results(
    result(tenant_id="t-1"),  # hard quota breach: critical / throttle
    result(tenant_id="t-2", check="feature_not_entitled", subject="sso", enforcement="soft"),
    result(tenant_id="t-3", check="residency_violation", subject="us-east-1"),
)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home")
    home.root.mkdir()
    home.seed(NOVEMBER)
    return home


def copy_of_default(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    text = DEFAULT_POLICY_PATH.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def check_result(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    evaluations = result.get_asset_check_evaluations()
    return next(e for e in evaluations if e.check_name == BUNDLE_CHECK)


def test_findings_record_the_bundle_version_hash_and_rule(home: Home, tmp_path: Path):
    policy = copy_of_default(tmp_path)
    bundle = load_policy(policy)
    result = home.materialize(policy)
    assert result.success
    assert check_result(result).passed
    records = home.repository.load_finding_records()
    assert list(records.columns) == list(FINDING_RECORDS)
    assert set(records["policy_version"]) == {bundle.version}
    assert set(records["policy_hash"]) == {bundle.content_hash}
    assert dict(zip(records["tenant_id"], records["rule_id"], strict=True)) == {
        "t-1": "quota-exceeded-hard",
        "t-2": "feature-not-entitled-soft",
        "t-3": "residency-violation",
    }
    # the contract's outputs keep exactly the contract's columns
    assert list(home.repository.load_findings().columns) == list(COMPLIANCE_FINDINGS)
    assert list(home.warehouse.read_frame("compliance_findings").columns) == list(
        COMPLIANCE_FINDINGS
    )
    evaluations = home.warehouse.read_frame("policy_evaluations")
    assert set(evaluations["policy_hash"]) == {bundle.content_hash}


def test_enforcement_is_published_as_flagd_and_a_change_log(home: Home, tmp_path: Path):
    assert home.materialize(copy_of_default(tmp_path)).success
    document = json.loads((home.enforcement_dir / "flags.flagd.json").read_text())
    assert flagd_problems(document) == []
    assert document["flags"]["region.us-east-1"]["targeting"]["if"][1] == "suspend"
    lines = (home.enforcement_dir / "changes.jsonl").read_text().splitlines()
    changes = {(c["tenant_id"], c["capability"], c["action"]) for c in map(json.loads, lines)}
    assert changes == {
        ("t-1", "metric.api_calls", "throttle"),
        ("t-2", "feature.sso", "warn"),
        ("t-3", "region.us-east-1", "suspend"),
    }
    engine = home.repository.engine()
    try:
        last = store.last_run(engine)
    finally:
        engine.dispose()
    assert last is not None and last.as_of.isoformat() == "2026-11-20"


def test_the_feed_names_the_approved_change_of_its_bundle(home: Home, tmp_path: Path):
    policy = copy_of_default(tmp_path)
    bundle = load_policy(policy)
    result = home.materialize(policy)
    evaluated = result.asset_materializations_for_node("policy_evaluations")[0].metadata
    assert evaluated["policy_approval"].value.startswith("not approved")
    request = approve_bundle(
        home.repository.engine(),
        bundle.version,
        bundle.content_hash,
        effective_from=date(2026, 11, 1),
    )
    result = home.materialize(policy)
    evaluated = result.asset_materializations_for_node("policy_evaluations")[0].metadata
    assert evaluated["policy_approval"].value == f"approved by change #{request}"
    metadata = json.loads((home.enforcement_dir / "flags.flagd.json").read_text())["metadata"]
    assert (metadata["version"], metadata["policyHash"]) == (bundle.version, bundle.content_hash)
    assert metadata["approvedChange"] == request


def test_a_changed_bundle_applies_at_the_next_run_and_logs_what_changed(home: Home, tmp_path: Path):
    first = copy_of_default(tmp_path)
    assert home.materialize(first).success
    residency_rule = "    check: residency_violation\n    severity: critical\n    action: suspend\n"
    second = copy_of_default(
        tmp_path,
        ('version: "2026.12.0"', 'version: "2026.12.1"'),
        (residency_rule, residency_rule.replace("suspend", "throttle")),
    )
    assert home.materialize(second).success
    records = home.repository.load_finding_records().set_index("tenant_id")
    assert records.loc["t-3", "policy_version"] == "2026.12.1"
    assert records.loc["t-3", "policy_hash"] == load_policy(second).content_hash
    assert records.loc["t-3", "action"] == "throttle"
    log = (home.enforcement_dir / "changes.jsonl").read_text().splitlines()
    changes = [json.loads(line) for line in log]
    assert [(c["previous"], c["action"]) for c in changes if c["tenant_id"] == "t-3"] == [
        ("none", "suspend"),
        ("suspend", "throttle"),
    ]
    assert [c["seq"] for c in changes] == sorted(c["seq"] for c in changes)
    assert changes[-1]["policy_version"] == "2026.12.1"


def test_a_bad_bundle_leaves_the_previous_one_in_force_and_says_so(home: Home, tmp_path: Path):
    good = copy_of_default(tmp_path)
    good_bundle = load_policy(good)
    assert home.materialize(good).success
    bad = copy_of_default(tmp_path, ("    action: throttle\n", "    action: obliterate\n"))
    result = home.materialize(bad)
    assert result.success  # not a crash: the last good bundle decided the run
    evaluation = check_result(result)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    error = str(evaluation.metadata["error"].value)
    assert str(bad) in error and "line " in error and "obliterate" in error
    records = home.repository.load_finding_records()
    assert set(records["policy_hash"]) == {good_bundle.content_hash}  # nothing half-applied
    materialization = next(
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey("policy_evaluations")
    )
    assert "rejected" in str(materialization.metadata["bundle_in_force"].value)


def test_a_bad_bundle_with_nothing_to_fall_back_on_fails_clearly(home: Home, tmp_path: Path):
    bad = copy_of_default(tmp_path, ("check: usage_anomaly", "check: usage_anomalie"))
    result = home.materialize(bad, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert str(bad) in message and "line " in message and "usage_anomalie" in message
    assert home.repository.load_finding_records().empty


def test_every_step_of_a_run_decides_under_one_bundle(home: Home, tmp_path: Path):
    policy = copy_of_default(tmp_path)
    started_with = load_policy(policy)
    edited = policy.read_text().replace('version: "2026.12.0"', 'version: "2026.12.9"')

    class EditedMidRun(WarehouseIOManager):
        """Rewrites the bundle once the first step has decided, as a deploy during a run would."""

        def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
            super().handle_output(context, obj)
            if context.asset_key == dg.AssetKey("policy_evaluations"):
                policy.write_text(edited)

    assert home.materialize(policy, io_manager=EditedMidRun).success
    assert load_policy(policy).version == "2026.12.9"  # the file did change during the run
    records = home.repository.load_finding_records()
    assert set(records["policy_hash"]) == {started_with.content_hash}
    last = store.last_run(home.repository.engine())
    assert last is not None and last.policy_hash == started_with.content_hash
    assert last.policy_version == started_with.version


def test_an_approved_exception_change_waives_next_to_exceptions_csv(home: Home, tmp_path: Path):
    """The governed exception joins the file's: both waive, each under its own id; the run
    records the change as applied in the audit trail."""
    home.seed(NOVEMBER, granted=exceptions({"expires_on": "2026-12-31"}))
    home.warehouse.write_frame(
        "approved_changes",
        conform(
            pd.DataFrame(
                [
                    {
                        "request_id": 5,
                        "kind": "exception",
                        "tenant_id": "t-3",
                        "payload": json.dumps(
                            {"check": "residency_violation", "subject": "us-east-1"}
                        ),
                        "reason": "transfer agreement signed",
                        "effective_from": pd.Timestamp("2026-11-01"),
                        "effective_until": pd.Timestamp("2026-12-31"),
                        "proposed_by": "erin",
                        "decided_by": "carol",
                        "decided_at": pd.Timestamp("2026-11-02 10:00"),
                    }
                ]
            ),
            APPROVED_CHANGES,
        ),
    )
    assert home.materialize(copy_of_default(tmp_path)).success
    records = home.repository.load_finding_records().set_index("tenant_id")
    assert records.loc["t-1", ["status", "exception_id"]].tolist() == ["waived", "EX-1"]
    assert records.loc["t-3", ["status", "exception_id"]].tolist() == ["waived", "change #5"]
    assert records.loc["t-2", "status"] == "open"
    with home.repository.connect() as con:
        assert [(e["actor"], e["action"], e["subject"]) for e in audit_trail.entries(con)] == [
            ("nightly_compliance", "apply", "change:5")
        ]
