"""The data the expectations look at ("batches"): each asset's table, the rows its loader
quarantined, and small views derived from them.

Pure functions over small frames, plus ``usage_batches``, which asks DuckDB for aggregates
and samples of ``usage_events``: the event table itself never comes into pandas.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from licensing_pipeline.contract import schemas
from licensing_pipeline.contract.catalog import AGGREGATIONS
from licensing_pipeline.contract.usage import LINK_OUTSIDE
from licensing_pipeline.contract.usage_registry import REGISTRY_TABLE, table_exists

Label = Callable[[Mapping[str, Any]], str]
NOISE_SIGMAS = 3.0  # a day below the usual by less than this many Poisson sigmas is noise
SAMPLE_ROWS = 500  # rows of usage_events read to check its columns and types
LATEST_ROWS = 200  # newest events looked at for times in the future
EXAMPLE_LINES = 5  # line numbers named per quarantine reason


def _first_column(row: Mapping[str, Any]) -> str:
    return str(next(iter(row.values()), ""))


@dataclass(frozen=True)
class Batch:
    """A frame for one GX validation, facts for the failure messages, and how to name a row."""

    frame: pd.DataFrame
    facts: Mapping[str, Any] = field(default_factory=dict)
    label: Label = _first_column
    show_values: bool = True  # name the failing column's value next to the row's label


def columns_label(*columns: str) -> Label:
    def label(row: Mapping[str, Any]) -> str:
        values = [str(row.get(c)) for c in columns if _present(row.get(c))]
        if not values:
            return "?"
        return values[0] if len(values) == 1 else f"{values[0]} ({', '.join(values[1:])})"

    return label


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def _present(value: Any) -> bool:
    if value is None:
        return False
    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):
        return True


def table_batch(frame: pd.DataFrame, *label_columns: str) -> Batch:
    return Batch(frame, label=columns_label(*label_columns) if label_columns else _first_column)


# --- quarantine ----------------------------------------------------------------------------


def _line_label(row: Mapping[str, Any]) -> str:
    line: Any = row.get("line")
    where = Path(str(row.get("file") or "")).name
    return f"{where} line {int(line)}" if _present(line) else f"{where} (the whole file)"


def quarantine_reasons(quarantined: pd.DataFrame) -> str:
    """'billed_quantity is negative (3: lines 4, 9, 17); ...', most frequent reason first."""
    if quarantined.empty:
        return "none"
    parts = []
    frame = quarantined.assign(reason=quarantined["reason"].fillna("no reason given"))
    counts = frame.groupby("reason", sort=False).size().sort_values(ascending=False)
    for reason, count in counts.items():
        lines = frame.loc[frame["reason"] == reason, "line"].dropna().astype(int)
        shown = ", ".join(str(n) for n in lines.head(EXAMPLE_LINES))
        more = ", …" if len(lines) > EXAMPLE_LINES else ""
        where = f": line{'s' if len(lines) > 1 else ''} {shown}{more}" if len(lines) else ""
        parts.append(f"{reason} ({count}{where})")
    return "; ".join(parts)


def quarantine_batch(quarantined: pd.DataFrame) -> Batch:
    frame = schemas.conform(quarantined, schemas.QUARANTINED_RECORDS)
    return Batch(frame, {"reasons": quarantine_reasons(frame)}, _line_label, show_values=False)


# --- catalog ----------------------------------------------------------------------------------


def catalog_metrics(catalog: pd.DataFrame) -> Batch:
    metrics = catalog[catalog["kind"] == "metric"].reset_index(drop=True)
    return table_batch(metrics, "name")


def catalog_names(catalog: pd.DataFrame, kind: str) -> list[str]:
    return sorted(str(n) for n in catalog.loc[catalog["kind"] == kind, "name"].dropna().unique())


def catalog_jurisdictions(catalog: pd.DataFrame) -> list[str]:
    regions = catalog[catalog["kind"] == "region"]
    return sorted({str(j) for j in regions["jurisdiction"].dropna()} | {"ANY"})


# --- contracts --------------------------------------------------------------------------------


def _contract_label(row: Mapping[str, Any]) -> str:
    return columns_label("contract_id", "tenant_id")(row)


def contract_addons(contracts: pd.DataFrame) -> Batch:
    """One row per add-on a contract names."""
    rows = [
        {"contract_id": c, "tenant_id": t, "addon": name.strip()}
        for c, t, text in zip(
            contracts["contract_id"], contracts["tenant_id"], contracts["addons"], strict=True
        )
        if _present(text)
        for name in str(text).split(";")
        if name.strip()
    ]
    frame = pd.DataFrame(rows, columns=["contract_id", "tenant_id", "addon"], dtype="string")
    return Batch(frame, label=_contract_label)


def _json_keys(text: Any) -> list[str]:
    if not _present(text):
        return []
    try:
        value = json.loads(str(text))
    except ValueError:
        return []
    return [str(k) for k in value] if isinstance(value, dict) else []


def _json_key_rows(frame: pd.DataFrame, ids: Sequence[str], column: str, key: str) -> pd.DataFrame:
    """One row per key of the JSON object in ``column``, with the row's ``ids``."""
    rows = [
        (*values, name)
        for *values, text in zip(*(frame[c] for c in ids), frame[column], strict=True)
        for name in _json_keys(text)
    ]
    return pd.DataFrame(rows, columns=[*ids, key], dtype="string")


