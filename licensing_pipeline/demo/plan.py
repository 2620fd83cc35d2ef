"""The demo vendor's product, the seeded scenarios, and each tenant's plan.

A tenant's plan is its profile, its contracts and its monthly usage targets. Targets
are set as a share of the entitled quota (50-72 % for clean tenants, 85-95 % for
near-limit ones, over 100 % where a quota breach is seeded), so quotas scale with the
requested event volume and the outcome does not depend on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from licensing_pipeline.contract.catalog import Catalog, Metric, Package, Price
from licensing_pipeline.demo.expected import (
    ContractTerms,
    Entitlement,
    entitlement_on,
    period_last_day,
    resolution_day,
)

# --- the product ---------------------------------------------------------------------

REGIONS: dict[str, str] = {
    "us-east-1": "US",
    "us-west-2": "US",
    "eu-west-1": "EU",
    "eu-central-1": "EU",
    "eu-west-2": "UK",
    "ap-southeast-2": "APAC",
    "ap-northeast-1": "APAC",
}
# Present only in one seeded tenant's events: a region the catalog does not know.
UNKNOWN_REGION = "me-central-1"
REGION_NAMES: tuple[str, ...] = (*REGIONS, UNKNOWN_REGION)
FEATURES: tuple[str, ...] = (
    "api_access",
    "reports_export",
    "sso",
    "audit_log",
    "advanced_analytics",
    "sandbox",
)
F_API, F_EXPORT, F_SSO, F_AUDIT, F_ANALYTICS, F_SANDBOX = range(len(FEATURES))

# Event kinds: CloudEvents type, source, id prefix, the numeric data property (if any).
API, LOGIN, EXPORT, AUDIT, STORAGE, SNAPSHOT = range(6)
EVENT_TYPES = (
    "api.request",
    "auth.login",
    "report.exported",
    "audit.viewed",
    "storage.reported",
    "workspace.snapshot",
)
SOURCES = (
    "api-gateway",
    "identity",
    "reporting",
    "audit-service",
    "storage-metering",
    "workspace-service",
)
ID_PREFIXES = ("req", "login", "exp", "aud", "stor", "snap")
VALUE_PROPERTIES = {EXPORT: "rows", STORAGE: "gb", SNAPSHOT: "projects"}
PARQUET_KINDS = (STORAGE, SNAPSHOT)  # metering sources export Parquet

METRICS: dict[str, Metric] = {
    "api_calls": Metric("api_calls", "api.request", "COUNT"),
    "seats": Metric("seats", "auth.login", "UNIQUE_COUNT", "user_id"),
    "storage_gb": Metric("storage_gb", "storage.reported", "MAX", "gb"),
    "exports": Metric("exports", "report.exported", "SUM", "rows"),
    "active_projects": Metric("active_projects", "workspace.snapshot", "LATEST", "projects"),
}
BILLED_METRICS = ("api_calls", "seats", "storage_gb")
UNIT_PRICES = {"api_calls": 0.01, "seats": 15.0, "storage_gb": 0.25}
CURRENCIES = {"US": "USD", "APAC": "USD", "EU": "EUR", "UK": "GBP"}
OFFSETS = {  # typical UTC offsets of each jurisdiction's clients, in minutes
    "US": (0, -300, -240, -420),
    "EU": (0, 60, 120),
    "UK": (0, 1, 60),  # 1: "+00:00", another spelling of UTC
    "APAC": (0, 540, 600, 330),
}
SUFFIXES = {-420: "-07:00", -300: "-05:00", -240: "-04:00", 0: "Z", 60: "+01:00", 120: "+02:00"}
SUFFIXES.update({330: "+05:30", 540: "+09:00", 600: "+10:00", 1: "+00:00"})
OFFSET_MINUTES = sorted(SUFFIXES)
WEEKDAY_WEIGHT = np.array([1.0, 1.0, 1.0, 0.95, 0.85, 0.42, 0.33])
TRAP_BEFORE, TRAP_AFTER = -300, 120  # offsets that move an event across a local midnight

# --- scenarios -------------------------------------------------------------------------

# The enforcement feed version the stale deployment reports (the shipped bundle is newer).
OUTDATED_FEED_VERSION = "2026.11.0"
QUOTA_EXCEEDED = "quota_exceeded"
QUOTA_NEAR = "quota_near_limit"
FEATURE = "feature_not_entitled"
PAUSED = "inactive_paused"
RESIDENCY_USAGE = "residency_usage"
RESIDENCY_UNKNOWN = "residency_unknown_region"
RESIDENCY_DEPLOYMENT = "residency_deployment"
CONFIG_EXTRA = "config_feature_not_entitled"
CONFIG_MISSING = "config_feature_missing"
CONFIG_QUOTA = "config_quota_mismatch"
UNBILLED = "unbilled_usage"
OVERBILLED = "overbilled_usage"
ANOMALY = "usage_anomaly"
WAIVED = "waived_exception"
EXPIRED = "expired_exception"
UPGRADE = "mid_period_upgrade"
ADDONS = "addons"
OVERRIDE = "quota_override"
CANCELLED = "cancelled"
NEW_CUSTOMER = "new_customer"
CLEAN = "clean"
NEAR = "near_limit"
UNREGISTERED = "unregistered_subject"


@dataclass(frozen=True)
class Scenario:
    role: str
    plan: str
    enforcement: str
    checks: frozenset[str]  # the checks this tenant must produce (and no others)
    description: str
    addons: tuple[str, ...] = ()
    home: str | None = None
    residency: str | None = None


def _scenario(row: tuple[Any, ...]) -> Scenario:
    role, plan, enforcement, check, description, *extra = row
    checks = frozenset([check] if isinstance(check, str) else check or [])
    return Scenario(role, plan, enforcement, checks, description, *extra)


# role, plan, enforcement, the check it must produce (None: clean; a tuple: these), what it shows,
# [add-ons, home region, residency]. One tenant each.
# fmt: off
SCENARIOS: tuple[Scenario, ...] = tuple(_scenario(row) for row in (
    (QUOTA_EXCEEDED, "growth", "hard", "quota_exceeded", "api_calls 12% over quota in the last closed month"),
    (QUOTA_NEAR, "growth", "soft", "quota_near_limit", "22 of 25 seats in the last closed month"),
    (FEATURE, "starter", "hard", "feature_not_entitled", "advanced_analytics used without the add-on"),
    (PAUSED, "growth", "soft", "inactive_contract_usage", "contract paused, usage continues"),
    (RESIDENCY_USAGE, "growth", "hard", "residency_violation",
     "EU-only tenant with events processed in us-east-1", (), "eu-west-1", "EU"),
    (RESIDENCY_UNKNOWN, "starter", "soft", "residency_violation",
     f"UK-only tenant with events in {UNKNOWN_REGION}, a region missing from the catalog",
     (), "eu-west-2", "UK"),
    (RESIDENCY_DEPLOYMENT, "enterprise", "hard", "residency_violation",
     "EU-only tenant with a DR deployment in us-east-1", (), "eu-central-1", "EU"),
    (CONFIG_EXTRA, "growth", "hard", "config_feature_not_entitled", "deployment enables advanced_analytics"),
    (CONFIG_MISSING, "enterprise", "soft", "config_feature_missing", "both deployments lack audit_log",
     ("analytics",)),
    (CONFIG_QUOTA, "starter", "hard", ("config_quota_mismatch", "config_policy_outdated"),
     f"deployment enforces a stale api_calls limit, from enforcement feed {OUTDATED_FEED_VERSION}"),
    (UNBILLED, "growth", "soft", "unbilled_usage", "api_calls invoiced at 72% of measured usage"),
    (OVERBILLED, "starter", "soft", "overbilled_usage", "3 seats invoiced beyond measured usage"),
    (ANOMALY, "enterprise", "hard", "usage_anomaly", "one-day api_calls spike, ~10x the daily norm"),
    (WAIVED, "starter", "hard", "quota_exceeded",
     "storage_gb over quota, waived by an exception that has not expired"),
    (EXPIRED, "starter", "soft", "feature_not_entitled",
     "sso used without entitlement; its exception expired before as-of"),
    (UPGRADE, "starter", "soft", None, "clean: upgraded starter -> growth mid-month"),
    (ADDONS, "growth", "hard", None, "clean: analytics + seats_pack_10 (27 seats, above the plan's 25)",
     ("analytics", "seats_pack_10")),
    (OVERRIDE, "starter", "soft", None, "clean: api_calls override above the plan's quota"),
    (CANCELLED, "starter", "soft", None, "clean: renewal cancelled, usage stopped"),
    (NEW_CUSTOMER, "growth", "soft", None, "clean: contract and usage start mid-history"),
))
# fmt: on
# Metrics a near-limit tenant may be close to (enterprise leaves the others unlimited).
NEAR_METRICS = {
    "enterprise": ("storage_gb", "seats"),
    "other": ("api_calls", "storage_gb", "exports", "active_projects"),
}
MIN_CLEAN_TENANTS = 2
MIN_TENANTS = len(SCENARIOS) + MIN_CLEAN_TENANTS
MIN_MONTHS = 3
MIN_UNIT = 20.0  # the smallest starter api_calls quota worth demonstrating

NAME_PREFIXES = (
    "Acme", "Northwind", "Bluefin", "Crescent", "Driftwood", "Evergreen", "Foxglove", "Granite",
    "Harbor", "Ironbark", "Juniper", "Kestrel", "Lumen", "Meridian", "Nimbus", "Orchard",
    "Pinnacle", "Quartz", "Riverstone", "Saffron", "Tidewater", "Umber", "Vantage", "Willow",
    "Yarrow", "Zephyr", "Atlas", "Beacon", "Cobalt", "Delta",
)  # fmt: skip
NAME_SUFFIXES = (
    "Analytics", "Logistics", "Health", "Labs", "Retail", "Energy", "Finance", "Media",
    "Robotics", "Foods", "Travel", "Systems",
)  # fmt: skip
FIRST_NAMES = ("ana", "ben", "chloe", "dev", "elif", "femi", "grace", "hiro", "ines", "jonas")
LAST_NAMES = ("okafor", "lindqvist", "moreau", "tanaka", "silva", "novak", "reyes", "khan")


# --- calendar --------------------------------------------------------------------------


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


class Calendar:
    """Days and months of the history: ``months`` calendar months ending with as-of's."""

    def __init__(self, as_of: date, months: int) -> None:
        self.as_of = as_of
        self.month_first = [
            _add_months(as_of.replace(day=1), k - months + 1) for k in range(months)
        ]
        self.month_last = [period_last_day(f"{d:%Y-%m}") for d in self.month_first]
        self.periods = [f"{d:%Y-%m}" for d in self.month_first]
        self.start = self.month_first[0]
        self.n_days = (as_of - self.start).days + 1  # days with evaluated events
        self.full_days = (self.month_last[-1] - self.start).days + 1
        self.n_months = months
        span = np.arange(self.full_days + 3)
        dates = np.datetime64(self.start, "D") + span
        self.weekday = ((dates.astype(np.int64) + 3) % 7).astype(np.int64)  # 1970-01-01: Thu
        month_index = dates.astype("datetime64[M]").astype(np.int64)
        self.day_month = np.clip(month_index - month_index[0], 0, months - 1)
        self.is_first = dates == dates.astype("datetime64[M]").astype("datetime64[D]")
        self.is_last = (dates + 1) == (dates + 1).astype("datetime64[M]").astype("datetime64[D]")
        self.closed = [last <= as_of for last in self.month_last]
        self.last_closed = max(k for k, c in enumerate(self.closed) if c)
        midnight = datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)
        self.start_ms = int(midnight.timestamp()) * 1000  # UTC epoch ms of the first day
        self.end_ms = self.start_ms + self.n_days * 86_400_000  # the end of the as-of day

    def day(self, index: int) -> date:
        return self.start + timedelta(days=index)

    def index(self, day: date) -> int:
        return (day - self.start).days

    def month_days(self, k: int) -> np.ndarray:
        return np.arange(self.index(self.month_first[k]), self.index(self.month_last[k]) + 1)


