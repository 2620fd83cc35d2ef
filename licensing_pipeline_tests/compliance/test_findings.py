from datetime import date, datetime

import pandas as pd

from licensing_pipeline.compliance.findings import (
    current_findings,
    finding_fingerprint,
    merge_history,
)
from licensing_pipeline.contract.schemas import (
    COMPLIANCE_FINDINGS,
    empty_frame,
)
from licensing_pipeline.policy.bundle import load_policy
from licensing_pipeline.settings import DEFAULT_POLICY_PATH
from licensing_pipeline_tests.policy.builders import exceptions, results

BUNDLE = load_policy(DEFAULT_POLICY_PATH)
NIGHT_1 = datetime(2026, 11, 1, 2, 0)
NIGHT_2 = datetime(2026, 11, 2, 2, 0)


QUOTA = {
    "tenant_id": "t-1",
    "check": "quota_exceeded",
    "subject": "api_calls",
    "period": "2026-10",
    "observed": 120.0,
    "allowed": 100.0,
    "enforcement": "hard",
    "details": "over",
}
FEATURE = {**QUOTA, "check": "feature_not_entitled", "subject": "sso", "enforcement": "soft"}


def night(rows, *, at, as_of=date(2026, 11, 1), exc=None):
    return current_findings(
        [results(*rows)],
        bundle=BUNDLE,
        exceptions=exc if exc is not None else exceptions(),
        as_of=as_of,
        catalog_version="2026-10-01",
        detected_at=at,
    )


def test_findings_have_exactly_the_contract_columns_and_policy_decisions():
    found = night([QUOTA, FEATURE], at=NIGHT_1)
    assert list(found.columns) == list(COMPLIANCE_FINDINGS)
    by_check = found.set_index("check")
    assert by_check.loc["quota_exceeded", "severity"] == "critical"
    assert by_check.loc["quota_exceeded", "action"] == "throttle"
    assert by_check.loc["feature_not_entitled", "severity"] == "warning"
    assert set(found["status"]) == {"open"}
    assert set(found["policy_version"]) == {BUNDLE.version}
    assert set(found["catalog_version"]) == {"2026-10-01"}


def test_fingerprint_depends_on_tenant_check_subject_period_only():
    a = finding_fingerprint("t-1", "quota_exceeded", "api_calls", "2026-10")
    assert a == finding_fingerprint("t-1", "quota_exceeded", "api_calls", "2026-10")
    assert a != finding_fingerprint("t-1", "quota_exceeded", "api_calls", "2026-11")
    assert a != finding_fingerprint("t-2", "quota_exceeded", "api_calls", "2026-10")
    changed_figures = night([{**QUOTA, "observed": 999.0}], at=NIGHT_1)
    assert changed_figures["finding_id"].iloc[0] == a


def test_a_breach_seen_again_keeps_first_detection_and_a_gone_one_resolves():
    first = merge_history(empty_frame(COMPLIANCE_FINDINGS), night([QUOTA, FEATURE], at=NIGHT_1))
    second = merge_history(first, night([QUOTA], at=NIGHT_2)).set_index("check")
    assert second.loc["quota_exceeded", "first_detected_at"] == pd.Timestamp(NIGHT_1)
    assert second.loc["quota_exceeded", "last_detected_at"] == pd.Timestamp(NIGHT_2)
    assert second.loc["quota_exceeded", "status"] == "open"
    assert second.loc["feature_not_entitled", "status"] == "resolved"
    assert second.loc["feature_not_entitled", "last_detected_at"] == pd.Timestamp(NIGHT_1)


def test_a_resolved_finding_that_recurs_reopens_with_its_history():
    first = merge_history(empty_frame(COMPLIANCE_FINDINGS), night([QUOTA], at=NIGHT_1))
    gone = merge_history(first, night([], at=NIGHT_2))
    assert list(gone["status"]) == ["resolved"]
    back = merge_history(gone, night([QUOTA], at=datetime(2026, 11, 3)))
    assert list(back["status"]) == ["open"]
    assert back["first_detected_at"].iloc[0] == pd.Timestamp(NIGHT_1)
    assert len(back) == 1


def test_exception_waives_until_its_expiry_day_inclusive():
    exc = exceptions(
        {
            "exception_id": "x-1",
            "tenant_id": "t-1",
            "check": "quota_exceeded",
            "subject": "api_calls",
            "approved_by": "cfo@example.com",
            "expires_on": "2026-11-01",
            "reason": "migration",
        }
    )
    on_expiry = night([QUOTA, FEATURE], at=NIGHT_1, as_of=date(2026, 11, 1), exc=exc)
    after = night([QUOTA, FEATURE], at=NIGHT_1, as_of=date(2026, 11, 2), exc=exc)
    assert on_expiry.set_index("check")["status"].to_dict() == {
        "quota_exceeded": "waived",
        "feature_not_entitled": "open",
    }
    assert set(after["status"]) == {"open"}


def test_exception_with_empty_subject_covers_every_subject_of_the_check():
    exc = exceptions(
        {
            "exception_id": "x-2",
            "tenant_id": "t-1",
            "check": "feature_not_entitled",
            "subject": "",
            "approved_by": "cso@example.com",
            "expires_on": "2027-01-01",
            "reason": "pilot",
        }
    )
    found = night([QUOTA, FEATURE], at=NIGHT_1, exc=exc).set_index("check")
    assert found.loc["feature_not_entitled", "status"] == "waived"
    assert found.loc["quota_exceeded", "status"] == "open"
