"""The licensing repository: where findings outlive the run that found them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.contract.schemas import (
    COMPLIANCE_FINDINGS,
    FINDING_RECORDS,
    conform,
    empty_frame,
)
from licensing_pipeline.repository.engines import shared_engine
from licensing_pipeline.repository.history import finding_changes
from licensing_pipeline.repository.schema import ensure_current
from licensing_pipeline.repository.tables import (
    HISTORY_TRACKED,
    compliance_findings,
    finding_history,
    finding_runs,
)
from licensing_pipeline.repository.tenancy import tenant_findings, tenant_session


def checked_engine(database_url: str) -> sa.Engine:
    """This process's engine on a repository whose schema is at head (an empty one is migrated
    first). Raises ``SchemaNotCurrent`` for a schema that is behind; checked once per process
    and URL."""
    engine = shared_engine(database_url)
    ensure_current(engine)
    return engine


class LicensingRepository(dg.ConfigurableResource):
    """Any SQLAlchemy URL (``LICENSING_DATABASE_URL``); SQLite under LICENSING_HOME by default.

    Its schema is Alembic's (``licensing-pipeline db upgrade``); see ``schema.py``.
    """

    database_url: str
    # LICENSING_USER: who the run acts as on the embedded profile (PostgreSQL: the login).
    acting_user: str | None = None

    def engine(self) -> sa.Engine:
        """The process's engine (schema checked), for functions that take one; not to dispose."""
        return checked_engine(self.database_url)

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        with self.engine().connect() as con:
            yield con

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.engine().begin() as con:
            yield con

    @contextmanager
    def tenant_session(self, tenant_id: str) -> Iterator[sa.Connection]:
        """A read-only connection that sees only this tenant's rows (PostgreSQL RLS)."""
        with tenant_session(self.engine(), tenant_id) as con:
            yield con

    def load_tenant_findings(self, tenant_id: str) -> pd.DataFrame:
        """One tenant's findings, as the reader role sees them under row-level security."""
        return tenant_findings(self.engine(), tenant_id)

    def load_finding_runs(self, limit: int = 30) -> pd.DataFrame:
        """The latest evaluations (as-of day, open / waived / resolved counts), oldest first."""
        with self.connect() as con:
            rows = con.execute(
                sa.select(finding_runs)
                .order_by(finding_runs.c.finished_at.desc(), finding_runs.c.run_id.desc())
                .limit(limit)
            ).mappings()
            frame = pd.DataFrame([dict(r) for r in rows], columns=list(finding_runs.c.keys()))
        return frame.iloc[::-1].reset_index(drop=True)

    def load_finding_history(self) -> pd.DataFrame:
        """Every finding_history row (what each finding was after each run that changed it)."""
        with self.connect() as con:
            rows = con.execute(sa.select(finding_history)).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=list(finding_history.c.keys()))

    def load_findings(self) -> pd.DataFrame:
        """The findings with exactly the data contract's columns."""
        return conform(self.load_finding_records(), COMPLIANCE_FINDINGS)

    def load_finding_records(self) -> pd.DataFrame:
        """The findings with the internal columns too (policy hash, rule, exception)."""
        with self.connect() as con:
            rows = con.execute(sa.select(compliance_findings)).mappings().all()
        if not rows:
            return empty_frame(FINDING_RECORDS)
        return conform(pd.DataFrame([dict(r) for r in rows]), FINDING_RECORDS)

    def save_findings(
        self,
        findings: pd.DataFrame,
        *,
        run_id: str,
        as_of: date,
        policy_version: str,
        catalog_version: str,
        also: Callable[[sa.Connection], object] | None = None,
    ) -> None:
        """Replace the findings in one transaction: readers never see half a run, and the
        findings that are new or changed are appended to ``finding_history`` with them.

        Internal columns (``FINDING_RECORDS``) are kept when ``findings`` has them. ``also``
        writes more in the same transaction (the audit trail's ``apply`` entries).
        """
        frame = conform(findings, FINDING_RECORDS).astype(object)
        frame = frame.where(frame.notna(), None)
        records = frame.to_dict("records")
        counts = findings["status"].value_counts().to_dict() if len(findings) else {}
        finished_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        with self.begin() as con:
            changes = finding_changes(frame, _latest_history(con))
            con.execute(sa.delete(compliance_findings))
            if records:
                con.execute(sa.insert(compliance_findings), records)
            if len(changes):
                changes["run_id"] = run_id
                changes["recorded_at"] = finished_at
                con.execute(sa.insert(finding_history), changes.to_dict("records"))
            con.execute(sa.delete(finding_runs).where(finding_runs.c.run_id == run_id))
            con.execute(
                sa.insert(finding_runs),
                [
                    {
                        "run_id": run_id,
                        "finished_at": finished_at,
                        "as_of": as_of,
                        "policy_version": policy_version,
                        "catalog_version": catalog_version,
                        "open_findings": int(counts.get("open", 0)),
                        "waived_findings": int(counts.get("waived", 0)),
                        "resolved_findings": int(counts.get("resolved", 0)),
                    }
                ],
            )
            if also is not None:
                also(con)


def _latest_history(con: sa.Connection) -> pd.DataFrame:
    """Each finding's latest ``finding_history`` row: its id and tracked columns."""
    columns = [finding_history.c.finding_id, *(finding_history.c[c] for c in HISTORY_TRACKED)]
    latest = sa.select(sa.func.max(finding_history.c.history_id)).group_by(
        finding_history.c.finding_id
    )
    rows = con.execute(sa.select(*columns).where(finding_history.c.history_id.in_(latest)))
    return pd.DataFrame(rows.all(), columns=[c.name for c in columns])