# --- tenants and their plans -------------------------------------------------------------


@dataclass
class DemoTenant:
    """A tenant's profile and plan; ``first_day``/``last_day`` bound its usage (day indexes)."""

    index: int  # position in the event arrays' tenant codes
    tenant_id: str
    role: str
    plan: str
    enforcement: str
    addons: tuple[str, ...]
    home: str
    residency: str | None
    secondary: str | None  # a second processing region the residency allows
    name: str = ""
    segment: str = ""
    description: str = ""
    expected_checks: frozenset[str] = frozenset()
    near_metric: str | None = None
    contracts: list[ContractTerms] = field(default_factory=list)
    first_day: int = 0
    last_day: int = 0  # inclusive, may be before as-of (usage stopped)
    minute: int = 0  # spreads fixed-time reports of tenants apart
    quota_subset: bool = False  # deployment config names only some quotas
    owner_email: str = ""
    slack_channel: str = ""


def _allowed_regions(residency: str | None) -> list[str]:
    if residency is None or residency == "ANY":
        return list(REGIONS)
    allowed = set(residency.split(";"))
    return [r for r, j in REGIONS.items() if j in allowed]


def _generic_profile(rng: np.random.Generator) -> tuple[str, str, tuple[str, ...], str, str | None]:
    plan = str(rng.choice(["starter", "growth", "enterprise"], p=[0.45, 0.35, 0.2]))
    enforcement = "hard" if plan == "enterprise" or rng.random() < 0.35 else "soft"
    addons: list[str] = []
    if plan != "starter" and rng.random() < 0.35:
        addons.append("analytics")
    if plan == "growth" and rng.random() < 0.25:
        addons.append("seats_pack_10")
    if rng.random() < 0.2:
        addons.append("storage_pack_100")
    if plan != "enterprise" and rng.random() < 0.2:
        addons.append("sandbox_env")
    jurisdiction = str(rng.choice(["US", "EU", "UK", "APAC"], p=[0.4, 0.35, 0.1, 0.15]))
    home = str(rng.choice([r for r, j in REGIONS.items() if j == jurisdiction]))
    residency: str | None = None
    draw = rng.random()
    if jurisdiction == "EU":
        residency = "EU" if draw < 0.6 else "EU;UK" if draw < 0.8 else None
    elif jurisdiction == "UK":
        residency = "UK" if draw < 0.5 else "EU;UK"
    elif jurisdiction == "US":
        residency = "US" if draw < 0.3 else "ANY" if draw < 0.45 else None
    else:
        residency = "APAC" if draw < 0.5 else None
    return plan, enforcement, tuple(sorted(addons)), home, residency


