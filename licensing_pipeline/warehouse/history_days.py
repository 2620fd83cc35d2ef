"""Which kept days of the usage history a nightly evaluation has changed.

A late or re-delivered event lands in an export file of any day and is evaluated by the next
nightly run; the day it belongs to may already be kept in ``daily_usage_events``. The nightly
run notes the first such day on itself (a run tag), so the history sensor can rebuild from
there, and ``licensing-pipeline snapshots --late`` asks the same question from the shell.
"""

from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from licensing_pipeline.warehouse.resources import Warehouse

# On a nightly run: the first kept history day its evaluation gained events for.
LATE_FROM_TAG = "licensing/history_late_from"


def late_days(warehouse: "Warehouse", since: date | None = None) -> list[date]:
    """Days kept in daily_usage_events that have gained events since (a late or re-delivered
    event the nightly run has evaluated since): the days a re-run would change. A day the
    exports no longer hold has fewer events, not more, and is not one of them."""
    if not warehouse.table_exists("daily_usage_events"):
        return []
    after = f"WHERE usage_date >= CAST('{since.isoformat()}' AS DATE)" if since else ""
    frame = warehouse.read_frame(
        "SELECT s.usage_date FROM ("
        f"  SELECT usage_date, count(*) AS n FROM main.events_in_scope {after} GROUP BY usage_date"
        ") AS s INNER JOIN ("
        "  SELECT usage_date, count(*) AS n FROM main.daily_usage_events GROUP BY usage_date"
        ") AS k ON k.usage_date = s.usage_date "
        "WHERE s.n > k.n ORDER BY s.usage_date"
    )
    return [date.fromisoformat(str(day)[:10]) for day in frame["usage_date"]]
