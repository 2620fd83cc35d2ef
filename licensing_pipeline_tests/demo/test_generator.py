"""The demo dataset: conformant files, deterministic bytes, and a manifest the files bear out."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from licensing_pipeline.contract import schemas
from licensing_pipeline.contract.catalog import Catalog, load_catalog
from licensing_pipeline.demo import files
from licensing_pipeline.demo.expected import (
    aggregate_usage,
    contracts_from_frame,
    expected_findings,
)
from licensing_pipeline.demo.generator import MANIFEST_NAME, DemoManifest, generate_demo
from licensing_pipeline.demo.plan import MIN_TENANTS, OUTDATED_FEED_VERSION, SCENARIOS

SMALL = {"tenants": 24, "months": 3, "events_per_tenant": 1200, "seed": 11}
AS_OF = date(2026, 11, 20)

CSV_HEADERS = {
    "tenants.csv": list(schemas.TENANTS),
    "contracts.csv": list(schemas.CONTRACTS),
    "billing_records.csv": list(schemas.BILLING_RECORDS),
    "residency.csv": list(schemas.RESIDENCY_CONFIGS),
    "exceptions.csv": list(schemas.POLICY_EXCEPTIONS),
}
PARQUET_COLUMNS = ["id", "source", "type", "subject", "time", "user_id", "feature", "region"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoManifest]:
    out = tmp_path_factory.mktemp("demo")
    return out, generate_demo(out, as_of=AS_OF, **SMALL)


# --- an independent reader of the files, following the data contract -------------------


def _parse_time(text: Any) -> datetime | None:
    """RFC 3339 with an offset, as naive UTC; None when it is not."""
    if not isinstance(text, str) or "T" not in text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC).replace(tzinfo=None)


def _record(raw: dict[str, Any], catalog: Catalog) -> dict[str, Any] | None:
    """One usage record (CloudEvent or flattened row) -> an event, or None if bad."""
    if any(not raw.get(key) for key in ("id", "subject", "time", "type")):
        return None
    when = _parse_time(raw["time"])
    if when is None:
        return None
    data = raw.get("data", raw) or {}
    event: dict[str, Any] = {
        "source": raw.get("source", ""),
        "id": raw["id"],
        "tenant_id": raw["subject"],
        "type": raw["type"],
        "time": when,
        "user_id": data.get("user_id"),
        "feature": data.get("feature"),
        "region": data.get("region"),
    }
    numeric = catalog.numeric_value_properties().get(raw["type"], [])
    for prop in ("gb", "rows", "projects"):
        value = data.get(prop)
        invalid = isinstance(value, bool) or not isinstance(value, int | float) or value < 0
        if prop in numeric and value is not None and invalid:
            return None
        event[prop] = float(value) if isinstance(value, int | float) else float("nan")
    return event


def read_usage(folder: Path, catalog: Catalog) -> tuple[pd.DataFrame, int, int, int]:
    """Distinct events, bad records, repeated deliveries and blank lines of ``usage/``."""
    events: list[dict[str, Any]] = []
    bad = blank = 0
    for path in sorted((folder / "usage").iterdir()):
        if path.suffix == ".parquet":
            rows = pq.read_table(path).to_pylist()
            for row in rows:
                event = _record({k: v for k, v in row.items() if v is not None}, catalog)
                bad += event is None
                if event is not None:
                    events.append(event)
            continue
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    blank += 1
                    continue
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError:
                    bad += 1
                    continue
                event = _record(raw, catalog) if isinstance(raw, dict) else None
                bad += event is None
                if event is not None:
                    events.append(event)
    frame = pd.DataFrame(events)
    distinct = frame.drop_duplicates(["source", "id"]).reset_index(drop=True)
    return distinct, bad, len(frame) - len(distinct), blank


def findings_from_files(folder: Path, as_of: date) -> pd.DataFrame:
    """The findings recomputed from the files; the anomalies' labels come from the manifest."""
    catalog = load_catalog(folder / "catalog.yaml")
    events, _, _, _ = read_usage(folder, catalog)

    def table(name: str) -> pd.DataFrame:
        return pd.read_csv(folder / name, dtype=str, keep_default_na=False)

    billing = table("billing_records.csv")
    billing["billed_quantity"] = billing["billed_quantity"].astype(float)
    observations = [
        json.loads(line) for line in (folder / "deployment_configs.jsonl").read_text().splitlines()
    ]
    deployments = pd.DataFrame(observations)
    deployments["observed_at"] = [_parse_time(t) for t in deployments["observed_at"]]
    exceptions = table("exceptions.csv")
    exceptions["expires_on"] = [date.fromisoformat(d) for d in exceptions["expires_on"]]
    residency = table("residency.csv")
    return expected_findings(
        catalog=catalog,
        tenant_ids=table("tenants.csv")["tenant_id"],
        contracts=contracts_from_frame(table("contracts.csv")),
        usage=aggregate_usage(events, catalog, as_of),
        billing=billing,
        deployments=deployments,
        residency=dict(
            zip(residency["tenant_id"], residency["allowed_jurisdictions"], strict=True)
        ),
        exceptions=exceptions,
        as_of=as_of,
        seeded_anomalies=[
            (v.tenant_id, v.subject, date.fromisoformat(v.period))
            for v in DemoManifest.load(folder / MANIFEST_NAME).violations
            if v.check == "usage_anomaly"
        ],
    )


