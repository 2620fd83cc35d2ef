"""The licensing repository: where findings outlive the run that found them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.contract.schemas import COMPLIANCE_FINDINGS, conform, empty_frame
from licensing_pipeline.repository.tables import compliance_findings, finding_runs, metadata


def make_engine(database_url: str) -> sa.Engine:
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url)


class LicensingRepository(dg.ConfigurableResource):
    """Any SQLAlchemy URL (``LICENSING_DATABASE_URL``); SQLite under LICENSING_HOME by default."""

    database_url: str

    def engine(self) -> sa.Engine:
        engine = make_engine(self.database_url)
        metadata.create_all(engine)
        return engine

    def load_findings(self) -> pd.DataFrame:
        engine = self.engine()
        try:
            with engine.connect() as con:
                rows = con.execute(sa.select(compliance_findings)).mappings().all()
        finally:
            engine.dispose()
        if not rows:
            return empty_frame(COMPLIANCE_FINDINGS)
        return conform(pd.DataFrame([dict(r) for r in rows]), COMPLIANCE_FINDINGS)

    def save_findings(
        self,
        findings: pd.DataFrame,
        *,
        run_id: str,
        as_of: date,
        policy_version: str,
        catalog_version: str,
    ) -> None:
        """Replace the findings in one transaction: readers never see half a run."""
        frame = conform(findings, COMPLIANCE_FINDINGS).astype(object)
        frame = frame.where(frame.notna(), None)
        records = frame.to_dict("records")
        counts = findings["status"].value_counts().to_dict() if len(findings) else {}
        engine = self.engine()
        try:
            with engine.begin() as con:
                con.execute(sa.delete(compliance_findings))
                if records:
                    con.execute(sa.insert(compliance_findings), records)
                con.execute(sa.delete(finding_runs).where(finding_runs.c.run_id == run_id))
                con.execute(
                    sa.insert(finding_runs),
                    [
                        {
                            "run_id": run_id,
                            "finished_at": datetime.now(UTC).replace(tzinfo=None, microsecond=0),
                            "as_of": as_of,
                            "policy_version": policy_version,
                            "catalog_version": catalog_version,
                            "open_findings": int(counts.get("open", 0)),
                            "waived_findings": int(counts.get("waived", 0)),
                            "resolved_findings": int(counts.get("resolved", 0)),
                        }
                    ],
                )
        finally:
            engine.dispose()
