"""A labelled backtest of the anomaly rule: realistic daily series with injected true anomalies.

The generator knows nothing of the demo or of the rule. Each tenant gets the four metrics of
the demo catalog (``api_calls`` COUNT, ``seats`` UNIQUE_COUNT, ``storage_gb`` MAX,
``export_gb`` SUM) shaped like ordinary SaaS traffic: a weekly rhythm of its own (office hours,
round the clock, weekend-heavy), holidays, growth or decline, over-dispersed day-to-day noise,
month-end peaks, new tenants with little history, churned tenants going to zero, sporadic and
scheduled exports of varying size, seats that creep, storage reported every few days that
grows, steps on upgrades (with a contract change) and on migrations (without one), and days
delivered late (one day empty, the next double). True anomalies are then injected into some
series: one-day spikes of 5x-20x, multi-day surges, a runaway client's burst, a gauge jump
without any contract change.

Scoring runs ``anomalies.usage_anomalies``, the function the nightly asset calls, on the daily
aggregates and the contracts, and matches its episodes with the labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from licensing_pipeline.compliance.anomalies import usage_anomalies
from licensing_pipeline.policy.schema import AnomalyRule

AGGREGATIONS = {
    "api_calls": "COUNT",
    "seats": "UNIQUE_COUNT",
    "storage_gb": "MAX",
    "export_gb": "SUM",
}
KIND_OF = {"api_calls": "count", "seats": "count", "storage_gb": "gauge", "export_gb": "sum"}
START = date(2026, 5, 4)  # a Monday
HOLIDAYS = (date(2026, 5, 25), date(2026, 7, 3), date(2026, 9, 7), date(2026, 11, 26))


@dataclass
class Backtest:
    usage_daily: pd.DataFrame  # tenant_id, metric, usage_date, quantity, events
    contracts: pd.DataFrame  # the contracts export: upgrades are contract changes
    labels: pd.DataFrame  # tenant_id, metric, start, end, kind, factor
    upgrades: pd.DataFrame  # tenant_id, day: the storage steps a contract change explains
    as_of: date
    series_months: dict[str, int] = field(default_factory=dict)  # per metric kind


def _weekly(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per tenant, a factor for each weekday (Mon..Sun)."""
    style = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])  # office, round the clock, weekend-heavy
    weekend = np.where(
        style == 0,
        rng.uniform(0.02, 0.4, n),
        np.where(style == 1, rng.uniform(0.8, 1.2, n), rng.uniform(1.5, 3.0, n)),
    )
    weekdays = rng.uniform(0.85, 1.15, size=(n, 5)) * np.where(style == 2, 0.6, 1.0)[:, None]
    return np.concatenate([weekdays, np.repeat(weekend[:, None], 2, axis=1)], axis=1)