def plan_tenants(n: int, cal: Calendar, rng: np.random.Generator) -> list[DemoTenant]:
    width = max(4, len(str(n + 1)))
    roles: list[Scenario | None] = [*SCENARIOS, *([None] * (n - len(SCENARIOS)))]
    order = rng.permutation(n)
    generic_positions = sorted(
        int(p) for p, i in zip(range(n), order, strict=True) if i >= len(SCENARIOS)
    )
    near_count = max(1, round(len(generic_positions) * 0.25))
    near_positions = set(
        generic_positions[:: max(1, len(generic_positions) // near_count)][:near_count]
    )
    name_order = rng.permutation(max(n, 360))
    tenants: list[DemoTenant] = []
    for position in range(n):
        scenario = roles[int(order[position])]
        tenant_id = f"t-{position + 1:0{width}d}"
        if scenario is None:
            plan, enforcement, addons, home, residency = _generic_profile(rng)
            role = NEAR if position in near_positions else CLEAN
            checks = frozenset({"quota_near_limit"}) if role == NEAR else frozenset()
            description = "clean, near a quota" if role == NEAR else "clean"
        else:
            plan, enforcement, addons = scenario.plan, scenario.enforcement, scenario.addons
            role, checks, description = scenario.role, scenario.checks, scenario.description
            jurisdiction = str(rng.choice(["US", "EU", "APAC"], p=[0.5, 0.35, 0.15]))
            home = scenario.home or str(
                rng.choice([r for r, j in REGIONS.items() if j == jurisdiction])
            )
            residency = scenario.residency
        allowed = [r for r in _allowed_regions(residency) if r != home]
        same = [r for r in allowed if REGIONS[r] == REGIONS[home]]
        secondary = str(rng.choice(same or allowed)) if (same or allowed) else None
        tenant = DemoTenant(
            index=position,
            tenant_id=tenant_id,
            role=role,
            plan=plan,
            enforcement=enforcement,
            addons=addons,
            home=home,
            residency=residency,
            secondary=secondary,
            description=description,
            expected_checks=checks,
            first_day=0,
            last_day=cal.n_days - 1,
            minute=int(rng.integers(0, 40)),
            quota_subset=bool(rng.random() < 0.3),
        )
        if role == NEAR:
            choices = NEAR_METRICS["enterprise" if plan == "enterprise" else "other"]
            tenant.near_metric = choices[position % len(choices)]
        _name(tenant, int(name_order[position]), rng)
        tenants.append(tenant)
    return tenants


def _name(tenant: DemoTenant, number: int, rng: np.random.Generator) -> None:
    q, a = divmod(number % 360, len(NAME_PREFIXES))
    name = f"{NAME_PREFIXES[a]} {NAME_SUFFIXES[(7 * q + a) % len(NAME_SUFFIXES)]}"
    if number >= 360:
        name += f" {number // 360 + 1}"
    tenant.name = name
    slug = name.lower().replace(" ", "-")
    first = FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))]
    last = LAST_NAMES[int(rng.integers(len(LAST_NAMES)))]
    tenant.segment = {"starter": "smb", "growth": "mid_market", "enterprise": "enterprise"}[
        tenant.plan
    ]
    if tenant.plan == "growth" and rng.random() < 0.15:
        tenant.segment = "smb"
    tenant.owner_email = f"{first}.{last}@{slug.replace('-', '')}.example.com"
    tenant.slack_channel = f"#acct-{slug}"


