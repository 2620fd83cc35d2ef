"""Usage events as numpy arrays: smooth daily volumes that hit monthly targets exactly.

Each day's count is a cumulative rounding of the expected volume (weekday/weekend
swing and a little day-to-day noise), so no clean series ever looks like an anomaly
under the policy's rule, while month totals land exactly where the plan puts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from licensing_pipeline.contract.catalog import Catalog
from licensing_pipeline.demo.expected import (
    entitlement_on,
    resolution_day,
)
from licensing_pipeline.demo.plan import (
    API,
    AUDIT,
    CLEAN,
    EVENT_TYPES,
    EXPIRED,
    EXPORT,
    F_ANALYTICS,
    F_API,
    F_AUDIT,
    F_EXPORT,
    F_SANDBOX,
    F_SSO,
    FEATURE,
    FEATURES,
    LOGIN,
    REGION_NAMES,
    REGIONS,
    RESIDENCY_UNKNOWN,
    RESIDENCY_USAGE,
    SNAPSHOT,
    STORAGE,
    UNKNOWN_REGION,
    VALUE_PROPERTIES,
    WEEKDAY_WEIGHT,
    Calendar,
    DemoTenant,
    Targets,
)


@dataclass
class Events:
    """Columns of many events; strings are only made when the files are written."""

    tenant: np.ndarray  # int32 code into the tenant ids
    kind: np.ndarray  # int8: API ... SNAPSHOT
    time_ms: np.ndarray  # int64 UTC epoch milliseconds
    user: np.ndarray  # int32, 0 = none
    feature: np.ndarray  # int8 index into FEATURES, -1 = none
    region: np.ndarray  # int8 index into REGION_NAMES
    value: np.ndarray  # float64: rows, gb or projects; NaN = none

    @classmethod
    def concat(cls, parts: Sequence[Events]) -> Events:
        return cls(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__)
        )

    def take(self, index: np.ndarray) -> Events:
        return Events(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    def __len__(self) -> int:
        return len(self.kind)


def _batch(
    tenant: int,
    kind: int,
    times: np.ndarray,
    user: np.ndarray | int,
    feature: np.ndarray | int,
    region: np.ndarray | int,
    value: np.ndarray | None = None,
) -> Events:
    n = len(times)
    return Events(
        tenant=np.full(n, tenant, dtype=np.int32),
        kind=np.full(n, kind, dtype=np.int8),
        time_ms=np.asarray(times, dtype=np.int64),
        user=np.broadcast_to(user, n).astype(np.int32),
        feature=np.broadcast_to(feature, n).astype(np.int8),
        region=np.broadcast_to(region, n).astype(np.int8),
        value=np.full(n, np.nan) if value is None else value.astype(float),
    )


def _cumround(expected: np.ndarray) -> np.ndarray:
    """Integers within one of ``expected`` each, summing to its rounded total."""
    if len(expected) == 0:
        return np.zeros(0, dtype=np.int64)
    cum = np.floor(np.cumsum(expected) + 0.5)
    return np.diff(cum, prepend=0.0).astype(np.int64)


def _hour_profile(home: str) -> np.ndarray:
    """Share of a day's events per UTC hour: business hours of the home region."""
    local = np.array(
        [1, 1, 1, 1, 1, 2, 4, 7, 10, 12, 12, 11, 10, 11, 12, 11, 9, 7, 5, 4, 3, 2, 2, 1],
        dtype=float,
    )
    shift = {"US": -5, "EU": 1, "UK": 0, "APAC": 9}[REGIONS.get(home, "US")]
    utc = np.roll(local, -shift)
    return utc / utc.sum()


