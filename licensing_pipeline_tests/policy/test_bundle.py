"""Loading and validating policy bundles: every problem names its file and line."""

import hashlib
from pathlib import Path

import pytest

from licensing_pipeline.contract.errors import ContractError
from licensing_pipeline.contract.schemas import CHECKS
from licensing_pipeline.policy.bundle import (
    PolicyValidationError,
    bundle_content_hash,
    load_policy,
)
from licensing_pipeline.settings import DEFAULT_POLICY_PATH
from licensing_pipeline_tests.policy.builders import HEADER, bundle, write

QUOTA_RULE = """\
  - id: quota
    check: quota_exceeded
    severity: critical
    action: throttle
"""


def test_default_bundle_decides_every_check_for_every_enforcement_with_a_rule():
    bundle = load_policy(DEFAULT_POLICY_PATH)
    assert bundle.uncovered_checks() == []
    for check in CHECKS:
        for enforcement in ("hard", "soft", None):
            rule = bundle.decide(check, enforcement)
            assert check in rule.checks
            assert rule.id != "fallback"


def test_default_bundle_keeps_the_historical_decisions():
    bundle = load_policy(DEFAULT_POLICY_PATH)
    expected = {
        ("quota_exceeded", "hard"): ("critical", "throttle"),
        ("quota_exceeded", "soft"): ("warning", "warn"),
        ("quota_exceeded", None): ("warning", "warn"),
        ("quota_near_limit", "hard"): ("info", "notify"),
        ("feature_not_entitled", "hard"): ("critical", "throttle"),
        ("feature_not_entitled", "soft"): ("warning", "warn"),
        ("inactive_contract_usage", None): ("critical", "suspend"),
        ("residency_violation", "soft"): ("critical", "suspend"),
        ("config_feature_not_entitled", "hard"): ("critical", "throttle"),
        ("config_feature_not_entitled", "soft"): ("warning", "warn"),
        ("config_feature_missing", "hard"): ("warning", "notify"),
        ("config_quota_mismatch", "soft"): ("warning", "warn"),
        ("config_policy_outdated", "hard"): ("warning", "notify"),
        ("unbilled_usage", "hard"): ("warning", "notify"),
        ("overbilled_usage", "soft"): ("critical", "notify"),
        ("usage_anomaly", "hard"): ("warning", "notify"),
    }
    for (check, enforcement), outcome in expected.items():
        rule = bundle.decide(check, enforcement)
        assert (rule.severity, rule.action) == outcome, (check, enforcement)
        assert rule.grace_periods == 0 and rule.escalate_every == 0


def test_every_default_rule_is_documented():
    bundle = load_policy(DEFAULT_POLICY_PATH)
    assert all(rule.description for rule in bundle.rules)


def test_version_is_declared_and_hash_is_the_files_sha256(tmp_path: Path):
    path = write(tmp_path, HEADER + QUOTA_RULE)
    loaded = load_policy(path)
    assert loaded.version == "test-1"
    assert loaded.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert bundle_content_hash(path) == loaded.content_hash
    path.write_text(path.read_text() + "# a comment changes the hash, not the version\n")
    assert load_policy(path).content_hash != loaded.content_hash
    assert load_policy(path).version == loaded.version


def test_a_folder_is_one_bundle_and_its_hash_covers_every_file(tmp_path: Path):
    folder = tmp_path / "policies"
    folder.mkdir()
    write(folder, HEADER + QUOTA_RULE, "00-settings.yaml")
    write(
        folder,
        "rules:\n  - {id: residency, check: residency_violation, severity: critical, "
        "action: suspend}\n",
        "residency.yaml",
    )
    loaded = load_policy(folder)
    assert [r.id for r in loaded.rules] == ["quota", "residency"]
    assert loaded.rule("residency").file.endswith("residency.yaml")
    before = loaded.content_hash
    assert bundle_content_hash(folder) == before
    (folder / "residency.yaml").write_text(
        (folder / "residency.yaml").read_text().replace("suspend", "throttle")
    )
    assert load_policy(folder).content_hash != before


def test_settings_belong_in_the_file_with_the_version(tmp_path: Path):
    folder = tmp_path / "policies"
    folder.mkdir()
    write(folder, HEADER + QUOTA_RULE, "a.yaml")
    write(folder, 'version: "2"\nrules: []\n', "b.yaml")
    with pytest.raises(ContractError, match="version is already declared") as error:
        load_policy(folder)
    assert "b.yaml" in str(error.value) and "line 1" in str(error.value)


def _error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ContractError) as error:
        load_policy(path)
    message = str(error.value)
    assert str(path) in message
    return message


def test_malformed_yaml_names_file_and_line(tmp_path: Path):
    message = _error(tmp_path, 'version: "1"\nrules:\n  - {check: quota_exceeded\n')
    assert "not valid YAML" in message and "line 4" in message


def test_unknown_check_names_file_line_and_field(tmp_path: Path):
    text = HEADER + QUOTA_RULE.replace("quota_exceeded", "quota_exceded")
    message = _error(tmp_path, text)
    assert "line 5" in message and "rules.0.check" in message
    assert "check must be one of" in message and "'quota_exceded'" in message