def contract_quota_overrides(contracts: pd.DataFrame) -> Batch:
    """One row per metric a contract's quota_overrides names."""
    frame = _json_key_rows(contracts, ("contract_id", "tenant_id"), "quota_overrides", "metric")
    return Batch(frame, label=_contract_label)


def active_contract_overlaps(contracts: pd.DataFrame) -> Batch:
    """Each active contract with another active contract of its tenant in force on a common
    day (``overlapping_contract_id``; empty when there is none)."""
    active = contracts.loc[
        contracts["status"] == "active", ["contract_id", "tenant_id", "start_date", "end_date"]
    ].copy()
    active["end_date"] = active["end_date"].fillna(pd.Timestamp.max)
    pairs = active.merge(active, on="tenant_id", suffixes=("", "_other"))
    overlapping = pairs[
        (pairs["contract_id"] != pairs["contract_id_other"])
        & (pairs["start_date"] <= pairs["end_date_other"])
        & (pairs["start_date_other"] <= pairs["end_date"])
    ]
    first = overlapping.groupby("contract_id")["contract_id_other"].min()
    frame = pd.DataFrame(
        {
            "contract_id": active["contract_id"].astype("string"),
            "tenant_id": active["tenant_id"].astype("string"),
            "start_date": contracts.loc[active.index, "start_date"],
            "end_date": contracts.loc[active.index, "end_date"],
            "overlapping_contract_id": active["contract_id"].map(first).astype("string"),
        }
    ).reset_index(drop=True)

    def label(row: Mapping[str, Any]) -> str:
        return (
            f"{row.get('contract_id')} and {row.get('overlapping_contract_id')} "
            f"({row.get('tenant_id')})"
        )

    return Batch(frame, label=label)


# --- deployments and residency ----------------------------------------------------------------


def deployment_features(deployments: pd.DataFrame) -> Batch:
    rows = []
    for tenant, deployment, text in zip(
        deployments["tenant_id"],
        deployments["deployment"],
        deployments["enabled_features"],
        strict=True,
    ):
        try:
            features = json.loads(str(text)) if _present(text) else []
        except ValueError:
            features = []
        rows += [
            {"tenant_id": tenant, "deployment": deployment, "feature": str(feature)}
            for feature in features
        ]
    frame = pd.DataFrame(rows, columns=["tenant_id", "deployment", "feature"], dtype="string")
    return Batch(frame.drop_duplicates(ignore_index=True), label=columns_label("deployment"))


def deployment_quota_limits(deployments: pd.DataFrame) -> Batch:
    frame = _json_key_rows(deployments, ("tenant_id", "deployment"), "quota_limits", "metric")
    return Batch(frame.drop_duplicates(ignore_index=True), label=columns_label("deployment"))


def residency_jurisdictions(residency: pd.DataFrame) -> Batch:
    rows = [
        {"tenant_id": tenant, "jurisdiction": name.strip()}
        for tenant, text in zip(
            residency["tenant_id"], residency["allowed_jurisdictions"], strict=True
        )
        if _present(text)
        for name in str(text).split(";")
        if name.strip()
    ]
    frame = pd.DataFrame(rows, columns=["tenant_id", "jurisdiction"], dtype="string")
    return Batch(frame, label=columns_label("tenant_id"))


# --- derived assets ---------------------------------------------------------------------------