def _violations(manifest: DemoManifest) -> pd.DataFrame:
    frame = pd.DataFrame([vars(v) for v in manifest.violations])
    return frame.rename(columns={"expected_status": "status"})


# --- tests -----------------------------------------------------------------------------


def test_same_seed_and_as_of_give_identical_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    generate_demo(a, as_of=AS_OF, **SMALL)
    generate_demo(b, as_of=AS_OF, **SMALL)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for relative in files:
        assert (a / relative).read_bytes() == (b / relative).read_bytes(), relative
    other = tmp_path / "c"
    generate_demo(other, as_of=AS_OF, **{**SMALL, "seed": 12})
    assert (other / "usage/metering.parquet").read_bytes() != (
        a / "usage/metering.parquet"
    ).read_bytes()


def test_chunked_serialisation_gives_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_demo(tmp_path / "whole", as_of=AS_OF, **SMALL)
    monkeypatch.setattr(files, "CHUNK", 997)
    generate_demo(tmp_path / "chunked", as_of=AS_OF, **SMALL)
    for path in sorted((tmp_path / "whole" / "usage").iterdir()):
        assert path.read_bytes() == (tmp_path / "chunked" / "usage" / path.name).read_bytes()


def test_manifest_seeds_every_check_of_the_vocabulary(demo: tuple[Path, DemoManifest]) -> None:
    _, manifest = demo
    assert {v.check for v in manifest.violations} == set(schemas.CHECKS)
    assert {v.expected_status for v in manifest.violations} == {"open", "waived"}
    residency = {v.subject for v in manifest.violations if v.check == "residency_violation"}
    assert "me-central-1" in residency and "us-east-1" in residency
    inactive = {v.tenant_id for v in manifest.violations if v.check == "inactive_contract_usage"}
    assert set(manifest.unregistered_subjects) < inactive and len(inactive) == 2
    # One tenant per scenario; the rest are clean or only near a limit.
    flagged = {v.tenant_id for v in manifest.violations}
    assert len(flagged - set(manifest.near_limit_tenants)) == len(
        [s for s in SCENARIOS if s.checks and s.checks != {"quota_near_limit"}]
    ) + len(manifest.unregistered_subjects)
    assert manifest.clean_tenants and manifest.near_limit_tenants
    assert not set(manifest.clean_tenants) & flagged
    for tenant in manifest.near_limit_tenants:
        mine = [v for v in manifest.violations if v.tenant_id == tenant]
        assert {v.check for v in mine} == {"quota_near_limit"}
        assert all(0.8 <= v.observed / v.allowed <= 0.95 for v in mine)


def test_manifest_matches_what_the_files_say(demo: tuple[Path, DemoManifest]) -> None:
    folder, manifest = demo
    found = findings_from_files(folder, AS_OF)
    expected = _violations(manifest)
    key = ["tenant_id", "check", "subject", "period", "status"]
    assert sorted(map(tuple, found[key].to_numpy())) == sorted(map(tuple, expected[key].to_numpy()))
    merged = found.merge(expected, on=key, suffixes=("_files", "_manifest"))
    assert (merged["observed_files"] == merged["observed_manifest"]).all()
    assert (merged["allowed_files"] == merged["allowed_manifest"]).all()


