"""What each kind of change request carries, and the approved changes a run layers on.

A request's ``payload`` is a JSON object whose fields depend on its kind. Each field names a
vocabulary the proposal is checked against (the catalog's metrics, features, regions, plans
and add-ons; the contract statuses; the finding checks), so a change can only name things
that exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.governance.tables import CHANGE_KINDS, change_requests


@dataclass(frozen=True)
class Kind:
    name: str
    needs_tenant: bool
    # payload field -> vocabulary: metric, feature, region, plan, addon, status, check,
    # limit (a number >= 0, or null for unlimited), subject (free text, may be empty or "*"),
    # version (a policy bundle version) or sha256 (64 hex digits)
    fields: MappingProxyType[str, str]
    summary: str


def _kind(name: str, needs_tenant: bool, summary: str, **fields: str) -> Kind:
    return Kind(name, needs_tenant, MappingProxyType(fields), summary)


KINDS: MappingProxyType[str, Kind] = MappingProxyType(
    {
        k.name: k
        for k in (
            _kind(
                "quota_override", True, "replace one metric's limit", metric="metric", limit="limit"
            ),
            _kind("feature_grant", True, "allow a feature", feature="feature"),
            _kind("feature_revoke", True, "withdraw a feature", feature="feature"),
            _kind("region_allow", True, "allow processing in a region", region="region"),
            _kind("plan_change", True, "move to another plan", plan="plan"),
            _kind("addon_add", True, "add an add-on", addon="addon"),
            _kind("addon_remove", True, "remove an add-on", addon="addon"),
            _kind("contract_status", True, "set the contract status", status="status"),
            _kind("exception", True, "waive a check's findings", check="check", subject="subject"),
            _kind(
                "policy_version",
                False,
                "approve a policy bundle version",
                version="version",
                sha256="sha256",
            ),
        )
    }
)
assert tuple(KINDS) == CHANGE_KINDS


def change_subject(request_id: int) -> str:
    """The audit entries' subject for one change request (SQL functions write the same)."""
    return f"change:{int(request_id)}"


def change_label(request_id: int) -> str:
    """A change request for people: 'change #7'."""
    return f"change #{int(request_id)}"


APPROVED_COLUMNS = [
    "request_id",
    "kind",
    "tenant_id",
    "payload",
    "reason",
    "effective_from",
    "effective_until",
    "proposed_by",
    "decided_by",
    "decided_at",
]


def approved_changes(connection: sa.Connection) -> pd.DataFrame:
    """Every approved request, oldest first: the override layer picks those in force per day
    (``effective_from`` <= day <= ``effective_until``, an empty until is open-ended); on one
    subject a later request wins over an earlier one."""
    query = (
        sa.select(*(change_requests.c[c] for c in APPROVED_COLUMNS))
        .where(change_requests.c.status == "approved")
        .order_by(change_requests.c.request_id)
    )
    frame = pd.DataFrame(connection.execute(query).all(), columns=APPROVED_COLUMNS)
    for column in ("effective_from", "effective_until"):
        frame[column] = pd.to_datetime(frame[column])
    return frame
