"""The enforcement feed: current actions per capability, changes, and the flagd flag file."""

import json
from datetime import date
from pathlib import Path

import pandas as pd

from licensing_pipeline.policy.enforcement import (
    EnforcementFeed,
    catalog_capabilities,
    current_enforcement,
    enforcement_changes,
    flagd_document,
)
from licensing_pipeline_tests.policy.builders import (
    AS_OF,
    CATALOG,
    DEFAULT,
    evaluate,
    exceptions,
    result,
    results,
)
from licensing_pipeline_tests.policy.flagd import flagd_problems


def evaluations(*rows: dict, granted: pd.DataFrame | None = None) -> pd.DataFrame:
    return evaluate(results(*rows), exceptions=exceptions() if granted is None else granted)


NOVEMBER = [
    result(tenant_id="t-1", check="quota_near_limit", observed=90.0),  # notify
    result(tenant_id="t-1", check="config_quota_mismatch", enforcement="soft"),  # warn
    result(tenant_id="t-1", check="feature_not_entitled", subject="sso"),  # throttle
    result(tenant_id="t-2", check="inactive_contract_usage", subject="contract"),  # suspend
    result(tenant_id="t-3", check="residency_violation", subject="us-east-1"),  # suspend
    result(tenant_id="t-4", period="2026-10"),  # last month: not enforced today
    result(tenant_id="t-5", check="usage_anomaly", period="2026-11-20", enforcement="soft"),
    result(tenant_id="t-6"),  # waived below
]


def current() -> pd.DataFrame:
    granted = exceptions({"tenant_id": "t-6", "expires_on": "2026-12-31"})
    return current_enforcement(evaluations(*NOVEMBER, granted=granted), AS_OF)


def test_the_strongest_open_action_of_the_current_period_per_capability():
    actions = current().set_index(["tenant_id", "capability"])["action"].to_dict()
    assert actions == {
        ("t-1", "metric.api_calls"): "warn",  # warn beats notify on the same metric
        ("t-1", "feature.sso"): "throttle",
        ("t-2", "account"): "suspend",
        ("t-3", "region.us-east-1"): "suspend",
        ("t-5", "metric.api_calls"): "notify",  # a daily check counts on the as-of day
    }


def test_changes_list_new_lifted_and_changed_actions_only():
    before = current()
    after = current_enforcement(
        evaluations(
            result(tenant_id="t-1", check="quota_near_limit", observed=90.0),
            result(tenant_id="t-1", check="feature_not_entitled", subject="sso"),
            result(tenant_id="t-9", check="inactive_contract_usage", subject="contract"),
        ),
        AS_OF,
    )
    changes = enforcement_changes(before, after, policy_version="v2", policy_hash="h2")
    moves = {
        (t, c): (p, a)
        for t, c, p, a in changes[["tenant_id", "capability", "previous_action", "action"]]
        .astype(str)
        .itertuples(index=False)
    }
    assert moves == {
        ("t-1", "metric.api_calls"): ("warn", "notify"),
        ("t-2", "account"): ("suspend", "none"),
        ("t-3", "region.us-east-1"): ("suspend", "none"),
        ("t-5", "metric.api_calls"): ("notify", "none"),
        ("t-9", "account"): ("none", "suspend"),
    }
    lifted = changes[changes["action"] == "none"]
    assert set(lifted["policy_version"]) == {"v2"} and set(lifted["policy_hash"]) == {"h2"}


def _document(actions: pd.DataFrame) -> dict:
    return flagd_document(
        actions,
        catalog_capabilities(CATALOG),
        policy_version=DEFAULT.version,
        policy_hash=DEFAULT.content_hash,
        as_of=AS_OF,
    )


def test_the_flag_file_is_valid_flagd_json():
    document = json.loads(json.dumps(_document(current())))
    assert flagd_problems(document) == []
    assert document["$schema"] == "https://flagd.dev/schema/v0/flags.json"
    flags = document["flags"]
    # every capability of the catalog is a flag, enforced or not, so the product never misses one
    assert {"account", "feature.sso", "feature.audit_log", "metric.api_calls"} <= set(flags)
    assert "targeting" not in flags["feature.audit_log"]
    for flag in flags.values():
        assert flag["state"] == "ENABLED"
        assert flag["defaultVariant"] == "none"
        assert list(flag["variants"]) == ["none", "notify", "warn", "throttle", "suspend"]
    assert document["metadata"]["version"] == DEFAULT.version
    assert document["metadata"]["policyHash"] == DEFAULT.content_hash
    assert "approvedChange" not in document["metadata"]  # an unapproved bundle names none