def test_files_conform_to_the_contract(demo: tuple[Path, DemoManifest]) -> None:
    folder, manifest = demo
    catalog = load_catalog(folder / "catalog.yaml")
    assert catalog.version == manifest.catalog_version
    aggregations = {m.aggregation for m in catalog.metrics.values()}
    assert aggregations == {"COUNT", "SUM", "MAX", "LATEST", "UNIQUE_COUNT"}
    assert set(catalog.plans) == {"starter", "growth", "enterprise"}
    assert any(a.quotas for a in catalog.addons.values())
    assert any(a.features for a in catalog.addons.values())
    assert {j for j in catalog.regions.values()} == {"US", "EU", "UK", "APAC"}
    for name, header in CSV_HEADERS.items():
        with (folder / name).open(encoding="utf-8", newline="") as handle:
            assert next(csv.reader(handle)) == header, name
    tenants = pd.read_csv(folder / "tenants.csv", dtype=str)
    assert set(tenants["segment"]) == {"smb", "mid_market", "enterprise"}
    assert tenants["compliance_owner"].str.contains("@").all()
    assert tenants["slack_channel"].str.startswith("#").all()
    contracts = pd.read_csv(folder / "contracts.csv", dtype=str, keep_default_na=False)
    assert set(contracts["status"]) == {"active", "paused", "cancelled"}
    assert set(contracts["enforcement"]) == {"hard", "soft"}
    assert (contracts["addons"] != "").any() and (contracts["quota_overrides"] != "").any()
    optional = {"enforcement_feed_version"}  # only the stale deployment reports it
    reported = []
    for line in (folder / "deployment_configs.jsonl").read_text().splitlines():
        fields = set(json.loads(line))
        assert fields - optional == set(schemas.DEPLOYMENT_CONFIGS) - optional
        reported += [json.loads(line)["enforcement_feed_version"]] if fields & optional else []
    assert reported == [OUTDATED_FEED_VERSION]
    usage = sorted(p.name for p in (folder / "usage").iterdir())
    assert any(n.endswith(".jsonl.gz") for n in usage)
    assert any(n.endswith(".jsonl") for n in usage)
    assert [n for n in usage if n.endswith(".parquet")] == ["metering.parquet"]
    columns = pq.read_schema(folder / "usage/metering.parquet").names
    assert columns[: len(PARQUET_COLUMNS)] == PARQUET_COLUMNS
    assert set(columns[len(PARQUET_COLUMNS) :]) <= {"gb", "rows", "projects"}


def test_usage_records_and_counts(demo: tuple[Path, DemoManifest]) -> None:
    folder, manifest = demo
    catalog = load_catalog(folder / "catalog.yaml")
    events, bad, repeated, blank = read_usage(folder, catalog)
    assert bad == manifest.expected_quarantined == 6
    assert repeated == manifest.duplicates > 0
    assert blank == 1
    assert len(events) == manifest.total_events
    assert manifest.records_written == len(events) + repeated + bad
    cutoff = datetime(AS_OF.year, AS_OF.month, AS_OF.day + 1)
    assert int((events["time"] >= cutoff).sum()) == manifest.events_after_as_of > 0
    assert events["tenant_id"].nunique() == manifest.tenants + len(manifest.unregistered_subjects)


def test_times_carry_mixed_offsets_and_cross_local_month_boundaries(
    demo: tuple[Path, DemoManifest],
) -> None:
    folder, _ = demo
    suffixes: set[str] = set()
    crossing = 0
    for path in (folder / "usage").glob("*.jsonl*"):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                try:
                    text = json.loads(line)["time"]
                except (json.JSONDecodeError, KeyError):
                    continue
                suffixes.add("Z" if text.endswith("Z") else text[-6:])
                utc = _parse_time(text)
                crossing += utc is not None and utc.month != int(text[5:7])
    assert {"Z", "+02:00", "-05:00"} <= suffixes
    assert crossing > 0


