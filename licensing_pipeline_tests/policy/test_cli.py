"""`licensing-pipeline policy ...` on a small home: validate, explain, diff, exceptions."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from licensing_pipeline import cli
from licensing_pipeline.settings import DEFAULT_POLICY_PATH
from licensing_pipeline_tests.policy.builders import result, results
from licensing_pipeline_tests.policy.graph import Home

SOFT_QUOTA_RULE = """\
    enforcement: [soft, none]
    severity: warning
    action: warn
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    home = Home(tmp_path / "home")
    home.root.mkdir()
    home.seed(
        results(
            result(tenant_id="t-1"),  # hard: critical / throttle
            result(tenant_id="t-2", enforcement="soft"),  # soft: warning / warn
            result(tenant_id="t-3", check="residency_violation", subject="us-east-1"),
        )
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY_PATH.read_text())
    monkeypatch.setenv("LICENSING_HOME", str(home.root))
    monkeypatch.setenv("LICENSING_POLICY_PATH", str(policy))
    for name in ("LICENSING_DATABASE_URL", "LICENSING_WAREHOUSE_PATH", "LICENSING_AS_OF"):
        monkeypatch.delenv(name, raising=False)
    assert home.materialize(policy).success
    yield home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_the_configured_bundle_and_a_bad_one(
    home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    code, out, _ = run(capsys, "policy", "validate")
    assert code == 0 and "OK" in out and "2026.12.0" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        DEFAULT_POLICY_PATH.read_text()
        + "  - {id: extra, check: usage_anomaly, severity: info, action: notify}\n"
    )
    code, _, err = run(capsys, "policy", "validate", str(bad))
    assert code == cli.EXIT_USAGE
    assert str(bad) in err and "line " in err and "'extra' and rule 'usage-anomaly'" in err
    assert "Traceback" not in err


def test_diff_shows_the_findings_a_new_bundle_would_change(
    home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    new = tmp_path / "new.yaml"
    new.write_text(
        DEFAULT_POLICY_PATH.read_text()
        .replace('version: "2026.12.0"', 'version: "2026.12.1"')
        .replace(SOFT_QUOTA_RULE, SOFT_QUOTA_RULE.replace("action: warn", "action: throttle"))
    )
    old = str(DEFAULT_POLICY_PATH)
    code, out, _ = run(capsys, "policy", "diff", old, str(new))
    assert code == 0
    assert "rule changed: quota-exceeded-soft (action)" in out
    assert "1 of 3 finding(s) would change" in out
    code, out, _ = run(capsys, "policy", "diff", old, str(new), "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["tenant_id"], r["old_action"], r["new_action"]) for r in rows] == [
        ("t-2", "warn", "throttle")
    ]
    assert rows[0]["old_rule_id"] == rows[0]["new_rule_id"] == "quota-exceeded-soft"
    code, out, _ = run(capsys, "policy", "diff", old, old)
    assert "No finding changes severity or action" in out
    # a dry run: nothing was decided under the new bundle
    assert set(home.repository.load_finding_records()["policy_version"]) == {"2026.12.0"}


def test_explain_names_the_rule_that_fired_and_why(home: Home, capsys: pytest.CaptureFixture[str]):
    code, out, _ = run(capsys, "policy", "explain", "--tenant", "t-2", "--check", "quota_exceeded")
    assert code == 0
    assert "by rule quota-exceeded-soft" in out
    assert "[FIRED ] quota-exceeded-soft" in out
    assert "[skipped] quota-exceeded-hard" in out and "fails enforcement" in out
    assert "customer sees: api_calls usage of 120" in out
    code, out, _ = run(capsys, "policy", "explain", "--tenant", "t-9", "--check", "quota_exceeded")
    assert code == 0 and "No finding" in out


def test_exceptions_in_the_repository_waive_from_the_next_run(
    home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    args = ["policy", "exceptions", "add", "--tenant", "t-3", "--check", "residency_violation"]
    args += ["--approved-by", "dpo@vendor.example.com", "--reason", "EU region launch"]
    code, _, err = run(capsys, *args, "--expires-on", "2020-01-01")
    assert code == cli.EXIT_USAGE and "in the past" in err
    code, out, _ = run(capsys, *args, "--expires-on", "2099-12-31", "--id", "MX-1")
    assert code == 0 and "MX-1" in out
    code, out, _ = run(capsys, "policy", "exceptions", "list")
    assert "MX-1" in out and "dpo@vendor.example.com" in out
    assert home.materialize(tmp_path / "policy.yaml").success
    records = home.repository.load_finding_records().set_index("tenant_id")
    assert tuple(records.loc["t-3", ["status", "exception_id"]]) == ("waived", "MX-1")
    code, out, _ = run(capsys, "policy", "exceptions", "revoke", "MX-1")
    assert code == 0
    assert home.materialize(tmp_path / "policy.yaml").success
    assert home.repository.load_finding_records().set_index("tenant_id").loc["t-3", "status"] == (
        "open"
    )
    code, _, err = run(capsys, "policy", "exceptions", "revoke", "MX-1")
    assert code == cli.EXIT_USAGE and "no active exception" in err
