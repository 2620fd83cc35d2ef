from pathlib import Path

import pytest

from licensing_pipeline.contract.errors import ContractError
from licensing_pipeline.contract.schemas import CHECKS
from licensing_pipeline.policy.bundle import load_policy
from licensing_pipeline.settings import DEFAULT_POLICY_PATH


def test_default_bundle_decides_every_check_for_every_enforcement():
    bundle = load_policy(DEFAULT_POLICY_PATH)
    for check in CHECKS:
        for enforcement in ("hard", "soft", None):
            rule = bundle.decide(check, enforcement)
            assert rule.check == check


def test_hard_and_soft_quota_breaches_are_decided_differently():
    bundle = load_policy(DEFAULT_POLICY_PATH)
    hard = bundle.decide("quota_exceeded", "hard")
    soft = bundle.decide("quota_exceeded", "soft")
    assert (hard.severity, hard.action) == ("critical", "throttle")
    assert (soft.severity, soft.action) == ("warning", "warn")


def test_content_hash_changes_with_the_text(tmp_path: Path):
    original = load_policy(DEFAULT_POLICY_PATH)
    copy = tmp_path / "policy.yaml"
    copy.write_text(DEFAULT_POLICY_PATH.read_text() + "\n# a comment\n")
    assert load_policy(copy).content_hash != original.content_hash
    assert load_policy(copy).version == original.version


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ("action: throttle}", "action: obliterate}", "action must be one of"),
        ("check: usage_anomaly,", "check: usage_anomalie,", "check must be one of"),
        ("near_limit_ratio: 0.8", "near_limit_ratio: 1.5", "near_limit_ratio"),
        ("billing_tolerance: 0.01", "billing_tolerance: -1", "billing_tolerance"),
    ],
)
def test_bad_bundles_name_file_line_and_field(tmp_path: Path, replace, by, expected):
    text = DEFAULT_POLICY_PATH.read_text()
    assert replace in text
    bad = tmp_path / "policy.yaml"
    bad.write_text(text.replace(replace, by, 1))
    with pytest.raises(ContractError) as error:
        load_policy(bad)
    message = str(error.value)
    assert str(bad) in message
    assert "line " in message
    assert expected in message


def test_malformed_yaml_names_the_line(tmp_path: Path):
    bad = tmp_path / "policy.yaml"
    bad.write_text('version: "1"\nrules:\n  - {check: quota_exceeded\n')
    with pytest.raises(ContractError, match=r"line \d+"):
        load_policy(bad)