def entitlement_status(entitlements: pd.DataFrame) -> Batch:
    frame = entitlements[["tenant_id", "period", "contract_status", "entitled"]].copy()
    frame["entitled"] = frame["entitled"].astype("boolean")
    frame["status_is_active"] = (frame["contract_status"] == "active").astype("boolean")
    return Batch(frame.reset_index(drop=True), label=columns_label("tenant_id", "period"))


def _live(findings: pd.DataFrame, check: str) -> pd.DataFrame:
    return findings[(findings["check"] == check) & (findings["status"] != "resolved")]


def unknown_tenants(
    activity: pd.DataFrame,
    tenants: pd.DataFrame,
    contracts: pd.DataFrame,
    findings: pd.DataFrame,
) -> Batch:
    """Usage subjects that are not known tenants, with how many inactive_contract_usage
    findings report them."""
    known = set(tenants["tenant_id"].dropna()) | set(contracts["tenant_id"].dropna())
    used = activity.groupby("tenant_id", as_index=False)["events"].sum()
    unknown = used[~used["tenant_id"].isin(known)].copy()
    reported = _live(findings, "inactive_contract_usage").groupby("tenant_id").size()
    unknown["inactive_contract_usage_findings"] = (
        unknown["tenant_id"].map(reported).fillna(0).astype("int64")
    )
    frame = unknown.rename(columns={"events": "evaluated_events"}).reset_index(drop=True)
    return Batch(frame, label=columns_label("tenant_id"))


def unknown_regions(
    region_usage: pd.DataFrame, catalog: pd.DataFrame, findings: pd.DataFrame
) -> Batch:
    """(tenant, region) pairs with usage in a region the catalog does not know, with how many
    residency_violation findings report them."""
    regions = set(catalog_names(catalog, "region"))
    used = region_usage.dropna(subset=["region"])
    used = used[~used["region"].isin(regions)]
    pairs = used.groupby(["tenant_id", "region"], as_index=False)["events"].sum()
    violations = _live(findings, "residency_violation")
    reported = violations.groupby(["tenant_id", "subject"]).size().rename("n").reset_index()
    pairs = pairs.merge(
        reported.rename(columns={"subject": "region"}), on=["tenant_id", "region"], how="left"
    )
    pairs["residency_violation_findings"] = pairs.pop("n").fillna(0).astype("int64")
    frame = pairs.rename(columns={"events": "evaluated_events"}).reset_index(drop=True)
    return Batch(frame, label=columns_label("region", "tenant_id"))


# --- usage_events (DuckDB) --------------------------------------------------------------------


@dataclass(frozen=True)
class UsageThresholds:
    min_volume_share: float = 0.5
    volume_weeks: int = 4
    min_volume_baseline: float = 20.0


def volume_floor(usual: float, share: float, min_baseline: float) -> float:
    """The fewest events a day may bring: ``share`` of the usual day, or the usual less
    ``NOISE_SIGMAS`` Poisson sigmas if that is lower; 0 when the usual day is too small."""
    if not usual or usual < min_baseline:
        return 0.0
    return max(0.0, min(share * usual, usual - NOISE_SIGMAS * math.sqrt(usual)))


def _hours(value: float | None) -> str:
    return "none" if value is None else f"{value:.1f}"


def _iso(value: Any) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%SZ") if _present(value) else "none"


def usage_batches(
    con: Any,
    as_of: date,
    thresholds: UsageThresholds,
    *,
    now: datetime,
    future_tolerance_hours: float,
    events_table: str = "main.usage_events",
    quarantine_table: str = "main.quarantine_usage_events",
    contracts_table: str | None = None,
    registry_table: str = REGISTRY_TABLE,
) -> dict[str, Batch]:
    """Every batch of the usage_events suite, from a few aggregate queries.

    ``now`` is naive UTC. The as-of day is [as_of, as_of + 1 day) in UTC, like dbt's cutoff.
    Without ``contracts_table`` (not loaded yet) no tenant has usage before its contracts.
    """
    cutoff = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
    return {
        "usage_events.early_usage": _early_usage(con, events_table, contracts_table),
        "usage_events.sample": Batch(
            con.execute(f"SELECT * FROM {events_table} LIMIT {SAMPLE_ROWS}").df()
        ),
        "usage_events.profile": _profile(con, events_table, quarantine_table, registry_table),
        "usage_events.freshness": _freshness(con, events_table, as_of, cutoff),
        **_volumes(con, events_table, as_of, thresholds),
        "usage_events.files": _files(con, events_table, quarantine_table),
        "usage_events.changed_files": _changed_files(con, registry_table),
        "usage_events.latest": _latest(con, events_table, max(now, cutoff), future_tolerance_hours),
    }


