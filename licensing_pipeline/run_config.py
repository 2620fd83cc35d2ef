"""What one run evaluates: which exports folder, and as of which day."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg

from licensing_pipeline.settings import DEFAULT_EARLIEST_EVENT_DATE


class RunSettings(dg.ConfigurableResource):
    """The exports folder and the as-of date; the schedule and the CLI override them per run.

    ``as_of`` is a day (YYYY-MM-DD): events up to the end of that day (UTC) are evaluated,
    later ones are kept but not evaluated. Empty means today in UTC. Usage events dated
    before ``earliest_event_date`` (``LICENSING_EARLIEST_EVENT_DATE``) are quarantined.
    ``full_refresh`` reads every usage file again instead of only new and changed ones.
    """

    data_dir: str
    as_of: str | None = None
    earliest_event_date: str = DEFAULT_EARLIEST_EVENT_DATE.isoformat()
    full_refresh: bool = False

    def as_of_date(self) -> date:
        if not self.as_of:
            return datetime.now(UTC).date()
        try:
            return date.fromisoformat(self.as_of)
        except ValueError:
            raise dg.Failure(f"as_of must be a date like 2026-11-27, got {self.as_of!r}") from None

    def earliest_event_day(self) -> date:
        try:
            return date.fromisoformat(self.earliest_event_date)
        except ValueError:
            raise dg.Failure(
                f"earliest_event_date must be a date like 2000-01-01, "
                f"got {self.earliest_event_date!r}"
            ) from None

    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()