def generate(tenants: int = 1000, days: int = 182, seed: int = 20261206) -> Backtest:
    """A labelled export of ``tenants`` tenants over ``days`` days (as-of is the last day)."""
    rng = np.random.default_rng(seed)
    n, t = tenants, np.arange(days)
    calendar = [START + timedelta(days=int(d)) for d in t]
    weekday = np.array([d.weekday() for d in calendar])
    holiday = np.array([d in HOLIDAYS for d in calendar])
    month_end = np.array([(d + timedelta(days=1)).day == 1 for d in calendar])

    # Lifecycle: most tenants have all the history, some are new, some churn.
    first = np.where(rng.random(n) < 0.2, rng.integers(20, days - 10, n), 0)
    churn = np.where(rng.random(n) < 0.1, rng.integers(60, days + 60, n), days + 999)
    alive = (t[None, :] >= first[:, None]) & (t[None, :] < churn[:, None])
    fading = np.clip((churn[:, None] - t[None, :]) / 14.0, 0.05, 1.0)  # churn tails off
    # An upgrade (a contract change) for some: more usage, a bigger team, a storage step.
    upgrade = np.where(rng.random(n) < 0.25, rng.integers(30, days - 5, n), -1)
    upgraded = (upgrade[:, None] >= 0) & (t[None, :] >= upgrade[:, None])

    week = _weekly(rng, n)[:, weekday]
    office = week.min(axis=1) < 0.5
    rhythm = week * np.where(office[:, None] & holiday[None, :], 0.15, 1.0)
    trend = np.exp(rng.normal(0.002, 0.003, n)[:, None] * t[None, :])
    peaks = np.where(rng.random(n) < 0.3, rng.uniform(1.2, 2.0, n), 1.0)[:, None]
    month_peak = np.where(month_end[None, :], peaks, 1.0)

    def overdispersed(mean: np.ndarray, cv: np.ndarray) -> np.ndarray:
        shape = 1.0 / np.maximum(cv, 1e-3) ** 2
        return rng.poisson(rng.gamma(shape[:, None], mean / shape[:, None])).astype(float)

    step = np.where(upgraded, rng.uniform(1.5, 4.0, n)[:, None], 1.0)
    life = alive * fading
    # api_calls: from a few calls a day to tens of thousands.
    level = np.exp(rng.normal(np.log(300), 1.6, n))[:, None]
    api = overdispersed(
        level * rhythm * trend * month_peak * step * life, rng.uniform(0.05, 0.4, n)
    )
    # seats: a team that creeps (and grows on an upgrade); distinct users logging in per day.
    team = np.exp(rng.normal(np.log(12), 1.0, n))[:, None] * (
        1 + rng.uniform(0, 0.004, n)[:, None] * t[None, :]
    )
    team = np.ceil(team * np.where(upgraded, rng.uniform(1.3, 2.5, n)[:, None], 1.0))
    presence = np.clip(0.7 * rhythm, 0, 0.98) * life
    seats = rng.binomial(team.astype(np.int64), np.clip(presence, 0, 1)).astype(float)
    # storage_gb: a level that grows, steps up on an upgrade (3.5 -> 40 GB) and on migrations.
    storage = np.exp(rng.normal(np.log(5), 1.2, n))[:, None] * np.exp(
        rng.uniform(0.0, 0.01, n)[:, None] * t[None, :]
    )
    storage = storage * np.where(upgraded, rng.uniform(5.0, 15.0, n)[:, None], 1.0)
    migration = np.where(rng.random(n) < 0.15, rng.integers(20, days, n), -1)
    storage = storage * np.where(
        (migration[:, None] >= 0) & (t[None, :] >= migration[:, None]),
        rng.choice([0.5, 1.6, 2.2, 3.0], n)[:, None],
        1.0,
    )
    storage = storage * rng.normal(1.0, 0.01, storage.shape)
    report_every = rng.choice([1, 1, 2, 3, 7], n)[:, None]
    reported = (((t[None, :] + rng.integers(0, 7, n)[:, None]) % report_every) == 0) & alive
    # export_gb: sporadic exports of 5-70 GB, scheduled weekly ones, or many small daily ones.
    style = rng.choice(3, size=n, p=[0.5, 0.2, 0.3])
    monthly = rng.uniform(1, 10, n)[:, None]
    sporadic = (rng.random((n, days)) < monthly / 30.0) & (style[:, None] == 0)
    weekly_day = rng.integers(0, 7, n)[:, None]
    scheduled = (weekday[None, :] == weekly_day) & (style[:, None] == 1)
    dense = style[:, None] == 2
    exports = np.where(
        sporadic, 1 + rng.binomial(2, 0.15, (n, days)), np.where(scheduled, 1, 0)
    ).astype(float) + np.where(
        dense, overdispersed(rng.uniform(2, 30, n)[:, None] * rhythm, rng.uniform(0.1, 0.4, n)), 0
    )
    exports = np.where(alive, exports, 0)
    size = np.where(
        (style == 0)[:, None],
        rng.uniform(5, 70, (n, days)),
        np.where(
            (style == 1)[:, None],
            rng.uniform(10, 40, n)[:, None] * rng.uniform(0.8, 1.2, (n, days)),
            rng.lognormal(np.log(0.5), 0.8, (n, days)),
        ),
    )
    export_gb = exports * size

    series = {
        "api_calls": api,
        "seats": seats,
        "storage_gb": np.where(reported, storage, 0.0),  # a level only on the days it is reported
        "export_gb": export_gb,
    }
    events = {
        "api_calls": api.copy(),
        "seats": np.round(seats * rng.uniform(1.5, 4.0, n)[:, None]),
        "storage_gb": reported.astype(float),
        "export_gb": exports.copy(),
    }

    # Late deliveries: a day arrives with the next one (nothing, then double).
    for metric in ("api_calls", "seats", "export_gb"):
        late = rng.random((n, days - 1)) < 0.004
        for grid in (series[metric], events[metric]):
            moved = np.where(late, grid[:, :-1], 0.0)
            grid[:, :-1] -= moved
            grid[:, 1:] += moved

    labels = _inject(rng, series, events, first, churn, days)
    return _frames(series, events, labels, upgrade, first, calendar)


