"""The policy assets (group ``policy``): thin wrappers over ``decisions`` and ``enforcement``.

``policy_evaluations`` sits between the check families and ``compliance_findings``;
``enforcement_actions`` publishes the product's feed after the findings are saved.
"""

# No ``from __future__ import annotations``: Dagster inspects the annotations of asset
# functions (context, resources, inputs) at definition time and rejects strings.

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd

from licensing_pipeline.compliance.assets import CHECK_TABLES
from licensing_pipeline.compliance.findings import compliance_findings
from licensing_pipeline.compliance.overrides import change_exceptions
from licensing_pipeline.contract.errors import ContractError
from licensing_pipeline.contract.schemas import ACTIONS, POLICY_EXCEPTIONS, conform
from licensing_pipeline.governance.policy_approval import Approval, bundle_approval
from licensing_pipeline.metadata import preview
from licensing_pipeline.policy import store
from licensing_pipeline.policy.bundle import BundleResolution, PolicyResource
from licensing_pipeline.policy.decisions import combine_results, evaluate_policy
from licensing_pipeline.policy.enforcement import (
    EnforcementFeed,
    catalog_capabilities,
    current_enforcement,
    enforcement_changes,
    flagd_document,
)
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.run_config import RunSettings

GROUP = "policy"
BUNDLE_CHECK = "configured_bundle_in_force"


def approval_text(approval: Approval) -> str:
    if approval.request_id is not None:
        return f"approved by change #{approval.request_id}"
    return "not approved (allowed: LICENSING_REQUIRE_APPROVED_POLICY is off)"


def bundle_metadata(resolution: BundleResolution, approval: Approval) -> dict[str, Any]:
    bundle = resolution.bundle
    out: dict[str, Any] = {
        "policy_version": bundle.version,
        "policy_hash": bundle.content_hash,
        "policy_approval": approval_text(approval),
        "policy_source": bundle.path,
        "policy_rules": len(bundle.rules),
        "bundle_in_force": "last good (configured bundle rejected)"
        if resolution.fallback
        else "configured",
    }
    if resolution.error is not None:
        out["configured_bundle_error"] = dg.MetadataValue.md(f"```\n{resolution.error}\n```")
        out["configured_hash"] = resolution.configured_hash or "unreadable"
    return out