# --- catalog and contracts --------------------------------------------------------------


def nice(value: float) -> float:
    """Two significant digits: quotas read like list prices."""
    if value <= 0:
        return 0.0
    digits = 10 ** (math.floor(math.log10(value)) - 1)
    return float(round(value / digits) * digits)


def _usd(amount: float) -> Price:
    return Price(float(amount), "USD", "month")


def build_catalog(unit: float, version: str) -> Catalog:
    """Quotas scale with ``unit`` (the starter api_calls quota) so any size fits them; list
    prices are monthly, in USD."""
    plans = {
        "starter": Package(
            "starter",
            ("api_access", "reports_export"),
            {
                "api_calls": unit,
                "seats": 5.0,
                "storage_gb": 50.0,
                "exports": 10 * unit,
                "active_projects": 10.0,
            },
            _usd(49),
        ),
        "growth": Package(
            "growth",
            ("api_access", "reports_export", "sso", "audit_log"),
            {
                "api_calls": 4 * unit,
                "seats": 25.0,
                "storage_gb": 500.0,
                "exports": 40 * unit,
                "active_projects": 50.0,
            },
            _usd(199),
        ),
        "enterprise": Package(
            "enterprise",
            ("api_access", "reports_export", "sso", "audit_log", "sandbox"),
            {"seats": 250.0, "storage_gb": 5000.0},
            _usd(899),
        ),
    }
    addons = {
        "seats_pack_10": Package("seats_pack_10", (), {"seats": 10.0}, _usd(40)),
        "storage_pack_100": Package("storage_pack_100", (), {"storage_gb": 100.0}, _usd(15)),
        "analytics": Package("analytics", ("advanced_analytics",), {}, _usd(99)),
        "sandbox_env": Package("sandbox_env", ("sandbox",), {"active_projects": 10.0}, _usd(60)),
    }
    return Catalog(version, dict(REGIONS), FEATURES, dict(METRICS), plans, addons)