def _inject(
    rng: np.random.Generator,
    series: dict[str, np.ndarray],
    events: dict[str, np.ndarray],
    first: np.ndarray,
    churn: np.ndarray,
    days: int,
) -> list[tuple[int, str, int, int, str, float]]:
    """True anomalies in about a fifth of the series: (tenant, metric, start, end, kind, factor)."""
    labels: list[tuple[int, str, int, int, str, float]] = []
    n = len(first)
    for metric, grid in series.items():
        chosen = np.flatnonzero(rng.random(n) < 0.2)
        for i in (int(c) for c in chosen):
            lo, hi = int(first[i]) + 35, min(days, int(churn[i])) - 1
            if hi <= lo:
                continue
            day = int(rng.integers(lo, hi))
            if KIND_OF[metric] == "gauge":
                factor = float(rng.uniform(6, 20))
                grid[i, day:] *= factor  # a jump without a contract change: stays
                seen = np.flatnonzero(events[metric][i, day:] > 0)  # on its next report
                if len(seen):
                    labels.append(
                        (i, metric, day + int(seen[0]), day + int(seen[0]), "gauge_jump", factor)
                    )
                continue
            usual = _usual(grid[i], events[metric][i], day)
            kind = rng.choice(["spike", "surge", "runaway"], p=[0.6, 0.25, 0.15])
            if kind == "spike":
                factor = float(rng.uniform(5, 20))
                length = 1
            elif kind == "surge":
                factor = float(rng.uniform(4, 10))
                length = int(rng.integers(3, 8))
            else:
                factor = float(rng.uniform(10, 30))
                length = int(rng.integers(1, 3))
            end = min(day + length, days)
            size, count = usual
            add_events = np.round(count * factor * rng.uniform(0.8, 1.2, end - day))
            if KIND_OF[metric] == "sum":
                grid[i, day:end] += add_events * size
            else:
                grid[i, day:end] += add_events
            events[metric][i, day:end] += add_events
            labels.append((i, metric, day, end - 1, str(kind), factor))
    return labels


def _usual(values: np.ndarray, counts: np.ndarray, day: int) -> tuple[float, float]:
    """A series' usual (size of an event, events) on its active days of the last 4 weeks."""
    window = slice(max(0, day - 28), day)
    active = counts[window] > 0
    if not active.any():
        return 1.0, 1.0
    events = float(np.median(counts[window][active]))
    size = float(np.median(values[window][active] / counts[window][active]))
    return size, max(events, 1.0)


