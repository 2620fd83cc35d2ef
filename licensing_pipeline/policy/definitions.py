"""What the policy package adds: the decisions, enforcement, and re-evaluation on a new bundle."""

import dagster as dg

from licensing_pipeline.policy.assets import policy_assets
from licensing_pipeline.policy.bundle import PolicyResource
from licensing_pipeline.policy.enforcement import EnforcementFeed
from licensing_pipeline.policy.sensors import policy_bundle_changed, policy_reevaluation
from licensing_pipeline.settings import Settings


def defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=policy_assets,
        jobs=[policy_reevaluation],
        sensors=[policy_bundle_changed],
        resources={
            "policy": PolicyResource(
                path=str(settings.policy_path), database_url=settings.database_url
            ),
            "enforcement": EnforcementFeed(directory=str(settings.enforcement_dir)),
        },
    )