# Volumes for metrics a plan leaves unlimited, in units of the starter api_calls quota.
UNLIMITED_REFERENCE = {"api_calls": 10.0, "exports": 100.0, "active_projects": 200.0}


def sign_contracts(
    tenants: list[DemoTenant], cal: Calendar, unit: float, rng: np.random.Generator
) -> None:
    """Contracts per scenario; ``P`` is the last closed month, where most seeds land."""
    number = 1000
    P = cal.last_closed

    def add(
        t: DemoTenant,
        plan: str,
        start: date,
        end: date | None,
        status: str = "active",
        addons: tuple[str, ...] | None = None,
        overrides: dict[str, float] | None = None,
    ) -> None:
        nonlocal number
        number += 1
        t.contracts.append(
            ContractTerms(
                contract_id=f"C-{number}",
                tenant_id=t.tenant_id,
                plan=plan,
                addons=t.addons if addons is None else addons,
                quota_overrides=overrides or {},
                start_date=start,
                end_date=end,
                status=status,
                enforcement=t.enforcement,
            )
        )

    for t in tenants:
        signed = cal.start - timedelta(days=int(rng.integers(45, 700)))
        if t.role == UPGRADE:
            upgrade = cal.month_first[P - 1] + timedelta(days=14)
            add(t, "starter", signed, upgrade - timedelta(days=1))
            add(t, "growth", upgrade, None)
        elif t.role == PAUSED:
            add(t, t.plan, signed, cal.month_last[P - 1])
            add(t, t.plan, cal.month_first[P], None, status="paused")
        elif t.role == CANCELLED:
            add(t, t.plan, signed, cal.month_last[P - 1])
            add(
                t,
                t.plan,
                cal.month_first[P],
                cal.month_first[P] + timedelta(days=364),
                status="cancelled",
            )
            t.last_day = cal.index(cal.month_last[P - 1])
        elif t.role == NEW_CUSTOMER:
            start = cal.month_first[1] + timedelta(days=9)
            add(t, t.plan, start, None)
            t.first_day = cal.index(start)
        elif t.role == OVERRIDE:
            add(t, t.plan, signed, None, overrides={"api_calls": 2 * unit})
        elif t.role in (CLEAN, NEAR) and rng.random() < 0.3:
            renewal = signed + timedelta(days=365)
            while renewal <= cal.start:
                renewal += timedelta(days=365)
            add(t, t.plan, signed, renewal - timedelta(days=1))
            end = renewal + timedelta(days=364)
            add(t, t.plan, renewal, end if end > cal.as_of + timedelta(days=30) else None)
        else:
            add(t, t.plan, signed, None)


