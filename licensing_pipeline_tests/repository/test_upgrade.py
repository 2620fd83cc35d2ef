"""A repository created before a release added columns keeps working (no migrations yet)."""

from datetime import date

import sqlalchemy as sa

from licensing_pipeline.contract.schemas import COMPLIANCE_FINDINGS, FINDING_RECORDS
from licensing_pipeline.repository.resources import LicensingRepository, make_engine

OLD_TABLE = """
CREATE TABLE compliance_findings (
    finding_id VARCHAR(32) PRIMARY KEY, tenant_id VARCHAR(200) NOT NULL,
    "check" VARCHAR(64) NOT NULL, subject VARCHAR(200) NOT NULL, period VARCHAR(10) NOT NULL,
    observed FLOAT, allowed FLOAT, severity VARCHAR(16) NOT NULL, action VARCHAR(16) NOT NULL,
    status VARCHAR(16) NOT NULL, policy_version VARCHAR(64) NOT NULL,
    catalog_version VARCHAR(64) NOT NULL, first_detected_at TIMESTAMP NOT NULL,
    last_detected_at TIMESTAMP NOT NULL, details TEXT NOT NULL
)
"""
OLD_ROW = """
INSERT INTO compliance_findings VALUES ('f1', 't-1', 'quota_exceeded', 'api_calls', '2026-10',
    120, 100, 'critical', 'throttle', 'open', '2026.10.0', 'c1', '2026-11-01 02:00:00',
    '2026-11-01 02:00:00', 'over')
"""


def test_missing_internal_columns_are_added_on_start_up(repository_url: str):
    engine = make_engine(repository_url)
    with engine.begin() as con:
        con.execute(sa.text(OLD_TABLE))
        con.execute(sa.text(OLD_ROW))
    engine.dispose()
    repo = LicensingRepository(database_url=repository_url)
    findings = repo.load_findings()
    assert list(findings.columns) == list(COMPLIANCE_FINDINGS)
    assert findings["finding_id"].tolist() == ["f1"]
    records = repo.load_finding_records()
    assert list(records.columns) == list(FINDING_RECORDS)
    assert records[["policy_hash", "rule_id", "exception_id"]].isna().all().all()
    records.loc[0, ["policy_hash", "rule_id"]] = ["abc", "quota-exceeded-hard"]
    repo.save_findings(
        records, run_id="r1", as_of=date(2026, 11, 1), policy_version="p", catalog_version="c1"
    )
    assert repo.load_finding_records().loc[0, "rule_id"] == "quota-exceeded-hard"
