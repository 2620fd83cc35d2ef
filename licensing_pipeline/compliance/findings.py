"""From policy evaluations to findings, and from one night's findings to their history."""

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.compliance.assets import GROUP
from licensing_pipeline.compliance.fingerprint import KEY, finding_fingerprint
from licensing_pipeline.contract.schemas import (
    COMPLIANCE_FINDINGS,
    FINDING_RECORDS,
    POLICY_EVALUATIONS,
    conform,
)
from licensing_pipeline.governance.applied import record_applied, run_actor
from licensing_pipeline.governance.change_kinds import change_label
from licensing_pipeline.policy.bundle import PolicyBundle, PolicyResource
from licensing_pipeline.policy.decisions import combine_results, evaluate_policy
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.run_config import RunSettings

__all__ = ["KEY", "compliance_findings", "current_findings", "finding_fingerprint", "merge_history"]


def finding_records(evaluations: pd.DataFrame, detected_at: datetime) -> pd.DataFrame:
    """Tonight's findings, with the internal columns (policy hash, rule, exception)."""
    found = conform(evaluations, POLICY_EVALUATIONS)
    found["first_detected_at"] = detected_at
    found["last_detected_at"] = detected_at
    return conform(found, FINDING_RECORDS)


def current_findings(
    check_results: Sequence[pd.DataFrame],
    *,
    bundle: PolicyBundle,
    exceptions: pd.DataFrame,
    as_of: date,
    catalog_version: str,
    detected_at: datetime,
    tenants: pd.DataFrame | None = None,
    catalog: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """What tonight's check results amount to, before history is merged in (contract columns)."""
    evaluations = evaluate_policy(
        combine_results(check_results),
        bundle,
        exceptions=exceptions,
        as_of=as_of,
        tenants=tenants,
        catalog=catalog,
        history=history,
        catalog_version=catalog_version,
    )
    return conform(finding_records(evaluations, detected_at), COMPLIANCE_FINDINGS)


def merge_history(
    previous: pd.DataFrame,
    current: pd.DataFrame,
    schema: Mapping[str, str] = COMPLIANCE_FINDINGS,
) -> pd.DataFrame:
    """Carry ``first_detected_at`` forward; a finding no longer seen becomes ``resolved``.

    A resolved finding that is seen again reopens with its original first detection.
    ``schema`` is the contract's columns, or ``FINDING_RECORDS`` to keep the internal ones.
    """
    previous = conform(previous, schema)
    current = conform(current, schema)
    earlier = current[["finding_id"]].merge(
        previous[["finding_id", "first_detected_at"]], on="finding_id", how="left"
    )["first_detected_at"]
    merged = current.copy()
    merged["first_detected_at"] = earlier.fillna(merged["first_detected_at"]).to_numpy()
    gone = previous[~previous["finding_id"].isin(current["finding_id"])].copy()
    gone["status"] = "resolved"
    combined = pd.concat([merged, gone], ignore_index=True) if len(gone) else merged
    return conform(combined, schema).sort_values(
        ["tenant_id", "check", "subject", "period"], ignore_index=True
    )


def _count_table(frame: pd.DataFrame, by: list[str]) -> str:
    if frame.empty:
        return "_none_"
    counts = frame.groupby(by, dropna=False).size().reset_index(name="findings")
    return str(counts.to_markdown(index=False))


@dg.asset(
    group_name=GROUP,
    description=(
        "Every finding of the data contract, with its severity and action from "
        "policy_evaluations and its history; persisted in the licensing repository (with the "
        "policy hash and the rule that fired, internal columns this output does not show)."
    ),
    kinds={"pandas", "sql"},
)
def compliance_findings(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    policy: PolicyResource,
    repository: LicensingRepository,
    catalog: pd.DataFrame,
    policy_evaluations: pd.DataFrame,
    approved_changes: pd.DataFrame,
) -> pd.DataFrame:
    bundle = policy.load()
    as_of = run_settings.as_of_date()
    evaluations = conform(policy_evaluations, POLICY_EVALUATIONS)
    catalog_version = str(catalog["catalog_version"].iloc[0]) if len(catalog) else ""
    tonight = finding_records(evaluations, datetime.now(UTC).replace(tzinfo=None, microsecond=0))
    records = merge_history(repository.load_finding_records(), tonight, FINDING_RECORDS)
    applied: list[int] = []

    def record_apply(con: sa.Connection) -> None:
        actor = run_actor(con, repository.acting_user)
        applied.extend(record_applied(con, approved_changes, as_of, actor))

    repository.save_findings(
        records,
        run_id=context.run_id,
        as_of=as_of,
        policy_version=bundle.version,
        catalog_version=catalog_version,
        also=record_apply,
    )
    findings = conform(records, COMPLIANCE_FINDINGS)
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
            "policy_hash": bundle.content_hash,
            "catalog_version": catalog_version,
            "as_of": as_of.isoformat(),
            "changes_applied": ", ".join(change_label(i) for i in applied) or "none",
            "by_check_and_severity": dg.MetadataValue.md(
                _count_table(live, ["check", "severity", "status"])
            ),
        }
    )
    return findings