# --- monthly targets -------------------------------------------------------------------


@dataclass
class Targets:
    """Full-month targets per tenant (arrays over the history's months)."""

    api: np.ndarray
    logins: np.ndarray
    exports: np.ndarray  # export events
    rows: np.ndarray  # exported rows
    audit: np.ndarray
    pool: np.ndarray  # distinct users (seats)
    storage_end: np.ndarray  # gb at each month's end
    storage_start: np.ndarray
    projects: np.ndarray  # active projects from the month's switch day on


def _month_entitlements(t: DemoTenant, cal: Calendar, catalog: Catalog) -> list[Entitlement]:
    """Per month, the entitlement usage is shaped after (the last active one when inactive)."""
    out: list[Entitlement] = []
    previous: Entitlement | None = None
    for period in cal.periods:
        ent = entitlement_on(t.tenant_id, t.contracts, resolution_day(period, cal.as_of), catalog)
        if not ent.entitled:
            if previous is None:
                previous = last_active(t, catalog)
            ent = previous
        out.append(ent)
        previous = ent
    return out


def last_active(t: DemoTenant, catalog: Catalog) -> Entitlement:
    last = max((c for c in t.contracts if c.status == "active"), key=lambda c: c.start_date)
    return entitlement_on(t.tenant_id, [last], last.start_date, catalog)


def _ratio_path(rng: np.random.Generator, n: int) -> np.ndarray:
    start = rng.uniform(0.5, 0.6)
    return np.linspace(start, rng.uniform(start, 0.72), n)


def _near_path(rng: np.random.Generator, n: int, peak_month: int) -> np.ndarray:
    peak = rng.uniform(0.86, 0.93)
    k = np.arange(n, dtype=float)
    rise = 0.55 + (peak - 0.55) * (k / max(peak_month, 1)) ** 3
    return np.where(k <= peak_month, np.minimum(rise, np.where(k < peak_month, 0.74, peak)), peak)


