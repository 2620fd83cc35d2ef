"""Which approved change a policy bundle runs under, and the gate that refuses one without.

An approved ``policy_version`` change names a bundle by its declared version and its content
hash (``policy/bundle.py``); a run's bundle is approved when such a change is in force on the
as-of day. The production profile refuses to run an unapproved bundle
(``LICENSING_REQUIRE_APPROVED_POLICY``); the embedded profile runs it and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.governance.change_kinds import approved_changes
from licensing_pipeline.settings import Settings


class PolicyNotApproved(Exception):
    """The run's bundle has no approved change in force; the message says how to propose it."""


def approving_change(approved: pd.DataFrame, version: str, sha256: str, as_of: date) -> int | None:
    """The newest approved ``policy_version`` request in force on ``as_of`` that names this
    version and hash (``approved``: ``approved_changes``), or None."""
    day = pd.Timestamp(as_of)
    newest: int | None = None
    for row in approved[approved["kind"] == "policy_version"].itertuples(index=False):
        payload = json.loads(row.payload)
        in_force = row.effective_from <= day and (
            pd.isna(row.effective_until) or day <= row.effective_until
        )
        if in_force and payload.get("version") == version and payload.get("sha256") == sha256:
            newest = int(row.request_id)
    return newest


@dataclass(frozen=True)
class Approval:
    """What the gate found for one run's bundle."""

    version: str
    sha256: str
    request_id: int | None  # the approving change, None when there is none

    def problem(self, policy_path: Path | str) -> str:
        """One line for an unapproved bundle: what it is and the command that proposes it."""
        return (
            f"policy bundle {self.version} (sha256 {self.sha256}) has no approved "
            "policy_version change in force; propose it with `licensing-pipeline changes "
            f"propose policy_version --bundle {policy_path}` and have an approver approve it"
        )


def bundle_approval(engine: sa.Engine, version: str, sha256: str, as_of: date) -> Approval:
    with engine.connect() as connection:
        approved = approved_changes(connection)
    return Approval(version, sha256, approving_change(approved, version, sha256, as_of))


def run_approval(settings: Settings, as_of: date) -> Approval:
    """The approval of the bundle a run on ``as_of`` would decide under; raises
    ``PolicyNotApproved`` when the settings require one and there is none."""
    from licensing_pipeline.policy.bundle import resolve_bundle
    from licensing_pipeline.repository.resources import checked_engine

    bundle = resolve_bundle(settings.policy_path, settings.database_url).bundle
    approval = bundle_approval(
        checked_engine(settings.database_url), bundle.version, bundle.content_hash, as_of
    )
    if approval.request_id is None and settings.require_approved_policy:
        raise PolicyNotApproved(f"run refused: {approval.problem(settings.policy_path)}")
    return approval
