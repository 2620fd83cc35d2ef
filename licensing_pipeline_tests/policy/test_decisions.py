"""The policy's decisions on small frames: streaks, escalation, grace, segments, exceptions."""

from datetime import date
from pathlib import Path

import pandas as pd

from licensing_pipeline.contract.schemas import FINDING_RECORDS, POLICY_EVALUATIONS, conform
from licensing_pipeline.policy.decisions import (
    consecutive_periods,
    explain,
    matching_exceptions,
    waived_mask,
)
from licensing_pipeline_tests.policy.builders import (
    AS_OF,
    CATALOG,
    DEFAULT,
    bundle,
    evaluate,
    exceptions,
    months,
    result,
    results,
    tenants,
)


def by_period(evaluated: pd.DataFrame, column: str) -> dict[str, object]:
    return dict(zip(evaluated["period"], evaluated[column], strict=True))


# --- consecutive periods ------------------------------------------------------------------


def test_consecutive_periods_count_back_to_the_last_gap():
    frame = results(
        *months("2026-06", 2),  # June, July
        *months("2026-09", 3),  # September .. November (August missing)
        result(subject="seats", period="2026-11"),
    )
    streak = consecutive_periods(frame, None)
    assert list(streak) == [1, 2, 1, 2, 3, 1]


def test_history_extends_a_streak_and_resolved_findings_do_not():
    history = conform(
        pd.DataFrame(
            [
                {**result(period="2026-08"), "status": "open"},
                {**result(period="2026-09"), "status": "waived"},
                {**result(subject="seats", period="2026-10"), "status": "resolved"},
            ]
        ),
        FINDING_RECORDS,
    )
    frame = results(result(period="2026-10"), result(subject="seats", period="2026-11"))
    assert list(consecutive_periods(frame, history)) == [3, 1]


def test_daily_periods_count_days_and_cross_month_ends():
    frame = results(
        result(check="usage_anomaly", period="2026-10-31"),
        result(check="usage_anomaly", period="2026-11-01"),
        result(check="usage_anomaly", period="2026-11-03"),
    )
    assert list(consecutive_periods(frame, None)) == [1, 2, 1]


# --- rules --------------------------------------------------------------------------------


def test_hard_and_soft_enforcement_are_decided_differently():
    evaluated = evaluate(
        results(
            result(tenant_id="t-hard", enforcement="hard"),
            result(tenant_id="t-soft", enforcement="soft"),
            result(tenant_id="t-none", enforcement=None),
        )
    )
    decided = evaluated.set_index("tenant_id")[["severity", "action", "rule_id"]]
    assert tuple(decided.loc["t-hard"]) == ("critical", "throttle", "quota-exceeded-hard")
    assert tuple(decided.loc["t-soft"]) == ("warning", "warn", "quota-exceeded-soft")
    assert tuple(decided.loc["t-none"]) == ("warning", "warn", "quota-exceeded-soft")


SEGMENTED = """\
  - id: quota-default
    check: quota_exceeded
    severity: warning
    action: warn
  - id: quota-enterprise
    priority: 10
    check: quota_exceeded
    segment: enterprise
    severity: info
    action: notify
  - id: quota-eu-far-over
    priority: 20
    check: quota_exceeded
    jurisdiction: EU
    ratio: {at_least: 2}
    severity: critical
    action: throttle
"""


def test_segment_jurisdiction_and_ratio_rules_by_priority(tmp_path: Path):
    policy = bundle(tmp_path, SEGMENTED)
    people = tenants(
        {
            "t-ent": ("Enterprise", "us-east-1"),
            "t-smb": ("smb", "us-east-1"),
            "t-eu": ("enterprise", "eu-west-1"),
        }
    )
    evaluated = evaluate(
        results(
            result(tenant_id="t-ent"),
            result(tenant_id="t-smb"),
            result(tenant_id="t-eu", observed=150.0),
            result(tenant_id="t-eu", subject="seats", observed=250.0),
            result(tenant_id="t-unknown"),
        ),
        policy,
        tenants=people,
        catalog=CATALOG,
    )
    fired = dict(
        zip(evaluated["tenant_id"] + "/" + evaluated["subject"], evaluated["rule_id"], strict=True)
    )
    assert fired == {
        "t-ent/api_calls": "quota-enterprise",
        "t-smb/api_calls": "quota-default",
        "t-eu/api_calls": "quota-enterprise",  # 1.5x: the EU rule needs 2x
        "t-eu/seats": "quota-eu-far-over",  # 2.5x in the EU
        "t-unknown/api_calls": "quota-default",
    }
    facts = evaluated.set_index(["tenant_id", "subject"])
    assert facts.loc[("t-eu", "seats"), "jurisdiction"] == "EU"
    assert facts.loc[("t-ent", "api_calls"), "segment"] == "enterprise"
    assert facts.loc[("t-eu", "seats"), "ratio"] == 2.5


