"""The demo dataset: realistic, contract-conformant exports with known, seeded violations.

`generate_demo` writes a data folder as described in the data contract and a manifest
(`demo_manifest.json`) listing every finding the pipeline must report for it. Each check
of the contract's vocabulary is seeded into its own tenant; every other tenant is clean,
some of them close to (but under) a quota. The manifest is not written from intent alone:
the generated events are aggregated and evaluated with the brief's semantics
(`demo.expected`), and a dataset whose outcome differs from the plan is refused.

Events are generated per tenant with numpy (smooth daily volumes, a weekday/weekend swing,
monthly targets hit exactly) and serialised with pyarrow string kernels, so 1M events take
seconds. Same seed, as-of and sizes give byte-identical files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from licensing_pipeline.contract.catalog import Catalog
from licensing_pipeline.demo.events import (
    Events,
    after_as_of_events,
    events_frame,
    spike_day,
    tenant_events,
    unregistered_events,
)
from licensing_pipeline.demo.expected import (
    Thresholds,
    aggregate_usage,
    expected_findings,
)
from licensing_pipeline.demo.files import (
    BAD_LINE_COUNT,
    TABLE_FILES,
    prepare_folder,
    write_tables,
    write_usage,
)
from licensing_pipeline.demo.plan import (
    ANOMALY,
    EXPIRED,
    MIN_CLEAN_TENANTS,
    MIN_MONTHS,
    MIN_TENANTS,
    MIN_UNIT,
    SCENARIOS,
    UNREGISTERED,
    WAIVED,
    Calendar,
    DemoTenant,
    Targets,
    build_catalog,
    estimate_events,
    monthly_targets,
    nice,
    plan_tenants,
    sign_contracts,
)
from licensing_pipeline.demo.records import (
    billing_records,
    deployment_observations,
    deployments_frame,
    policy_exceptions,
)

Progress = Callable[[int, int], None]

MANIFEST_NAME = "demo_manifest.json"


# --- manifest --------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedViolation:
    """A finding the pipeline must report, as it will report it."""

    tenant_id: str
    check: str
    subject: str
    period: str  # YYYY-MM, or YYYY-MM-DD for usage_anomaly
    expected_status: str  # open | waived
    observed: float
    allowed: float


@dataclass
class DemoManifest:
    """What was generated and what the pipeline must find in it.

    ``violations`` is every expected finding (including the quota_near_limit notices of
    near-limit tenants). ``clean_tenants`` have no finding at all; ``near_limit_tenants``
    have only quota_near_limit notices. ``total_events`` counts distinct valid events
    (including the ``events_after_as_of``); ``duplicates`` are extra deliveries of them
    and ``expected_quarantined`` bad lines, so ``records_written`` is the sum of the three.
    """

    as_of: str
    seed: int
    tenants: int
    months: int
    events_per_tenant: int
    catalog_version: str
    periods: list[str]
    violations: list[ExpectedViolation]
    clean_tenants: list[str]
    near_limit_tenants: list[str]
    unregistered_subjects: list[str]
    scenarios: dict[str, str]
    expected_quarantined: int
    duplicates: int
    events_after_as_of: int
    total_events: int
    records_written: int
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DemoManifest:
        values = dict(data)
        values["violations"] = [ExpectedViolation(**v) for v in data["violations"]]
        return cls(**values)

    @classmethod
    def load(cls, path: Path) -> DemoManifest:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _verify(findings: pd.DataFrame, tenants: list[DemoTenant], unregistered: str) -> None:
    """Refuse a dataset whose outcome is not the plan: the manifest would mislead."""
    problems: list[str] = []
    by_tenant = {tid: set(group["check"]) for tid, group in findings.groupby("tenant_id")}
    for t in [*tenants, None]:
        tid = unregistered if t is None else t.tenant_id
        expected = frozenset({"inactive_contract_usage"}) if t is None else t.expected_checks
        got = by_tenant.get(tid, set())
        if got != set(expected):
            problems.append(
                f"{tid} ({'unregistered' if t is None else t.role}): expected {sorted(expected)}, got {sorted(got)}"
            )
    anomalies = findings[findings["check"] == "usage_anomaly"]
    if len(anomalies) != 1:
        problems.append(f"expected one usage_anomaly, got {len(anomalies)}")
    statuses = {(r.tenant_id, r.check): r.status for r in findings.itertuples(index=False)}
    for t in tenants:
        if t.role == WAIVED and statuses.get((t.tenant_id, "quota_exceeded")) != "waived":
            problems.append(f"{t.tenant_id}: the unexpired exception does not waive its finding")
        if t.role == EXPIRED and statuses.get((t.tenant_id, "feature_not_entitled")) != "open":
            problems.append(f"{t.tenant_id}: the expired exception still waives its finding")
    if problems:
        raise RuntimeError(
            "demo generator produced an unintended outcome:\n  " + "\n  ".join(problems)
        )


# --- the entry point -------------------------------------------------------------------


def generate_demo(
    out_dir: Path,
    *,
    tenants: int = 40,
    months: int = 6,
    events_per_tenant: int = 2500,
    seed: int = 7,
    as_of: date,
    progress: Progress | None = None,
) -> DemoManifest:
    """Write the demo dataset to ``out_dir`` and return (and write) its manifest.

    ``months`` calendar months of history end with as-of's month; events go up to the
    end of the as-of day (UTC), plus a few after it. ``progress(done, total)`` counts
    records written. Raises ValueError when the sizes cannot hold every scenario.
    """
    if tenants < MIN_TENANTS:
        raise ValueError(
            f"tenants={tenants} is too small: the demo seeds {len(SCENARIOS)} scenario tenants "
            f"and needs at least {MIN_CLEAN_TENANTS} clean ones, so use --tenants {MIN_TENANTS} "
            "or more"
        )
    if months < MIN_MONTHS:
        raise ValueError(
            f"months={months} is too small: the seeded scenarios need two closed months and "
            f"four weeks of history, so use --months {MIN_MONTHS} or more"
        )
    out_dir = Path(out_dir)
    cal = Calendar(as_of, months)
    plan = plan_tenants(tenants, cal, np.random.default_rng([seed, 0]))
    catalog, targets = _size_quotas(plan, cal, seed, tenants * events_per_tenant)
    prepare_folder(out_dir)

    tenant_ids = [t.tenant_id for t in plan]
    unregistered = f"t-{tenants + 101:0{max(4, len(str(tenants + 101)))}d}"
    events = _events(plan, targets, cal, catalog, seed)
    findings, billing, deployments, exceptions = _evaluate(
        plan, events, [*tenant_ids, unregistered], cal, catalog, seed
    )
    _verify(findings, plan, unregistered)

    usage = write_usage(
        out_dir, events, [*tenant_ids, unregistered], plan, cal, seed, progress=progress
    )
    write_tables(out_dir, plan, catalog, billing, deployments, exceptions)
    checks = {tid: set(g["check"]) for tid, g in findings.groupby("tenant_id")}
    manifest = DemoManifest(
        as_of=as_of.isoformat(),
        seed=seed,
        tenants=tenants,
        months=months,
        events_per_tenant=events_per_tenant,
        catalog_version=catalog.version,
        periods=list(cal.periods),
        violations=[
            ExpectedViolation(
                tenant_id=str(r.tenant_id),
                check=str(r.check),
                subject=str(r.subject),
                period=str(r.period),
                expected_status=str(r.status),
                observed=float(r.observed),
                allowed=float(r.allowed),
            )
            for r in findings.itertuples(index=False)
        ],
        clean_tenants=sorted(t for t in tenant_ids if t not in checks),
        near_limit_tenants=sorted(t for t, c in checks.items() if c == {"quota_near_limit"}),
        unregistered_subjects=[unregistered],
        scenarios={
            **{t.tenant_id: f"{t.role}: {t.description}" for t in plan},
            unregistered: f"{UNREGISTERED}: usage from a subject with no contract and no "
            "tenants.csv row",
        },
        expected_quarantined=BAD_LINE_COUNT,
        duplicates=usage.duplicates,
        events_after_as_of=int((events.time_ms >= cal.end_ms).sum()),
        total_events=len(events),
        records_written=usage.records,
        files=sorted([*usage.files, *TABLE_FILES]),
    )
    (out_dir / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def _size_quotas(
    plan: list[DemoTenant], cal: Calendar, seed: int, budget: int
) -> tuple[Catalog, dict[str, Targets]]:
    """Find the quota unit (starter api_calls) at which the plan yields ``budget`` events."""

    def build(unit: float) -> tuple[Catalog, dict[str, Targets], float]:
        catalog = build_catalog(unit, cal.month_first[-1].isoformat())
        for t in plan:
            t.contracts = []
        sign_contracts(plan, cal, unit, np.random.default_rng([seed, 1]))
        targets = {
            t.tenant_id: monthly_targets(
                t, cal, catalog, unit, np.random.default_rng([seed, 2, t.index])
            )
            for t in plan
        }
        return catalog, targets, estimate_events(plan, targets, cal)

    low, high = 10.0, 1e9
    for _ in range(30):  # bisection in log space; events grow with the unit
        middle = math.sqrt(low * high)
        low, high = (low, middle) if build(middle)[2] > budget else (middle, high)
    unit = nice(low)
    if unit < MIN_UNIT:
        minimum = math.ceil(build(MIN_UNIT)[2] / len(plan))
        raise ValueError(
            f"events_per_tenant={budget // len(plan)} is too small for months={cal.n_months}: "
            f"the demo needs at least {minimum} events per tenant (daily storage reports and "
            "project snapshots, logins and exports every working day)"
        )
    catalog, targets, _ = build(unit)
    return catalog, targets


def _events(
    plan: list[DemoTenant], targets: dict[str, Targets], cal: Calendar, catalog: Catalog, seed: int
) -> Events:
    """Every event, sorted by time; each tenant from its own random stream."""
    spike = spike_day(cal)
    parts = [
        tenant_events(
            t,
            targets[t.tenant_id],
            cal,
            catalog,
            np.random.default_rng([seed, 3, t.index]),
            spike if t.role == ANOMALY else None,
        )
        for t in plan
    ]
    parts.append(unregistered_events(len(plan), cal, np.random.default_rng([seed, 4])))
    parts.append(after_as_of_events(plan, cal, np.random.default_rng([seed, 5])))
    events = Events.concat(parts)
    return events.take(np.lexsort((events.kind, events.tenant, events.time_ms)))


def _evaluate(
    plan: list[DemoTenant],
    events: Events,
    subjects: list[str],
    cal: Calendar,
    catalog: Catalog,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]], list[dict[str, str]]]:
    """The other exports, and the findings the brief's semantics make of everything."""
    usage = aggregate_usage(events_frame(events, subjects), catalog, cal.as_of)
    billing = billing_records(plan, usage, cal, catalog)
    deployments = deployment_observations(plan, cal, catalog, np.random.default_rng([seed, 7]))
    exceptions = policy_exceptions(plan, cal)
    findings = expected_findings(
        catalog=catalog,
        tenant_ids=[t.tenant_id for t in plan],
        contracts=[c for t in plan for c in t.contracts],
        usage=usage,
        billing=billing,
        deployments=deployments_frame(deployments),
        residency={t.tenant_id: t.residency for t in plan if t.residency is not None},
        exceptions=pd.DataFrame(
            {
                "tenant_id": [e["tenant_id"] for e in exceptions],
                "check": [e["check"] for e in exceptions],
                "subject": [e["subject"] for e in exceptions],
                "expires_on": [date.fromisoformat(e["expires_on"]) for e in exceptions],
            }
        ),
        as_of=cal.as_of,
        seeded_anomalies=[
            (t.tenant_id, "api_calls", cal.start + timedelta(days=spike_day(cal)))
            for t in plan
            if t.role == ANOMALY
        ],
        thresholds=Thresholds(),
    )
    return findings, billing, deployments, exceptions