def _profile(con: Any, events: str, quarantine: str, registry: str) -> Batch:
    row = con.execute(
        f"""
        SELECT count(*) AS events,
               count(*) FILTER (
                   WHERE id IS NULL OR type IS NULL OR tenant_id IS NULL OR time IS NULL
               ) AS events_missing_a_key,
               (SELECT count(*) FROM {quarantine}) AS quarantined_lines
        FROM {events}
        """
    ).fetchone()
    assert row is not None
    events_n, missing, quarantined = (int(v) for v in row)
    distinct = events_n - _repeated_keys(con, events, registry)
    lines = events_n + quarantined
    share = quarantined / lines if lines else 0.0
    frame = pd.DataFrame(
        {
            "events": [events_n],
            "distinct_keys": [distinct],
            "events_missing_a_key": [missing],
            "quarantined_lines": [quarantined],
            "quarantined_share": [share],
        }
    )
    reasons = con.execute(
        f"SELECT reason, count(*) AS n FROM {quarantine} GROUP BY reason ORDER BY n DESC LIMIT 5"
    ).fetchall()
    facts = {
        "events": events_n,
        "distinct_keys": distinct,
        "duplicate_keys": events_n - distinct,
        "events_missing_a_key": missing,
        "quarantined_lines": quarantined,
        "lines_read": lines,
        "quarantined_pct": f"{share:.2%}",
        "reasons": "; ".join(f"{r} ({n})" for r, n in reasons) or "none",
    }
    return Batch(frame, facts)


def _repeated_keys(con: Any, events: str, registry: str) -> int:
    """Events beyond the first of their (source, id). The keys checked are those of the events
    the latest ingest added, against every event held: each event was checked the night it
    came, so the check costs a probe of the history rather than a distinct count of it (3.5 s
    over 20M events). Without a registry (usage written by other means), every key."""
    if not table_exists(con, registry):
        new = events
    else:
        new = f"""(
            SELECT source, id FROM {events}
            WHERE file IN (
                SELECT file FROM {registry}
                WHERE replaced_by IS NULL
                  AND ingested_at = (SELECT max(ingested_at) FROM {registry})
            )
        )"""
    row = con.execute(
        f"""
        SELECT coalesce(sum(n - 1), 0) FROM (
            SELECT count(*) AS n FROM {events} AS e
            WHERE EXISTS (
                SELECT 1 FROM {new} AS k
                WHERE k.id = e.id AND k.source IS NOT DISTINCT FROM e.source
            )
            GROUP BY e.source, e.id
            HAVING count(*) > 1
        ) AS repeated
        """
    ).fetchone()
    return int(row[0]) if row else 0


def _freshness(con: Any, events: str, as_of: date, cutoff: datetime) -> Batch:
    row = con.execute(f"SELECT max(time) FROM {events} WHERE time < ?", [cutoff]).fetchone()
    newest = row[0] if row else None
    hours = (cutoff - newest).total_seconds() / 3600 if newest is not None else None
    frame = pd.DataFrame({"newest_event": [newest], "hours_since_newest_event": [hours]})
    frame["hours_since_newest_event"] = frame["hours_since_newest_event"].astype("float64")
    facts = {
        "as_of": as_of.isoformat(),
        "newest_event": _iso(newest),
        "hours_since_newest_event": _hours(hours),
    }
    return Batch(frame, facts)


