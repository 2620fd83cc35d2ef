"""Change requests written as rows, until the propose/approve functions land
(``governance/changes.py``): what those functions would leave in ``change_requests``."""

import json
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from licensing_pipeline.governance.tables import change_requests

PROPOSED_AT = datetime(2026, 12, 1, 9, 0)
DECIDED_AT = datetime(2026, 12, 1, 15, 30)


def record_change(
    engine: sa.Engine,
    kind: str,
    payload: dict[str, Any],
    *,
    status: str = "approved",
    tenant_id: str | None = None,
    effective_from: date = date(2026, 12, 1),
    effective_until: date | None = None,
    proposed_by: str = "bob",
    decided_by: str = "carol",
    reason: str = "agreed with the customer",
) -> int:
    """One request (decided unless pending); its id."""
    decided = status != "pending"
    with engine.begin() as con:
        return int(
            con.execute(
                sa.insert(change_requests).values(
                    kind=kind,
                    tenant_id=tenant_id,
                    payload=json.dumps(payload),
                    reason=reason,
                    effective_from=effective_from,
                    effective_until=effective_until,
                    status=status,
                    proposed_by=proposed_by,
                    proposed_at=PROPOSED_AT,
                    decided_by=decided_by if decided else None,
                    decided_at=DECIDED_AT if decided else None,
                )
            ).inserted_primary_key[0]
        )


def approve_bundle(engine: sa.Engine, version: str, sha256: str, **kwargs: Any) -> int:
    return record_change(engine, "policy_version", {"version": version, "sha256": sha256}, **kwargs)