def _whole(ratio: np.ndarray, limit: np.ndarray, near: bool) -> np.ndarray:
    """Integer usage under the ratio; near-limit months land at 85-95 % of the limit."""
    usage = np.floor(ratio * limit)
    if near:
        at_limit = np.clip(usage, np.ceil(0.85 * limit), np.floor(0.95 * limit))
        usage = np.where(ratio > 0.8, at_limit, usage)
    return np.maximum(usage, 1.0)


def _cap(values: np.ndarray, factor: float) -> np.ndarray:
    """Month-to-month growth at most ``factor``: no step change looks like an anomaly."""
    out = values.astype(float).copy()
    for k in range(1, len(out)):
        if out[k - 1] > 0:
            out[k] = min(out[k], out[k - 1] * factor)
    return out


def monthly_targets(
    t: DemoTenant, cal: Calendar, catalog: Catalog, unit: float, rng: np.random.Generator
) -> Targets:
    """Full-month usage: a share of each month's entitled quota, then the tenant's seed."""
    M, P = cal.n_months, cal.last_closed
    ents = _month_entitlements(t, cal, catalog)
    limit = {
        m: np.array([e.quotas.get(m, UNLIMITED_REFERENCE.get(m, 0.0) * unit) for e in ents])
        for m in METRICS
    }
    ratio = {m: _ratio_path(rng, M) for m in METRICS}
    if t.near_metric:
        ratio[t.near_metric] = _near_path(rng, M, P)
    api = ratio["api_calls"] * limit["api_calls"]
    rows = ratio["exports"] * limit["exports"]
    storage = np.round(ratio["storage_gb"] * limit["storage_gb"], 2)
    pool = _whole(ratio["seats"], limit["seats"], t.near_metric == "seats")
    projects = np.maximum(
        3.0,
        _whole(
            ratio["active_projects"], limit["active_projects"], t.near_metric == "active_projects"
        ),
    )
    storage_drop = np.zeros(M, dtype=bool)
    if t.role == QUOTA_EXCEEDED:
        api[P] = 1.12 * limit["api_calls"][P]
        api[P + 1 :] = 0.62 * limit["api_calls"][P + 1 :]
    elif t.role == QUOTA_NEAR:
        pool[P] = 22.0
        pool[P + 1 :] = np.minimum(pool[P + 1 :], 18.0)
    elif t.role == ADDONS:
        pool[:] = 27.0
    elif t.role == WAIVED:
        storage[P] = round(1.04 * limit["storage_gb"][P], 2)
        storage[P + 1 :] = np.round(0.66 * limit["storage_gb"][P + 1 :], 2)
        storage_drop[P + 1 :] = True  # cleaned up: the next month starts low
    if t.role != QUOTA_EXCEEDED:
        api = _cap(api, 1.7)
    rows = _cap(rows, 1.7)
    pool = np.floor(_cap(pool, 1.7))
    projects = np.floor(_cap(projects, 1.6))
    storage = np.round(_cap(storage, 2.5), 2)
    storage_start = np.concatenate([[round(storage[0] * 0.93, 2)], storage[:-1]])
    storage_start = np.where(storage_drop, storage, storage_start)
    logins = np.maximum(0.12 * api, 1.2 * pool)  # every user logs in each month
    if t.role == EXPIRED:
        logins[P] = max(logins[P], 12.0)  # enough logins to show the sso use
    # Exports on most working days: a daily SUM that is mostly zero has no baseline.
    exports = np.maximum(0.05 * api, 40.0)
    audit = np.array(
        [0.03 * a if "audit_log" in e.features else 0.0 for a, e in zip(api, ents, strict=True)]
    )
    return Targets(api, logins, exports, rows, audit, pool, storage, storage_start, projects)


def estimate_events(tenants: list[DemoTenant], targets: dict[str, Targets], cal: Calendar) -> float:
    """Events the targets will produce, to size the quotas to the requested volume."""
    total = 0.0
    for t in tenants:
        tg = targets[t.tenant_id]
        for k in range(cal.n_months):
            days = cal.month_days(k)
            live = days[(days >= t.first_day) & (days <= min(t.last_day, cal.n_days - 1))]
            share = len(live) / len(days)
            volume = tg.api[k] + tg.logins[k] + tg.exports[k] + tg.audit[k]
            total += share * volume + 3 * len(live)  # + storage twice a day, one snapshot
    return total