@dg.asset(
    group_name=GROUP,
    kinds={"pandas"},
    description=(
        "Every check result with the policy's decision: the rule that fired, severity, the "
        "action after grace and escalation, the exception that waives it, and the bundle's "
        "version and hash. Internal: customers see only compliance_findings.details."
    ),
    ins={table: dg.AssetIn() for table in CHECK_TABLES},
    check_specs=[
        dg.AssetCheckSpec(
            BUNDLE_CHECK,
            asset="policy_evaluations",
            description=(
                "The configured policy bundle validated and is in force (WARN: it was rejected "
                "and the last good bundle decided this run)."
            ),
        )
    ],
)
def policy_evaluations(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    policy: PolicyResource,
    repository: LicensingRepository,
    catalog: pd.DataFrame,
    tenants: pd.DataFrame,
    policy_exceptions: pd.DataFrame,
    approved_changes: pd.DataFrame,
    **check_results: pd.DataFrame,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    try:
        resolution = policy.resolve()
    except ContractError as exc:  # no last good bundle to fall back on
        raise dg.Failure(
            description=f"{exc}\n(No earlier bundle to keep in force: fix the bundle and rerun.)",
            metadata={"file": exc.file or "", "line": exc.line or 0},
        ) from None
    bundle = resolution.bundle
    as_of = run_settings.as_of_date()
    engine = repository.engine()
    approval = bundle_approval(engine, bundle.version, bundle.content_hash, as_of)
    if approval.request_id is None:
        context.log.warning(f"Deciding under an unapproved bundle: {approval.problem(bundle.path)}")
    store.remember_bundle(engine, bundle)
    managed = store.managed_exception_frame(engine)
    governed = change_exceptions(approved_changes, as_of)
    exceptions = pd.concat(
        [conform(policy_exceptions, POLICY_EXCEPTIONS), managed, governed], ignore_index=True
    )
    evaluations = evaluate_policy(
        combine_results([check_results[table] for table in CHECK_TABLES]),
        bundle,
        exceptions=exceptions,
        as_of=as_of,
        tenants=tenants,
        catalog=catalog,
        history=repository.load_finding_records(),
        catalog_version=str(catalog["catalog_version"].iloc[0]) if len(catalog) else "",
    )
    if resolution.error is not None:
        context.log.error(
            f"The configured policy bundle was rejected; the last good bundle {bundle.label} "
            f"decided this run instead. Fix it and the next run applies it:\n{resolution.error}"
        )
    rules = evaluations["rule_id"].value_counts()
    metadata: dict[str, Any] = {
        **bundle_metadata(resolution, approval),
        "evaluations": len(evaluations),
        "waived": int((evaluations["status"] == "waived").sum()),
        "escalated": int((evaluations["escalation_steps"].fillna(0) > 0).sum()),
        "in_grace": int(evaluations["in_grace"].fillna(False).sum()),
        "fallback_rule": int(rules.get("fallback", 0)),
        "managed_exceptions": len(managed),
        "change_exceptions": len(governed),
        **{f"action_{a}": int((evaluations["action"] == a).sum()) for a in ACTIONS},
        "by_rule": preview(rules.rename_axis("rule_id").reset_index(name="findings")),
    }
    yield dg.Output(evaluations, metadata=metadata)
    yield dg.AssetCheckResult(
        check_name=BUNDLE_CHECK,
        passed=resolution.error is None,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"Policy bundle {bundle.label} in force."
            if resolution.error is None
            else f"Configured policy bundle rejected; the last good bundle {bundle.label} "
            f"decided this run. {resolution.error}"
        ),
        metadata={
            "policy_version": bundle.version,
            "policy_hash": bundle.content_hash,
            **(
                {"error": dg.MetadataValue.md(f"```\n{resolution.error}\n```")}
                if resolution.error is not None
                else {}
            ),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"pandas", "json"},
    deps=[compliance_findings],
    description=(
        "The current action per tenant and capability (open breaches of the current period), "
        "published as a flagd flag file and a JSON Lines change log under "
        "LICENSING_ENFORCEMENT_DIR, after the findings are saved."
    ),
)
def enforcement_actions(
    context: dg.AssetExecutionContext,
    run_settings: RunSettings,
    policy: PolicyResource,
    repository: LicensingRepository,
    enforcement: EnforcementFeed,
    catalog: pd.DataFrame,
    policy_evaluations: pd.DataFrame,
) -> pd.DataFrame:
    resolution = policy.resolve()
    bundle = resolution.bundle
    as_of = run_settings.as_of_date()
    current = current_enforcement(policy_evaluations, as_of)
    engine = repository.engine()
    previous = store.load_enforcement_state(engine)
    changes = enforcement_changes(
        previous, current, policy_version=bundle.version, policy_hash=bundle.content_hash
    )
    store.save_enforcement(engine, current, changes, run_id=context.run_id, as_of=as_of)
    document = flagd_document(
        current,
        catalog_capabilities(catalog),
        policy_version=bundle.version,
        policy_hash=bundle.content_hash,
        as_of=as_of,
        approved_change=bundle_approval(
            engine, bundle.version, bundle.content_hash, as_of
        ).request_id,
    )
    rewritten = enforcement.publish(document, store.load_changes(engine))
    store.record_run(
        engine,
        store.PolicyRun(
            run_id=context.run_id,
            finished_at=store.now(),
            as_of=as_of,
            data_dir=str(run_settings.data_path().resolve()),
            policy_version=bundle.version,
            policy_hash=bundle.content_hash,
            configured_hash=resolution.configured_hash,
            fallback_error=str(resolution.error) if resolution.error else None,
        ),
    )
    context.add_output_metadata(
        {
            "tenants_with_actions": int(current["tenant_id"].nunique()),
            **{f"action_{a}": int((current["action"] == a).sum()) for a in ACTIONS},
            "changes": len(changes),
            "flag_file": dg.MetadataValue.path(str(enforcement.flags_path)),
            "flag_file_rewritten": rewritten,
            "change_log": dg.MetadataValue.path(str(enforcement.changes_path)),
            "policy_version": bundle.version,
            "policy_hash": bundle.content_hash,
            "changed": preview(changes[["tenant_id", "capability", "previous_action", "action"]]),
        }
    )
    return current


policy_assets = [policy_evaluations, enforcement_actions]