def test_no_matching_rule_gets_the_fallback(tmp_path: Path):
    policy = bundle(
        tmp_path,
        "  - {id: hard-only, check: quota_exceeded, enforcement: hard, severity: critical, "
        "action: throttle}\n",
    )
    evaluated = evaluate(results(result(enforcement="soft")), policy)
    assert tuple(evaluated.iloc[0][["rule_id", "severity", "action"]]) == (
        "fallback",
        "warning",
        "notify",
    )


ESCALATING = """\
  - id: quota-escalates
    check: quota_exceeded
    severity: warning
    action: warn
    escalate_every: 2
    escalate_up_to: suspend
"""


def test_a_persisting_breach_escalates_one_step_per_interval(tmp_path: Path):
    evaluated = evaluate(results(*months("2026-05", 7)), bundle(tmp_path, ESCALATING))
    assert by_period(evaluated, "action") == {
        "2026-05": "warn",
        "2026-06": "warn",
        "2026-07": "throttle",
        "2026-08": "throttle",
        "2026-09": "suspend",
        "2026-10": "suspend",
        "2026-11": "suspend",  # capped: the ladder ends here
    }
    assert by_period(evaluated, "escalation_steps")["2026-09"] == 2
    assert set(evaluated["rule_action"]) == {"warn"}


def test_escalation_stops_at_the_cap_and_restarts_after_a_gap(tmp_path: Path):
    capped = ESCALATING.replace("escalate_every: 2", "escalate_every: 1").replace(
        "up_to: suspend", "up_to: throttle"
    )
    frame = results(*months("2026-06", 3), *months("2026-10", 2))  # gap in September
    evaluated = evaluate(frame, bundle(tmp_path, capped))
    assert by_period(evaluated, "action") == {
        "2026-06": "warn",
        "2026-07": "throttle",
        "2026-08": "throttle",
        "2026-10": "warn",
        "2026-11": "throttle",
    }


def test_escalation_counts_periods_kept_in_the_repository(tmp_path: Path):
    history = conform(
        pd.DataFrame([{**r, "status": "open"} for r in months("2026-08", 3)]), FINDING_RECORDS
    )
    evaluated = evaluate(
        results(result(period="2026-11")), bundle(tmp_path, ESCALATING), history=history
    )
    assert evaluated.iloc[0]["consecutive_periods"] == 4
    assert evaluated.iloc[0]["action"] == "throttle"


def test_grace_periods_notify_first_then_apply_the_rule(tmp_path: Path):
    graced = """\
  - id: quota-graced
    check: quota_exceeded
    severity: critical
    action: throttle
    grace_periods: 2
    escalate_every: 1
"""
    evaluated = evaluate(results(*months("2026-08", 4)), bundle(tmp_path, graced))
    assert by_period(evaluated, "action") == {
        "2026-08": "notify",
        "2026-09": "notify",
        "2026-10": "throttle",  # grace over: the rule's own action
        "2026-11": "suspend",  # then escalation, counted from the end of grace
    }
    assert by_period(evaluated, "in_grace") == {
        "2026-08": True,
        "2026-09": True,
        "2026-10": False,
        "2026-11": False,
    }
    assert set(evaluated["severity"]) == {"critical"}