def _volumes(con: Any, events: str, as_of: date, thresholds: UsageThresholds) -> dict[str, Batch]:
    """The as-of day's events against the median of the same weekday over the previous
    ``volume_weeks`` weeks (a missing day counts as 0), per tenant and for the whole feed."""
    weeks = thresholds.volume_weeks
    days = [as_of - timedelta(weeks=w) for w in range(weeks + 1)]
    same_weekdays = ", ".join(f"DATE '{day.isoformat()}'" for day in days)
    counts = con.execute(
        f"""
        SELECT tenant_id, CAST(time AS DATE) AS day, count(*) AS events
        FROM {events}
        WHERE time >= ? AND time < ? AND CAST(time AS DATE) IN ({same_weekdays})
        GROUP BY tenant_id, CAST(time AS DATE)
        """,
        [_midnight(min(days)), _midnight(as_of + timedelta(days=1))],
    ).df()
    counts["day"] = pd.to_datetime(counts["day"]).dt.date
    grid = counts.pivot_table(
        index="tenant_id", columns="day", values="events", aggfunc="sum", fill_value=0
    )
    grid = grid.reindex(columns=pd.to_datetime(days).date, fill_value=0)
    share, least = thresholds.min_volume_share, thresholds.min_volume_baseline

    def frame_of(today: pd.Series, usual: pd.Series) -> pd.DataFrame:
        floors = [volume_floor(float(u), share, least) for u in usual]
        return pd.DataFrame(
            {
                "as_of_day_events": today.astype("int64").to_numpy(),
                "usual_events": usual.astype("float64").to_numpy(),
                "volume_floor": pd.Series(floors, dtype="float64").to_numpy(),
            }
        )

    history = grid.iloc[:, 1:]
    tenants = frame_of(grid.iloc[:, 0], history.median(axis=1) if weeks else grid.iloc[:, 0] * 0)
    tenants.insert(0, "tenant_id", grid.index.astype("string"))
    totals = grid.sum(axis=0)
    feed_today = int(totals.iloc[0])
    feed_usual = float(totals.iloc[1:].median()) if weeks else 0.0
    feed = frame_of(pd.Series([feed_today]), pd.Series([feed_usual]))
    feed.insert(0, "day", [as_of.isoformat()])
    floor = float(feed["volume_floor"].iloc[0])
    facts = {
        "as_of": as_of.isoformat(),
        "weekday": as_of.strftime("%A"),
        "as_of_day_events": feed_today,
        "usual_events": f"{feed_usual:.0f}",
        "volume_floor": f"{math.ceil(floor)}",
        "share_of_usual": f"{feed_today / feed_usual:.0%}" if feed_usual else "n/a",
        "same_weekdays": ", ".join(d.isoformat() for d in days[1:]),
    }

    def tenant_label(row: Mapping[str, Any]) -> str:
        return (
            f"{row.get('tenant_id')} {int(row.get('as_of_day_events') or 0)} events "
            f"(usual {float(row.get('usual_events') or 0):.0f})"
        )

    return {
        "usage_events.feed_volume": Batch(feed, facts),
        "usage_events.tenant_volume": Batch(
            tenants.reset_index(drop=True), {"as_of": as_of.isoformat()}, tenant_label
        ),
    }


def _files(con: Any, events: str, quarantine: str) -> Batch:
    """Per usage file, the line where it was cut off: its last line is the start of a JSON
    object that does not parse, or the file could not be read to its end. (A link refused
    unread was not cut off: its quarantine row says why.)"""
    frame = con.execute(
        f"""
        WITH last_lines AS (
            SELECT file, max(line) AS last_line
            FROM (
                SELECT file, max(line) AS line FROM {events} GROUP BY file
                UNION ALL
                SELECT file, max(line) FROM {quarantine} WHERE line IS NOT NULL GROUP BY file
            ) AS ends
            GROUP BY file
        ), cut AS (
            SELECT q.file, q.line AS cut_off_at_line, q.reason
            FROM {quarantine} q JOIN last_lines l ON q.file = l.file AND q.line = l.last_line
            WHERE q.reason = 'not valid JSON' AND ltrim(q.raw) LIKE '{{%'
            UNION ALL
            SELECT q.file, coalesce(l.last_line, 0) + 1, q.reason
            FROM {quarantine} q LEFT JOIN last_lines l USING (file)
            WHERE q.line IS NULL AND q.reason <> '{LINK_OUTSIDE}'
        ), files AS (
            SELECT file FROM last_lines UNION SELECT file FROM cut
        )
        SELECT f.file, l.last_line, c.cut_off_at_line, c.reason
        FROM files f LEFT JOIN last_lines l USING (file) LEFT JOIN cut c USING (file)
        ORDER BY f.file
        """
    ).df()
    frame["last_line"] = frame["last_line"].astype("Int64")
    frame["cut_off_at_line"] = frame["cut_off_at_line"].astype("Int64")

    def label(row: Mapping[str, Any]) -> str:
        return (
            f"{Path(str(row.get('file'))).name} at line {row.get('cut_off_at_line')} "
            f"({row.get('reason')})"
        )

    return Batch(frame, label=label)


