"""The access review in the Dagster UI, refreshed by every nightly run."""

import dagster as dg

from licensing_pipeline.governance.access import review, review_for_people
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