def test_the_flag_file_names_the_change_that_approved_its_bundle():
    document = flagd_document(
        current(),
        catalog_capabilities(CATALOG),
        policy_version=DEFAULT.version,
        policy_hash=DEFAULT.content_hash,
        as_of=AS_OF,
        approved_change=7,
    )
    assert flagd_problems(json.loads(json.dumps(document))) == []
    assert document["metadata"]["approvedChange"] == 7
    assert document["metadata"]["version"] == DEFAULT.version


def evaluate_flag(flag: dict, tenant: str) -> str:
    """A minimal flagd evaluation of our targeting shape: nested if / in / var."""
    node = flag.get("targeting")
    while isinstance(node, dict):
        condition, then, otherwise = node["if"]
        tenants = condition["in"][1]
        node = then if tenant in tenants else otherwise
    return node if node is not None else flag["defaultVariant"]


def test_targeting_gives_each_tenant_its_action_and_everyone_else_none():
    flags = _document(current())["flags"]
    assert evaluate_flag(flags["metric.api_calls"], "t-1") == "warn"
    assert evaluate_flag(flags["metric.api_calls"], "t-5") == "notify"
    assert evaluate_flag(flags["metric.api_calls"], "t-4") == "none"
    assert evaluate_flag(flags["account"], "t-2") == "suspend"
    assert evaluate_flag(flags["feature.sso"], "t-1") == "throttle"
    assert evaluate_flag(flags["feature.sso"], "t-2") == "none"


def test_the_validator_rejects_what_flagd_rejects():
    good = _document(current())
    bad_default = json.loads(json.dumps(good))
    bad_default["flags"]["account"]["defaultVariant"] = "off"
    assert any("defaultVariant" in p for p in flagd_problems(bad_default))
    bad_state = json.loads(json.dumps(good))
    bad_state["flags"]["account"]["state"] = "enabled"
    assert flagd_problems(bad_state)
    no_variants = json.loads(json.dumps(good))
    del no_variants["flags"]["account"]["variants"]
    assert flagd_problems(no_variants)
    bad_target = json.loads(json.dumps(good))
    bad_target["flags"]["account"]["targeting"]["if"][1] = "ban"
    assert any("not a variant" in p for p in flagd_problems(bad_target))
    long_if = json.loads(json.dumps(good))
    long_if["flags"]["account"]["targeting"]["if"].append("warn")
    assert any("if takes 3" in p for p in flagd_problems(long_if))


def test_publish_writes_both_files_and_leaves_an_unchanged_flag_file_alone(tmp_path: Path):
    feed = EnforcementFeed(directory=str(tmp_path / "enforcement"))
    document = _document(current())
    changes = pd.DataFrame(
        [
            {
                "seq": 1,
                "run_id": "r1",
                "changed_at": pd.Timestamp("2026-11-21 02:00"),
                "as_of": date(2026, 11, 20),
                "tenant_id": "t-2",
                "capability": "account",
                "previous_action": "none",
                "action": "suspend",
                "severity": "critical",
                "check": "inactive_contract_usage",
                "finding_id": "f1",
                "rule_id": "inactive-contract-usage",
                "policy_version": DEFAULT.version,
                "policy_hash": DEFAULT.content_hash,
                "details": "320 usage events in 2026-11 while contract C-1 was paused.",
            }
        ]
    )
    assert feed.publish(document, changes) is True
    assert json.loads(feed.flags_path.read_text()) == document
    line = json.loads(feed.changes_path.read_text())
    assert (line["seq"], line["previous"], line["action"]) == (1, "none", "suspend")
    assert "rule_id" not in line  # the feed may reach customers: no internal policy logic
    assert feed.publish(document, changes) is False
    assert not list(feed.flags_path.parent.glob(".*.tmp"))