def _frames(
    series: dict[str, np.ndarray],
    events: dict[str, np.ndarray],
    labels: list[tuple[int, str, int, int, str, float]],
    upgrade: np.ndarray,
    first: np.ndarray,
    calendar: list[date],
) -> Backtest:
    n = len(first)
    ids = np.array([f"bt-{i:05d}" for i in range(n)], dtype=object)
    stamps = pd.to_datetime(pd.Series(calendar))
    parts = []
    for metric, grid in series.items():
        count = events[metric]
        rows, cols = np.nonzero(count > 0)
        parts.append(
            pd.DataFrame(
                {
                    "tenant_id": ids[rows],
                    "metric": metric,
                    "usage_date": stamps.to_numpy()[cols],
                    "quantity": np.round(grid[rows, cols], 3),
                    "events": count[rows, cols].astype(np.int64),
                }
            )
        )
    usage = pd.concat(parts, ignore_index=True)
    contracts: list[tuple[str, str, str, date, date | None]] = []
    for i in range(n):
        begin = calendar[0] + timedelta(days=int(first[i]))
        if upgrade[i] >= 0 and upgrade[i] > first[i]:
            change = calendar[int(upgrade[i])]
            contracts.append((f"c-{i}-a", ids[i], "starter", begin, change - timedelta(days=1)))
            contracts.append((f"c-{i}-b", ids[i], "growth", change, None))
        else:
            contracts.append((f"c-{i}-a", ids[i], "starter", begin, None))
    frame = pd.DataFrame(
        contracts, columns=["contract_id", "tenant_id", "plan", "start_date", "end_date"]
    )
    frame = frame.assign(addons="", quota_overrides="", status="active", enforcement="hard")
    upgrades = pd.DataFrame(
        {
            "tenant_id": ids[upgrade >= 0],
            "day": pd.to_datetime([calendar[int(u)] for u in upgrade[upgrade >= 0]]),
        }
    )
    label_frame = pd.DataFrame(
        [
            (ids[i], metric, stamps[s], stamps[e], kind, factor)
            for i, metric, s, e, kind, factor in labels
        ],
        columns=["tenant_id", "metric", "start", "end", "kind", "factor"],
    )
    months = (
        usage.assign(month=usage["usage_date"].dt.to_period("M"))
        .drop_duplicates(["tenant_id", "metric", "month"])
        .assign(kind=lambda f: f["metric"].map(KIND_OF))
        .groupby("kind")
        .size()
    )
    return Backtest(
        usage_daily=usage,
        contracts=frame,
        labels=label_frame,
        upgrades=upgrades,
        as_of=calendar[-1],
        series_months={str(k): int(v) for k, v in months.items()},
    )


def score(data: Backtest, rule: AnomalyRule | None = None) -> dict[str, pd.DataFrame]:
    """Run the nightly function and match its episodes with the labels."""
    _, episodes = usage_anomalies(
        data.usage_daily,
        data.as_of,
        rule or AnomalyRule(),
        aggregations=AGGREGATIONS,
        contracts=data.contracts,
    )
    found = episodes[episodes["suppressed_by"].isna()].reset_index(drop=True)
    labels = data.labels.copy()
    pairs = found.reset_index(names="episode").merge(
        labels.reset_index(names="label"), on=["tenant_id", "metric"], suffixes=("", "_label")
    )
    overlap = (pairs["start"] <= pairs["end_label"] + pd.Timedelta(days=1)) & (
        pairs["end"] >= pairs["start_label"]
    )
    hits = pairs[overlap]
    labels["found"] = labels.index.isin(hits["label"])
    labels["on_first_day"] = labels.index.isin(
        hits.loc[hits["start"] == hits["start_label"], "label"]
    )
    found["true"] = found.index.isin(hits["episode"])
    found["kind_of_metric"] = found["metric"].map(KIND_OF)
    # Findings on the days around an upgrade's storage step (should be none).
    steps = found[found["metric"] == "storage_gb"].merge(data.upgrades, on="tenant_id")
    near = steps[((steps["start"] - steps["day"]).abs() <= pd.Timedelta(days=7)) & ~steps["true"]]
    labels["band"] = np.where(
        labels["kind"] == "spike",
        np.where(labels["factor"] >= 10, "spike >=10x", "spike 5-10x"),
        labels["kind"],
    )
    recall = (
        labels.groupby(["band"])
        .agg(
            labelled=("found", "size"), found=("found", "sum"), on_first_day=("on_first_day", "sum")
        )
        .assign(recall=lambda f: (f["found"] / f["labelled"]).round(3))
    )
    by_kind = []
    for kind, months in sorted(data.series_months.items()):
        mine = found[found["kind_of_metric"] == kind]
        false = int((~mine["true"]).sum())
        by_kind.append(
            {
                "kind": kind,
                "findings": len(mine),
                "true": int(mine["true"].sum()),
                "false alarms": false,
                "tenant-metric-months": months,
                "false per 1,000": round(1000 * false / months, 2),
                "precision": round(mine["true"].mean(), 3) if len(mine) else float("nan"),
            }
        )
    return {
        "recall": recall.reset_index(),
        "by_kind": pd.DataFrame(by_kind),
        "false_alarms": found[~found["true"]],
        "missed": labels[~labels["found"]],
        "upgrade_findings": near,
    }