def test_action_outside_the_ladder(tmp_path: Path):
    message = _error(tmp_path, HEADER + QUOTA_RULE.replace("throttle", "obliterate"))
    assert "line 7" in message and "rules.0.action" in message
    assert "notify, warn, throttle, suspend" in message


@pytest.mark.parametrize(
    ("condition", "field"),
    [
        ("    ratio: {at_least: -0.5}\n", "rules.0.ratio.at_least"),
        ("    grace_periods: -1\n", "rules.0.grace_periods"),
        ("    escalate_every: -2\n", "rules.0.escalate_every"),
        ("    consecutive_periods: {at_least: 0}\n", "rules.0.consecutive_periods.at_least"),
    ],
)
def test_thresholds_below_zero(tmp_path: Path, condition: str, field: str):
    message = _error(tmp_path, HEADER + QUOTA_RULE + condition)
    assert "line 8" in message and field in message


def test_negative_billing_tolerance(tmp_path: Path):
    text = HEADER.replace("rules:", "thresholds: {billing_tolerance: -1}\nrules:") + QUOTA_RULE
    message = _error(tmp_path, text)
    assert "line 3" in message and "thresholds.billing_tolerance" in message


@pytest.mark.parametrize(
    ("setting", "field", "words"),
    [
        ("anomaly: {ratio: 0.5}", "anomaly.ratio", "must be at least 1, got 0.5"),
        ("anomaly: {baseline_days: 2.5}", "anomaly.baseline_days", "must be a whole number"),
        ("thresholds: {near_limit_ratio: 1.5}", "near_limit_ratio", "must be between 0 and 1"),
        ("anomaly: {colour: red}", "anomaly.colour", "unknown field 'colour' (known: ratio,"),
        ("defaults: {escalate_up_to: x}", "defaults.escalate_up_to", "must be one of notify"),
    ],
)
def test_settings_out_of_range(tmp_path: Path, setting: str, field: str, words: str):
    message = _error(tmp_path, HEADER.replace("rules:", f"{setting}\nrules:") + QUOTA_RULE)
    assert "line 3" in message and field in message and words in message


def test_a_rule_names_its_check(tmp_path: Path):
    rule = "  - {id: q, check: null, severity: info, action: notify}\n"
    message = _error(tmp_path, HEADER + rule)
    assert "line 4" in message and "rules.0.check" in message and "must name its check" in message


def test_two_rules_matching_the_same_findings_without_priority(tmp_path: Path):
    second = """\
  - id: enterprise-quota
    check: quota_exceeded
    segment: enterprise
    severity: warning
    action: warn
"""
    message = _error(tmp_path, HEADER + QUOTA_RULE + second)
    assert "line 8" in message  # the second rule, which names the first and its line
    assert "'enterprise-quota' and rule 'quota'" in message and "line 4" in message
    assert "priority" in message


def test_a_priority_resolves_the_overlap(tmp_path: Path):
    second = """\
  - id: enterprise-quota
    priority: 10
    check: quota_exceeded
    segment: enterprise
    severity: warning
    action: warn
"""
    loaded = bundle(tmp_path, QUOTA_RULE + second)
    assert loaded.decide("quota_exceeded", "hard", segment="Enterprise").id == "enterprise-quota"
    assert loaded.decide("quota_exceeded", "hard", segment="smb").id == "quota"


def test_disjoint_conditions_do_not_overlap(tmp_path: Path):
    rules = """\
  - {id: low, check: quota_exceeded, ratio: {below: 1.5}, severity: warning, action: warn}
  - {id: high, check: quota_exceeded, ratio: {at_least: 1.5}, severity: critical, action: throttle}
  - {id: hard, check: feature_not_entitled, enforcement: hard, severity: critical, action: throttle}
  - {id: soft, check: feature_not_entitled, enforcement: [soft, none], severity: warning, action: warn}
"""
    loaded = bundle(tmp_path, rules)
    assert loaded.decide("quota_exceeded", "hard", ratio=1.49).id == "low"
    assert loaded.decide("quota_exceeded", "hard", ratio=1.5).id == "high"
    assert loaded.decide("feature_not_entitled", None).id == "soft"


def test_unknown_fields_and_duplicate_ids(tmp_path: Path):
    odd = "  - {id: odd, check: usage_anomaly, severity: info, action: notify, colour: red}\n"
    text = HEADER + QUOTA_RULE + QUOTA_RULE.replace("throttle", "suspend") + odd
    with pytest.raises(PolicyValidationError) as error:
        load_policy(write(tmp_path, text))
    message = str(error.value)
    assert "duplicate rule id 'quota'" in message and "line 8" in message
    assert "unknown field 'colour'" in message and "line 12" in message
    assert len(error.value.errors) >= 2  # every problem at once, not one per attempt


def test_escalation_cap_below_the_action(tmp_path: Path):
    message = _error(tmp_path, HEADER + QUOTA_RULE + "    escalate_up_to: warn\n")
    assert "below the rule's action" in message and "line 8" in message


def test_a_bundle_needs_a_version_and_a_fallback(tmp_path: Path):
    assert "version" in _error(tmp_path, "rules: []\n")
    assert "fallback" in _error(tmp_path, 'version: "1"\nrules: []\n')


def test_missing_path_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ContractError, match="policy bundle not found"):
        load_policy(tmp_path / "nowhere.yaml")