def _spread(
    counts: np.ndarray, profile: np.ndarray, start_ms: int, rng: np.random.Generator, ms: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Day index and UTC time of each event, ``counts[d]`` events on day ``d``."""
    days = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    hours = rng.choice(24, size=len(days), p=profile)
    seconds = hours * 3600 + rng.integers(0, 3600, size=len(days))
    millis = rng.integers(0, 1000, size=len(days)) if ms else 0
    return days, start_ms + days * 86_400_000 + seconds * 1000 + millis


def _daily_counts(
    monthly: np.ndarray, weights: np.ndarray, cal: Calendar, live: np.ndarray
) -> np.ndarray:
    """Each month's target shared over its days by weight; only ``live`` days get events."""
    counts = np.zeros(len(weights), dtype=np.int64)
    for k in range(cal.n_months):
        days = cal.month_days(k)
        total_weight = weights[days].sum()
        realized = days[live[days]]
        counts[realized] = _cumround(monthly[k] * weights[realized] / total_weight)
    return counts


def _allowed_features(t: DemoTenant, cal: Calendar, catalog: Catalog) -> np.ndarray:
    """(day, feature) -> may a clean tenant use it: in its contract that day and that month.

    An inactive period keeps the features of the last active one (usage goes on as before).
    """
    allowed = np.zeros((cal.full_days, len(FEATURES)), dtype=bool)
    last: frozenset[str] = frozenset()
    for d in range(cal.full_days):
        ent = entitlement_on(t.tenant_id, t.contracts, cal.day(d), catalog)
        if ent.entitled:
            period = cal.periods[cal.day_month[d]]
            month = entitlement_on(
                t.tenant_id, t.contracts, resolution_day(period, cal.as_of), catalog
            )
            last = ent.features & month.features if month.entitled else ent.features
        allowed[d] = [f in last for f in FEATURES]
    return allowed


def tenant_events(
    t: DemoTenant,
    tg: Targets,
    cal: Calendar,
    catalog: Catalog,
    rng: np.random.Generator,
    spike_day: int | None,
) -> Events:
    """All of one tenant's events; ``P`` is the last closed month, where seeds land."""
    P = cal.last_closed
    n_full = cal.full_days
    day_index = np.arange(n_full)
    live = (day_index >= t.first_day) & (day_index <= min(t.last_day, cal.n_days - 1))
    noise = np.clip(rng.lognormal(0.0, 0.1, n_full), 0.8, 1.25)
    weights = WEEKDAY_WEIGHT[cal.weekday[:n_full]] * noise
    month_of = cal.day_month[:n_full]
    allowed = _allowed_features(t, cal, catalog)

    home = REGION_NAMES.index(t.home)
    secondary = REGION_NAMES.index(t.secondary) if t.secondary else home
    profile = _hour_profile(t.home)
    parts: list[Events] = []

    def build(
        kind: int,
        times: np.ndarray,
        user: np.ndarray | int,
        feature: np.ndarray | int,
        value: np.ndarray | None = None,
    ) -> None:
        """Client events go to the secondary region one time in ten; reports stay home."""
        region = np.where(rng.random(len(times)) < 0.1, secondary, home)
        if kind in (STORAGE, SNAPSHOT):
            region[:] = home
        parts.append(_batch(t.index, kind, times, user, feature, region, value))

    def users(days: np.ndarray) -> np.ndarray:
        pools = tg.pool[month_of[days]].astype(np.int64)
        return (rng.integers(0, 1 << 30, size=len(days)) % pools) + 1

    # api.request
    counts = _daily_counts(tg.api, weights, cal, live)
    if spike_day is not None:
        k = int(month_of[spike_day])
        typical = tg.api[k] / weights[cal.month_days(k)].sum()
        counts[spike_day] = round(10 * typical)
    days, times = _spread(counts, profile, cal.start_ms, rng, ms=True)
    u = rng.random(len(days))
    feature = np.where(u < 0.12, -1, F_API)
    feature = np.where((u >= 0.12) & (u < 0.18) & allowed[days, F_ANALYTICS], F_ANALYTICS, feature)
    feature = np.where((u >= 0.18) & (u < 0.22) & allowed[days, F_SANDBOX], F_SANDBOX, feature)
    if t.role == FEATURE:
        in_month = np.flatnonzero(month_of[days] == P)
        feature[in_month[rng.random(len(in_month)) < 0.15]] = F_ANALYTICS
        feature[in_month[:5]] = F_ANALYTICS
    build(API, times, users(days), feature)
    if t.role in (RESIDENCY_USAGE, RESIDENCY_UNKNOWN):
        api = parts[-1]
        target = REGION_NAMES.index("us-east-1" if t.role == RESIDENCY_USAGE else UNKNOWN_REGION)
        in_month = np.flatnonzero(month_of[days] == P)
        chosen = in_month[rng.random(len(in_month)) < 0.04]
        if len(chosen) < 3:
            chosen = in_month[:3]
        api.region[chosen] = target

    # auth.login: users in turn, so each month's distinct users is exactly its pool.
    counts = _daily_counts(tg.logins, weights, cal, live)
    days, times = _spread(counts, profile, cal.start_ms, rng, ms=False)
    months = month_of[days]
    starts = np.searchsorted(months, months, side="left")
    user = (np.arange(len(days)) - starts) % tg.pool[months].astype(np.int64) + 1
    sso = allowed[days, F_SSO] & (rng.random(len(days)) < 0.7)
    if t.role == EXPIRED:
        in_month = np.flatnonzero(months == P)
        sso[in_month[rng.random(len(in_month)) < 0.5]] = True
        sso[in_month[:3]] = True
    build(LOGIN, times, user, np.where(sso, F_SSO, -1))

    # report.exported: each month's rows shared out over its export events.
    counts = _daily_counts(tg.exports, weights, cal, live)
    days, times = _spread(counts, profile, cal.start_ms, rng, ms=False)
    rows = np.zeros(len(days))
    months = month_of[days]
    for k in range(cal.n_months):
        mine = np.flatnonzero(months == k)
        if len(mine) == 0:
            continue
        full = max(1.0, round(tg.exports[k]))
        total = tg.rows[k] * min(1.0, len(mine) / full)
        share = rng.uniform(0.6, 1.4, len(mine))
        rows[mine] = _cumround(total * share / share.sum())
    build(EXPORT, times, users(days), F_EXPORT, rows)

    # audit.viewed (not metered): only while audit_log is in the contract.
    counts = _daily_counts(tg.audit, weights, cal, live & allowed[:, F_AUDIT])
    days, times = _spread(counts, profile, cal.start_ms, rng, ms=False)
    build(AUDIT, times, users(days), F_AUDIT)

    # storage.reported twice a day; the second report is the day's maximum.
    live_days = np.flatnonzero(live)
    months = month_of[live_days]
    dom = live_days - np.array([cal.index(cal.month_first[k]) for k in months])
    length = np.array([(cal.month_last[k] - cal.month_first[k]).days + 1 for k in months])
    path = (
        tg.storage_start[months]
        + (tg.storage_end[months] - tg.storage_start[months]) * (dom + 1) / length
    )
    peak = np.round(path, 2)
    early = np.round(path * (1 - rng.uniform(0.0, 0.02, len(path))), 2)
    day_ms = cal.start_ms + live_days * 86_400_000 + t.minute * 60_000
    times = np.concatenate([day_ms + 20 * 60_000, day_ms + (12 * 60 + 20) * 60_000])
    build(STORAGE, times, 0, -1, np.concatenate([early, peak]))

    # workspace.snapshot once a day: the month's project count from a switch day on.
    switch = rng.integers(2, 20, size=cal.n_months)
    previous = np.concatenate([[tg.projects[0]], tg.projects[:-1]])
    value = np.where(dom >= switch[months], tg.projects[months], previous[months])
    build(SNAPSHOT, day_ms + (6 * 60 + 5) * 60_000, 0, -1, value)
    return Events.concat(parts)


def unregistered_events(code: int, cal: Calendar, rng: np.random.Generator) -> Events:
    """A subject with no contract and no tenants.csv row, active for the last ten days."""
    counts = np.zeros(cal.full_days, dtype=np.int64)
    recent = np.arange(max(0, cal.n_days - 10), cal.n_days)
    counts[recent] = rng.integers(8, 14, size=len(recent))
    region = REGION_NAMES.index("us-east-1")
    profile = _hour_profile("us-east-1")
    days, times = _spread(counts, profile, cal.start_ms, rng, ms=True)
    api = _batch(code, API, times, rng.integers(0, 4, len(days)) + 1, F_API, region)
    counts[recent] = 2
    days, times = _spread(counts, profile, cal.start_ms, rng, ms=False)
    login = _batch(code, LOGIN, times, np.arange(len(days)) % 4 + 1, -1, region)
    return Events.concat([api, login])


def after_as_of_events(
    tenants: list[DemoTenant], cal: Calendar, rng: np.random.Generator
) -> Events:
    """A few events past as-of: kept in the files, never evaluated.

    One of them uses a feature its (starter) tenant is not entitled to, so a pipeline that
    evaluates past as-of reports a finding the manifest does not list.
    """
    clean = [t for t in tenants if t.role == CLEAN]
    starters = [t for t in clean if t.plan == "starter"] or clean
    chosen = [starters[0], *[t for t in clean if t is not starters[0]][:2]]
    parts = []
    for i, t in enumerate(chosen):
        n = 4
        day = cal.n_days + (i % 2)
        seconds = np.sort(rng.integers(0, 86_400, size=n))
        seconds[0] = int(rng.integers(60, 4 * 3600))  # just past midnight UTC
        times = cal.start_ms + day * 86_400_000 + seconds * 1000 + rng.integers(0, 1000, size=n)
        feature = np.full(n, F_API)
        if i == 0:
            feature[:2] = F_ANALYTICS
        parts.append(_batch(t.index, API, times, 1, feature, REGION_NAMES.index(t.home)))
    return Events.concat(parts)


def spike_day(cal: Calendar) -> int:
    """A working day about two weeks before as-of, with four weeks of history before it."""
    day = cal.n_days - 1 - 12
    while cal.weekday[day] >= 5:
        day -= 1
    return day


def events_frame(events: Events, tenant_ids: Sequence[str]) -> pd.DataFrame:
    """The events as ``demo.expected.aggregate_usage`` reads them (categoricals: cheap)."""
    feature = events.feature.astype(np.int64)
    frame = pd.DataFrame(
        {
            "tenant_id": pd.Categorical.from_codes(events.tenant, categories=list(tenant_ids)),
            "type": pd.Categorical.from_codes(
                events.kind.astype(np.int64), categories=list(EVENT_TYPES)
            ),
            "time": events.time_ms.astype("datetime64[ms]"),
            "user_id": np.where(events.user > 0, events.user, np.nan),
            "feature": pd.Categorical.from_codes(feature, categories=list(FEATURES)),
            "region": pd.Categorical.from_codes(
                events.region.astype(np.int64), categories=list(REGION_NAMES)
            ),
        }
    )
    for kind, prop in VALUE_PROPERTIES.items():
        frame[prop] = np.where(events.kind == kind, events.value, np.nan)
    return frame