def test_consecutive_periods_as_a_condition(tmp_path: Path):
    tiers = """\
  - {id: new, check: quota_exceeded, consecutive_periods: {below: 3}, severity: warning, action: warn}
  - {id: chronic, check: quota_exceeded, consecutive_periods: {at_least: 3}, severity: critical, action: suspend}
"""
    evaluated = evaluate(results(*months("2026-09", 3)), bundle(tmp_path, tiers))
    assert by_period(evaluated, "rule_id") == {
        "2026-09": "new",
        "2026-10": "new",
        "2026-11": "chronic",
    }


# --- exceptions ---------------------------------------------------------------------------


def test_an_exception_applies_on_its_expiry_day_and_stops_the_day_after():
    frame = results(result())
    granted = exceptions({"expires_on": "2026-11-20"})
    on_the_day = evaluate(frame, exceptions=granted, as_of=date(2026, 11, 20))
    day_after = evaluate(frame, exceptions=granted, as_of=date(2026, 11, 21))
    assert tuple(on_the_day.iloc[0][["status", "exception_id"]]) == ("waived", "EX-1")
    assert day_after.iloc[0]["status"] == "open"
    assert pd.isna(day_after.iloc[0]["exception_id"])
    # a waived finding keeps its decision: it stays visible with severity and action
    assert tuple(on_the_day.iloc[0][["severity", "action"]]) == ("critical", "throttle")


def test_exceptions_are_scoped_to_tenant_check_and_subject():
    frame = results(
        result(),
        result(subject="seats"),
        result(tenant_id="t-2"),
        result(check="quota_near_limit"),
    )
    granted = exceptions({"subject": "api_calls"})
    assert list(waived_mask(frame, granted, AS_OF)) == [True, False, False, False]
    wildcard = exceptions({"exception_id": "EX-*", "subject": "*"})
    assert list(waived_mask(frame, wildcard, AS_OF)) == [True, True, False, False]


def test_an_exact_exception_wins_over_a_wildcard():
    granted = exceptions(
        {"exception_id": "EX-any", "subject": "", "expires_on": "2027-06-30"},
        {"exception_id": "EX-exact", "subject": "api_calls", "expires_on": "2026-12-31"},
    )
    assert list(matching_exceptions(results(result()), granted, AS_OF)) == ["EX-exact"]


def test_an_exception_without_a_named_approver_waives_nothing():
    granted = exceptions({"approved_by": ""}, {"exception_id": "EX-2", "approved_by": None})
    assert not waived_mask(results(result()), granted, AS_OF).any()


# --- what is recorded ---------------------------------------------------------------------


def test_every_evaluation_records_the_bundle_version_hash_and_rule():
    evaluated = evaluate(results(result(), result(check="usage_anomaly", period="2026-11-19")))
    assert list(evaluated.columns) == list(POLICY_EVALUATIONS)
    assert set(evaluated["policy_version"]) == {DEFAULT.version}
    assert set(evaluated["policy_hash"]) == {DEFAULT.content_hash}
    assert list(evaluated["rule_id"]) == ["quota-exceeded-hard", "usage-anomaly"]


def test_customer_details_never_carry_the_policy_logic():
    frame = results(result(), result(enforcement="soft", tenant_id="t-2"))
    evaluated = evaluate(frame)
    assert list(evaluated["details"]) == list(frame["details"])
    for details, reason, rule_id in evaluated[["details", "reason", "rule_id"]].itertuples(
        index=False
    ):
        assert rule_id in reason  # the internal field says which rule fired ...
        assert rule_id not in details and "priority" not in details  # ... details never do


def test_explain_lists_each_rule_of_the_check_and_why(tmp_path: Path):
    policy = bundle(tmp_path, SEGMENTED)
    evaluated = evaluate(
        results(result(tenant_id="t-ent")),
        policy,
        tenants=tenants({"t-ent": ("enterprise", "us-east-1")}),
        catalog=CATALOG,
    )
    lines = explain(evaluated.iloc[0], policy)
    text = "\n".join(lines)
    assert "segment=enterprise" in lines[0] and "jurisdiction=US" in lines[0]
    assert "[FIRED ] quota-enterprise" in text
    assert "[matched] quota-default" in text
    assert "[skipped] quota-eu-far-over" in text and "fails jurisdiction, ratio" in text
