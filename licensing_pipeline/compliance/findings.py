"""From check results to findings, and from one night's findings to their history."""

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd

from licensing_pipeline.contract.schemas import (
    CHECK_RESULTS,
    COMPLIANCE_FINDINGS,
    conform,
    empty_frame,
)
from licensing_pipeline.policy.bundle import PolicyBundle, PolicyResource
from licensing_pipeline.policy.decisions import decide_severity_and_action, waived_mask
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.run_settings import RunSettings

KEY = ["tenant_id", "check", "subject", "period"]


def finding_fingerprint(tenant_id: str, check: str, subject: str, period: str) -> str:
    """Stable across nights and machines: the same breach is one finding."""
    key = "\x1f".join((tenant_id, check, subject, period))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def current_findings(
    check_results: Sequence[pd.DataFrame],
    *,
    bundle: PolicyBundle,
    exceptions: pd.DataFrame,
    as_of: date,
    catalog_version: str,
    detected_at: datetime,
) -> pd.DataFrame:
    """What tonight's check results amount to, before history is merged in."""
    frames = [conform(f, CHECK_RESULTS) for f in check_results if len(f)]
    if not frames:
        return empty_frame(COMPLIANCE_FINDINGS)
    results = pd.concat(frames, ignore_index=True)
    results = results.drop_duplicates(subset=KEY, keep="first").reset_index(drop=True)
    decided = decide_severity_and_action(results, bundle)
    decided["finding_id"] = [
        finding_fingerprint(*row) for row in decided[KEY].astype(str).itertuples(index=False)
    ]
    decided["status"] = "open"
    decided.loc[waived_mask(decided, exceptions, as_of), "status"] = "waived"
    decided["policy_version"] = bundle.version
    decided["catalog_version"] = catalog_version
    decided["first_detected_at"] = detected_at
    decided["last_detected_at"] = detected_at
    return conform(decided, COMPLIANCE_FINDINGS)


def merge_history(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Carry ``first_detected_at`` forward; a finding no longer seen becomes ``resolved``.

    A resolved finding that is seen again reopens with its original first detection.
    """
    previous = conform(previous, COMPLIANCE_FINDINGS)
    current = conform(current, COMPLIANCE_FINDINGS)
    earlier = current[["finding_id"]].merge(
        previous[["finding_id", "first_detected_at"]], on="finding_id", how="left"
    )["first_detected_at"]
    merged = current.copy()
    merged["first_detected_at"] = earlier.fillna(merged["first_detected_at"]).to_numpy()
    gone = previous[~previous["finding_id"].isin(current["finding_id"])].copy()
    gone["status"] = "resolved"
    combined = pd.concat([merged, gone], ignore_index=True) if len(gone) else merged
    return conform(combined, COMPLIANCE_FINDINGS).sort_values(
        ["tenant_id", "check", "subject", "period"], ignore_index=True
    )


def _count_table(frame: pd.DataFrame, by: list[str]) -> str:
    if frame.empty:
        return "_none_"
    counts = frame.groupby(by, dropna=False).size().reset_index(name="findings")
    return str(counts.to_markdown(index=False))


@dg.asset(
    group_name="compliance",
    description=(
        "Every finding of the data contract, with its severity and action under the policy "
        "bundle and its history; persisted in the licensing repository."
    ),
    kinds={"pandas", "sql"},
)
def compliance_findings(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    policy: PolicyResource,
    repository: LicensingRepository,
    catalog: pd.DataFrame,
    policy_exceptions: pd.DataFrame,
    quota_consumption: pd.DataFrame,
    feature_compliance: pd.DataFrame,
    contract_status_compliance: pd.DataFrame,
    residency_compliance: pd.DataFrame,
    config_drift: pd.DataFrame,
    billing_reconciliation: pd.DataFrame,
    usage_anomalies: pd.DataFrame,
) -> pd.DataFrame:
    bundle = policy.load()
    as_of = run_settings.as_of_date()
    catalog_version = str(catalog["catalog_version"].iloc[0]) if len(catalog) else ""
    tonight = current_findings(
        [
            quota_consumption,
            feature_compliance,
            contract_status_compliance,
            residency_compliance,
            config_drift,
            billing_reconciliation,
            usage_anomalies,
        ],
        bundle=bundle,
        exceptions=policy_exceptions,
        as_of=as_of,
        catalog_version=catalog_version,
        detected_at=datetime.now(UTC).replace(tzinfo=None, microsecond=0),
    )
    findings = merge_history(repository.load_findings(), tonight)
    repository.save_findings(
        findings,
        run_id=context.run_id,
        as_of=as_of,
        policy_version=bundle.version,
        catalog_version=catalog_version,
    )
    live = findings[findings["status"] != "resolved"]
    context.add_output_metadata(
        {
            "open": int((findings["status"] == "open").sum()),
            "waived": int((findings["status"] == "waived").sum()),
            "resolved": int((findings["status"] == "resolved").sum()),
            "critical_open": int(
                ((findings["status"] == "open") & (findings["severity"] == "critical")).sum()
            ),
            "policy_version": bundle.version,
            "catalog_version": catalog_version,
            "as_of": as_of.isoformat(),
            "by_check_and_severity": dg.MetadataValue.md(
                _count_table(live, ["check", "severity", "status"])
            ),
        }
    )
    return findings
