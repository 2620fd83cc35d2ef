"""The governance assets, refreshed by every nightly run: the approved changes the override
layer applies, and the access review."""

import dagster as dg
import pandas as pd

from licensing_pipeline.contract.schemas import APPROVED_CHANGES, conform
from licensing_pipeline.governance import change_kinds
from licensing_pipeline.governance.access import review, review_for_people
from licensing_pipeline.metadata import preview
from licensing_pipeline.repository.resources import LicensingRepository

GOVERNANCE_GROUP = "governance"
UNUSED_DAYS = 90


@dg.asset(
    group_name=GOVERNANCE_GROUP,
    description=(
        "Who holds which role, since when, granted by whom, when each last acted (from the "
        f"audit trail), and grants unused for {UNUSED_DAYS} days: `access review`, nightly."
    ),
    kinds={"sql"},
)
def access_review(
    context: dg.AssetExecutionContext, repository: LicensingRepository
) -> dg.MaterializeResult:
    with repository.connect() as con:
        frame = review(con, UNUSED_DAYS)
    table = (
        review_for_people(frame).to_markdown(index=False)
        if not frame.empty
        else "_no roles granted_"
    )
    return dg.MaterializeResult(
        metadata={
            "grants": len(frame),
            "people": int(frame["person_id"].nunique()),
            "unused_grants": int(frame["unused"].sum()),
            "review": dg.MetadataValue.md(table),
        }
    )


@dg.asset(
    group_name=GOVERNANCE_GROUP,
    description=(
        "The approved change requests of the licensing repository, read once per run: "
        "effective_entitlements layers them on the contracts, the residency check allows "
        "their regions, the policy waives by their exceptions."
    ),
    kinds={"sql", "pandas"},
)
def approved_changes(
    context: dg.AssetExecutionContext, repository: LicensingRepository
) -> pd.DataFrame:
    with repository.connect() as con:
        frame = conform(change_kinds.approved_changes(con), APPROVED_CHANGES)
    kinds = frame["kind"].value_counts()
    context.add_output_metadata(
        {
            "approved": len(frame),
            **{f"kind_{kind}": int(n) for kind, n in kinds.items()},
            "preview": preview(frame),
        }
    )
    return frame
