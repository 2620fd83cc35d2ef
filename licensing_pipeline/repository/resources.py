"""The licensing repository: where findings outlive the run that found them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.contract.schemas import (
    COMPLIANCE_FINDINGS,
    FINDING_RECORDS,
    conform,
    empty_frame,
)
from licensing_pipeline.repository.tables import compliance_findings, finding_runs, metadata


def make_engine(database_url: str) -> sa.Engine:
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url)


def add_missing_columns(engine: sa.Engine) -> list[str]:
    """ALTER TABLE ... ADD COLUMN for nullable columns a table created earlier lacks.

    Until the repository has migrations, this keeps an existing database usable when a
    release adds a column; returns the ``table.column`` names added.
    """
    inspector = sa.inspect(engine)
    existing = set(inspector.get_table_names())
    added = []
    for table in metadata.sorted_tables:
        if table.name not in existing:
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present or not column.nullable:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            quote = engine.dialect.identifier_preparer.quote
            with engine.begin() as con:
                con.execute(
                    sa.text(
                        f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"
                    )
                )
            added.append(f"{table.name}.{column.name}")
    return added


# Databases already brought up to date by this process (the check costs a few queries).
_UP_TO_DATE: set[str] = set()


class LicensingRepository(dg.ConfigurableResource):
    """Any SQLAlchemy URL (``LICENSING_DATABASE_URL``); SQLite under LICENSING_HOME by default."""

    database_url: str

    def engine(self) -> sa.Engine:
        engine = make_engine(self.database_url)
        metadata.create_all(engine)
        if self.database_url not in _UP_TO_DATE:
            add_missing_columns(engine)
            _UP_TO_DATE.add(self.database_url)
        return engine

    def load_findings(self) -> pd.DataFrame:
        """The findings with exactly the data contract's columns."""
        return conform(self.load_finding_records(), COMPLIANCE_FINDINGS)

    def load_finding_records(self) -> pd.DataFrame:
        """The findings with the internal columns too (policy hash, rule, exception)."""
        engine = self.engine()
        try:
            with engine.connect() as con:
                rows = con.execute(sa.select(compliance_findings)).mappings().all()
        finally:
            engine.dispose()
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
    ) -> None:
        """Replace the findings in one transaction: readers never see half a run.

        Internal columns (``FINDING_RECORDS``) are kept when ``findings`` has them.
        """
        frame = conform(findings, FINDING_RECORDS).astype(object)
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
