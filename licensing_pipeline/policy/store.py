"""The policy's state in the licensing repository: applied bundles, runs, managed exceptions
and the enforcement in force. Functions take an engine (``LicensingRepository.engine()``)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.contract.errors import ContractError
from licensing_pipeline.contract.schemas import (
    CHECKS,
    ENFORCEMENT_ACTIONS,
    POLICY_EXCEPTIONS,
    conform,
    empty_frame,
)
from licensing_pipeline.policy.bundle import PolicyBundle, parse_policy_texts
from licensing_pipeline.policy.tables import (
    enforcement_changes,
    enforcement_state,
    managed_exceptions,
    policy_bundles,
    policy_runs,
)


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


# --- bundles ------------------------------------------------------------------------------


def remember_bundle(engine: sa.Engine, bundle: PolicyBundle, *, at: datetime | None = None) -> None:
    """Record that ``bundle`` was applied (it becomes the last good one)."""
    at = at or now()
    with engine.begin() as con:
        updated = con.execute(
            sa.update(policy_bundles)
            .where(policy_bundles.c.content_hash == bundle.content_hash)
            .values(last_applied_at=at)
        ).rowcount
        if not updated:
            con.execute(
                sa.insert(policy_bundles).values(
                    content_hash=bundle.content_hash,
                    version=bundle.version,
                    source=bundle.path,
                    files=json.dumps(dict(bundle.files), ensure_ascii=False),
                    first_applied_at=at,
                    last_applied_at=at,
                )
            )


def _bundle_from_row(row: sa.RowMapping) -> PolicyBundle:
    files = json.loads(row["files"])
    return parse_policy_texts(
        list(files.items()), content_hash=row["content_hash"], source=row["source"]
    )


def last_good_bundle(engine: sa.Engine) -> PolicyBundle | None:
    with engine.connect() as con:
        row = (
            con.execute(
                sa.select(policy_bundles).order_by(policy_bundles.c.last_applied_at.desc()).limit(1)
            )
            .mappings()
            .first()
        )
    return _bundle_from_row(row) if row else None


def bundle_by_hash(engine: sa.Engine, content_hash: str) -> PolicyBundle | None:
    with engine.connect() as con:
        row = (
            con.execute(
                sa.select(policy_bundles).where(policy_bundles.c.content_hash == content_hash)
            )
            .mappings()
            .first()
        )
    return _bundle_from_row(row) if row else None


# --- runs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyRun:
    run_id: str
    finished_at: datetime
    as_of: date
    data_dir: str
    policy_version: str
    policy_hash: str
    configured_hash: str | None
    fallback_error: str | None


def record_run(engine: sa.Engine, run: PolicyRun) -> None:
    with engine.begin() as con:
        con.execute(sa.delete(policy_runs).where(policy_runs.c.run_id == run.run_id))
        con.execute(sa.insert(policy_runs).values(**run.__dict__))


def last_run(engine: sa.Engine) -> PolicyRun | None:
    with engine.connect() as con:
        row = (
            con.execute(sa.select(policy_runs).order_by(policy_runs.c.finished_at.desc()).limit(1))
            .mappings()
            .first()
        )
    return PolicyRun(**dict(row)) if row else None


# --- managed exceptions -------------------------------------------------------------------


def add_exception(
    engine: sa.Engine,
    *,
    tenant_id: str,
    check: str,
    subject: str,
    approved_by: str,
    expires_on: date,
    reason: str,
    today: date,
    created_by: str | None = None,
    exception_id: str | None = None,
) -> str:
    """Grant an exception; time-limited, approved by a named person, scoped to one check."""
    problems = []
    if not tenant_id.strip():
        problems.append("--tenant is required")
    if check not in CHECKS:
        problems.append(f"--check must be one of {', '.join(CHECKS)}, got {check!r}")
    if not approved_by.strip():
        problems.append("--approved-by must name the person who approved the exception")
    if not reason.strip():
        problems.append("--reason is required")
    if expires_on < today:
        problems.append(f"--expires-on {expires_on.isoformat()} is in the past")
    if problems:
        raise ContractError("; ".join(problems), field="exception")
    exception_id = exception_id or f"MX-{today:%Y%m%d}-{secrets.token_hex(3)}"
    with engine.begin() as con:
        exists = con.execute(
            sa.select(managed_exceptions.c.exception_id).where(
                managed_exceptions.c.exception_id == exception_id
            )
        ).first()
        if exists:
            raise ContractError(f"exception {exception_id} already exists", field="exception_id")
        con.execute(
            sa.insert(managed_exceptions).values(
                exception_id=exception_id,
                tenant_id=tenant_id.strip(),
                check=check,
                subject=subject.strip(),
                approved_by=approved_by.strip(),
                expires_on=expires_on,
                reason=reason.strip(),
                created_at=now(),
                created_by=created_by,
            )
        )
    return exception_id


def revoke_exception(engine: sa.Engine, exception_id: str, *, revoked_by: str | None) -> bool:
    with engine.begin() as con:
        return bool(
            con.execute(
                sa.update(managed_exceptions)
                .where(
                    (managed_exceptions.c.exception_id == exception_id)
                    & managed_exceptions.c.revoked_at.is_(None)
                )
                .values(revoked_at=now(), revoked_by=revoked_by)
            ).rowcount
        )


def list_exceptions(engine: sa.Engine, *, include_revoked: bool = False) -> pd.DataFrame:
    query = sa.select(managed_exceptions).order_by(managed_exceptions.c.exception_id)
    if not include_revoked:
        query = query.where(managed_exceptions.c.revoked_at.is_(None))
    with engine.connect() as con:
        rows = con.execute(query).mappings().all()
    columns = [c.name for c in managed_exceptions.columns]
    return pd.DataFrame([dict(r) for r in rows], columns=columns)


def managed_exception_frame(engine: sa.Engine) -> pd.DataFrame:
    """Unrevoked managed exceptions in the layout of ``exceptions.csv`` (expired ones too:
    expiry is decided against the run's as-of, like the file's)."""
    frame = list_exceptions(engine)
    if frame.empty:
        return empty_frame(POLICY_EXCEPTIONS)
    return conform(frame, POLICY_EXCEPTIONS)


# --- enforcement --------------------------------------------------------------------------

STATE_COLUMNS = [c.name for c in enforcement_state.columns]
CHANGE_COLUMNS = [c.name for c in enforcement_changes.columns]


def load_enforcement_state(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as con:
        rows = con.execute(sa.select(enforcement_state)).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=STATE_COLUMNS)


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    out = frame.astype(object)
    return list(out.where(out.notna(), None).to_dict("records"))


def save_enforcement(
    engine: sa.Engine,
    current: pd.DataFrame,
    changes: pd.DataFrame,
    *,
    run_id: str,
    as_of: date,
    at: datetime | None = None,
) -> None:
    """Replace the state and append the changes in one transaction."""
    at = at or now()
    previous = load_enforcement_state(engine)
    since = {
        (t, c, a): s
        for t, c, a, s in previous[["tenant_id", "capability", "action", "since"]].itertuples(
            index=False, name=None
        )
    }
    state = conform(current, ENFORCEMENT_ACTIONS).drop(columns=["as_of"])
    state["details"] = state["details"].fillna("")
    state["since"] = [
        since.get((t, c, a), at)
        for t, c, a in state[["tenant_id", "capability", "action"]].itertuples(
            index=False, name=None
        )
    ]
    state["updated_at"] = at
    change_rows = changes.assign(run_id=run_id, changed_at=at, as_of=as_of)
    change_rows = change_rows[[c for c in CHANGE_COLUMNS if c != "seq"]]
    with engine.begin() as con:
        con.execute(sa.delete(enforcement_state))
        if len(state):
            con.execute(sa.insert(enforcement_state), _records(state[STATE_COLUMNS]))
        if len(change_rows):
            con.execute(sa.insert(enforcement_changes), _records(change_rows))


def load_changes(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as con:
        rows = (
            con.execute(sa.select(enforcement_changes).order_by(enforcement_changes.c.seq))
            .mappings()
            .all()
        )
    return pd.DataFrame([dict(r) for r in rows], columns=CHANGE_COLUMNS)