def _changed_files(con: Any, registry: str) -> Batch:
    """The usage files whose content changed since an earlier ingest, as the latest ingest
    found them (their earlier batch replaced by one of that ingest's)."""
    if not table_exists(con, registry):
        return Batch(pd.DataFrame({"file": pd.Series(dtype="string"), "changed_file": []}))
    frame = con.execute(
        f"""
        SELECT new.file, new.file AS changed_file, old.ingested_at AS first_ingested_at
        FROM {registry} AS old
        INNER JOIN {registry} AS new ON new.batch_id = old.replaced_by
        WHERE new.ingested_at = (SELECT max(ingested_at) FROM {registry})
        ORDER BY new.file
        """
    ).df()
    return Batch(frame, label=lambda row: Path(str(row.get("file"))).name, show_values=False)


def _latest(con: Any, events: str, reference: datetime, tolerance_hours: float) -> Batch:
    frame = con.execute(
        f"""
        SELECT source, id, tenant_id, type, time, file, line
        FROM {events} ORDER BY time DESC LIMIT {LATEST_ROWS}
        """
    ).df()
    frame["hours_ahead"] = (frame["time"] - pd.Timestamp(reference)).dt.total_seconds() / 3600.0
    limit = reference + timedelta(hours=tolerance_hours)
    row = con.execute(
        f"SELECT count(*), max(time) FROM {events} WHERE time > ?", [limit]
    ).fetchone()
    future, latest = (int(row[0]), row[1]) if row else (0, None)
    facts = {
        "reference_time": _iso(reference),
        "future_events": future,
        "latest_event": _iso(latest),
    }

    def label(row: Mapping[str, Any]) -> str:
        return (
            f"{row.get('source')}/{row.get('id')} at {_iso(row.get('time'))} "
            f"({Path(str(row.get('file'))).name} line {row.get('line')})"
        )

    return Batch(frame, facts, label)


def _early_usage(con: Any, events: str, contracts: str | None) -> Batch:
    """Per tenant with usage before its first contract starts: the earliest event and how
    many days before the contract it is (a clock reset or a mistyped year, usually)."""
    columns = ["tenant_id", "earliest_event", "first_contract_start"]
    if contracts is None:
        frame = pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    else:
        frame = con.execute(
            f"""
            SELECT e.tenant_id, min(e.time) AS earliest_event,
                   c.first_contract_start
            FROM {events} e
            JOIN (
                SELECT tenant_id, min(start_date) AS first_contract_start
                FROM {contracts} GROUP BY tenant_id
            ) c ON c.tenant_id = e.tenant_id
            WHERE e.time < c.first_contract_start
            GROUP BY e.tenant_id, c.first_contract_start
            ORDER BY e.tenant_id
            """
        ).df()
    gap = pd.to_datetime(frame["first_contract_start"]) - pd.to_datetime(frame["earliest_event"])
    frame["days_before_first_contract"] = (gap.dt.total_seconds() / 86400).astype("float64")

    def label(row: Mapping[str, Any]) -> str:
        return (
            f"{row.get('tenant_id')}: an event on {_iso(row.get('earliest_event'))[:10]}, "
            f"{float(row.get('days_before_first_contract') or 0):,.0f} days before its first "
            f"contract ({_iso(row.get('first_contract_start'))[:10]})"
        )

    return Batch(frame.reset_index(drop=True), label=label, show_values=False)


# --- suite parameters -------------------------------------------------------------------------


def suite_parameters(catalog: pd.DataFrame | None, **thresholds: float) -> dict[str, Any]:
    """Values the suites name with "$...": the contract's vocabularies, the catalog's names
    (when the catalog is loaded) and the thresholds."""
    parameters: dict[str, Any] = {
        "catalog_kinds": ["region", "feature", "metric", "plan", "addon"],
        "aggregations": list(AGGREGATIONS),
        "contract_statuses": list(schemas.CONTRACT_STATUSES),
        "enforcements": list(schemas.ENFORCEMENTS),
        "checks": list(schemas.CHECKS),
        "severities": list(schemas.SEVERITIES),
        "actions": list(schemas.ACTIONS),
        "finding_statuses": list(schemas.STATUSES),
        "entitlement_statuses": [*schemas.CONTRACT_STATUSES, "expired", "none"],
        "quarantine_sources": list(schemas.QUARANTINE_SOURCES),
        **thresholds,
    }
    if catalog is not None:
        parameters.update(
            catalog_regions=catalog_names(catalog, "region"),
            catalog_features=catalog_names(catalog, "feature"),
            catalog_metrics=catalog_names(catalog, "metric"),
            catalog_plans=catalog_names(catalog, "plan"),
            catalog_addons=catalog_names(catalog, "addon"),
            catalog_jurisdictions=catalog_jurisdictions(catalog),
        )
    return parameters