def test_period_arithmetic_of_seeded_violations(tmp_path: Path) -> None:
    """As-of on a month's last day closes that month; on the 1st, the previous one."""
    end = generate_demo(tmp_path / "end", as_of=date(2027, 2, 28), **SMALL)
    first = generate_demo(tmp_path / "first", as_of=date(2027, 3, 1), **SMALL)
    assert end.periods == ["2026-12", "2027-01", "2027-02"]
    assert first.periods == ["2027-01", "2027-02", "2027-03"]

    def period(manifest: DemoManifest, check: str) -> set[str]:
        return {v.period for v in manifest.violations if v.check == check}

    for manifest, closed, current in ((end, "2027-02", "2027-02"), (first, "2027-02", "2027-03")):
        assert period(manifest, "quota_exceeded") == {closed}
        assert period(manifest, "unbilled_usage") == {closed}
        assert period(manifest, "overbilled_usage") == {closed}
        assert period(manifest, "config_quota_mismatch") == {current}
        (spike,) = period(manifest, "usage_anomaly")
        spike_day = date.fromisoformat(spike)
        assert (spike_day - date.fromisoformat(manifest.periods[0] + "-01")).days >= 28
        assert spike_day <= date.fromisoformat(manifest.as_of)
        waived = [v for v in manifest.violations if v.expected_status == "waived"]
        assert [(v.check, v.subject) for v in waived] == [("quota_exceeded", "storage_gb")]
    # The paused tenant: every period from the pause on.
    paused = {v.period for v in end.violations if v.check == "inactive_contract_usage"}
    assert "2027-02" in paused
    assert findings_from_files(tmp_path / "first", date(2027, 3, 1)).shape[0] == len(
        first.violations
    )


@pytest.mark.parametrize(
    ("as_of", "seed", "months"),
    [
        (date(2026, 12, 31), 1, 4),
        (date(2027, 1, 2), 2, 3),
        (date(2028, 2, 29), 3, 5),
        (date(2026, 6, 15), 4, 3),
    ],
)
def test_any_as_of_and_seed_gives_the_planned_outcome(
    tmp_path: Path, as_of: date, seed: int, months: int
) -> None:
    manifest = generate_demo(
        tmp_path, tenants=30, months=months, events_per_tenant=1500, seed=seed, as_of=as_of
    )
    assert {v.check for v in manifest.violations} == set(schemas.CHECKS)
    assert manifest.periods[-1] == f"{as_of:%Y-%m}" and len(manifest.periods) == months


def test_sizes_are_honoured(tmp_path: Path) -> None:
    manifest = generate_demo(
        tmp_path, tenants=30, months=4, events_per_tenant=3000, seed=5, as_of=AS_OF
    )
    tenants = pd.read_csv(tmp_path / "tenants.csv", dtype=str)
    assert len(tenants) == manifest.tenants == 30
    assert manifest.periods == ["2026-08", "2026-09", "2026-10", "2026-11"]
    assert 0.85 * 30 * 3000 <= manifest.total_events <= 1.15 * 30 * 3000
    assert DemoManifest.load(tmp_path / "demo_manifest.json") == manifest


def test_progress_is_reported_up_to_the_total(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    manifest = generate_demo(
        tmp_path,
        as_of=AS_OF,
        progress=lambda done, total: calls.append((done, total)),
        **SMALL,
    )
    assert len(calls) > 3
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert calls[-1] == (manifest.records_written, manifest.records_written)


def test_a_rerun_replaces_the_previous_usage_files(tmp_path: Path) -> None:
    generate_demo(tmp_path, as_of=AS_OF, **{**SMALL, "months": 4})
    manifest = generate_demo(tmp_path, as_of=date(2026, 12, 5), **SMALL)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "usage").iterdir())
    assert written == [f for f in manifest.files if f.startswith("usage/")]


def test_refuses_a_usage_folder_with_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "usage").mkdir()
    (tmp_path / "usage" / "real-export.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match=r"real-export\.jsonl"):
        generate_demo(tmp_path, as_of=AS_OF, **SMALL)


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"tenants": MIN_TENANTS - 1}, f"--tenants {MIN_TENANTS}"),
        ({"months": 2}, "--months 3"),
        ({"events_per_tenant": 50}, "events_per_tenant=50 is too small"),
    ],
)
def test_too_small_sizes_are_refused_clearly(
    tmp_path: Path, sizes: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        generate_demo(tmp_path, as_of=AS_OF, **{**SMALL, **sizes})
    assert not (tmp_path / "usage").exists()
