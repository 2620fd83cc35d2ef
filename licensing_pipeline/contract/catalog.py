"""The product catalog (``catalog.yaml``): regions, features, meters, plans and add-ons."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from licensing_pipeline.contract.yaml_lines import LocatedYaml, load_located_yaml

AGGREGATIONS = ("COUNT", "SUM", "MAX", "LATEST", "UNIQUE_COUNT")
NUMERIC_AGGREGATIONS = ("SUM", "MAX", "LATEST")
PERIODS = ("month",)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

CATALOG_COLUMNS = [
    "kind",
    "name",
    "jurisdiction",
    "event_type",
    "aggregation",
    "value_property",
    "period",
    "features",
    "quotas",
    "price",
    "catalog_version",
]


@dataclass(frozen=True)
class Metric:
    name: str
    event_type: str
    aggregation: str
    value_property: str | None = None
    period: str = "month"


@dataclass(frozen=True)
class Price:
    """What a plan or add-on costs per period; optional in the catalog."""

    amount: float
    currency: str
    per: str = "month"

    def text(self) -> str:
        amount = f"{self.amount:,.0f}" if self.amount.is_integer() else f"{self.amount:,.2f}"
        return f"{amount} {self.currency}/{self.per}"


@dataclass(frozen=True)
class Package:
    """A plan or an add-on: features it grants and quotas it sets (plan) or adds (add-on)."""

    name: str
    features: tuple[str, ...] = ()
    quotas: dict[str, float] = field(default_factory=dict)
    price: Price | None = None

    def includes(self, other: Package) -> bool:
        """Every feature of ``other``, and each of its limits or more (a missing one is none)."""
        return set(other.features) <= set(self.features) and all(
            metric not in self.quotas or (metric in other.quotas and self.quotas[metric] >= limit)
            for metric, limit in {**self.quotas, **other.quotas}.items()
        )


@dataclass(frozen=True)
class Catalog:
    version: str
    regions: dict[str, str]
    features: tuple[str, ...]
    metrics: dict[str, Metric]
    plans: dict[str, Package]
    addons: dict[str, Package]

    def next_plan(self, name: str) -> Package | None:
        """The tier above plan ``name``: the cheapest dearer plan when the prices say, else
        the smallest plan that includes it and more (fewest unlimited metrics, then the
        smallest limits)."""
        current = self.plans.get(name)
        if current is None:
            return None
        others = [p for p in self.plans.values() if p.name != name]
        price = current.price
        if price is not None and all(
            p.price is not None and p.price.currency == price.currency for p in others
        ):
            dearer = [p for p in others if p.price and p.price.amount > price.amount]
            return min(
                dearer, key=lambda p: (p.price.amount if p.price else 0.0, p.name), default=None
            )
        bigger = [p for p in others if p.includes(current)]
        return min(
            bigger,
            key=lambda p: (len(self.metrics) - len(p.quotas), sum(p.quotas.values()), p.name),
            default=None,
        )

    def jurisdiction(self, region: str) -> str | None:
        return self.regions.get(region)

    def numeric_value_properties(self) -> dict[str, list[str]]:
        """event type -> value properties that must hold a non-negative number."""
        out: dict[str, list[str]] = {}
        for metric in self.metrics.values():
            if metric.aggregation in NUMERIC_AGGREGATIONS and metric.value_property:
                out.setdefault(metric.event_type, []).append(metric.value_property)
        return out

    def aggregations(self) -> dict[str, str]:
        """metric -> its aggregation, which decides how the anomaly rule reads its series."""
        return {m.name: m.aggregation for m in self.metrics.values()}

    def to_frame(self) -> pd.DataFrame:
        """One row per catalog item, so the warehouse (and dbt) can read the catalog as a table."""
        rows: list[dict[str, Any]] = []
        for region, jurisdiction in self.regions.items():
            rows.append({"kind": "region", "name": region, "jurisdiction": jurisdiction})
        for feature in self.features:
            rows.append({"kind": "feature", "name": feature})
        for metric in self.metrics.values():
            rows.append(
                {
                    "kind": "metric",
                    "name": metric.name,
                    "event_type": metric.event_type,
                    "aggregation": metric.aggregation,
                    "value_property": metric.value_property,
                    "period": metric.period,
                }
            )
        for kind, packages in (("plan", self.plans), ("addon", self.addons)):
            for package in packages.values():
                rows.append(
                    {
                        "kind": kind,
                        "name": package.name,
                        "features": json.dumps(list(package.features)),
                        "quotas": json.dumps(package.quotas, sort_keys=True),
                        "price": json.dumps(asdict(package.price)) if package.price else None,
                    }
                )
        frame = pd.DataFrame(rows, columns=CATALOG_COLUMNS)
        frame["catalog_version"] = self.version
        return frame.astype({c: "string" for c in CATALOG_COLUMNS})

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Catalog:
        def items(kind: str) -> pd.DataFrame:
            return frame[frame["kind"] == kind]

        def text(value: Any) -> str | None:
            return None if value is None or pd.isna(value) else str(value)

        def package(row: Any) -> Package:
            price = json.loads(text(getattr(row, "price", None)) or "null")
            return Package(
                name=str(row.name),
                features=tuple(json.loads(text(row.features) or "[]")),
                quotas={k: float(v) for k, v in json.loads(text(row.quotas) or "{}").items()},
                price=Price(**price) if price else None,
            )

        version = str(frame["catalog_version"].iloc[0]) if len(frame) else ""
        return cls(
            version=version,
            regions={str(r.name): str(r.jurisdiction) for r in items("region").itertuples()},
            features=tuple(str(n) for n in items("feature")["name"]),
            metrics={
                str(r.name): Metric(
                    name=str(r.name),
                    event_type=str(r.event_type),
                    aggregation=str(r.aggregation),
                    value_property=text(r.value_property),
                    period=text(r.period) or "month",
                )
                for r in items("metric").itertuples()
            },
            plans={str(r.name): package(r) for r in items("plan").itertuples()},
            addons={str(r.name): package(r) for r in items("addon").itertuples()},
        )


def _mapping(doc: LocatedYaml, value: Any, *path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise doc.error("must be a mapping", *path)
    return value


def _string_list(doc: LocatedYaml, value: Any, *path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise doc.error("must be a list of names", *path)
    return tuple(value)


def _package(doc: LocatedYaml, catalog_part: str, name: str, body: Any) -> Package:
    body = _mapping(doc, body, catalog_part, name)
    unknown = set(body) - {"features", "quotas", "description", "price"}
    if unknown:
        raise doc.error(f"unknown key '{sorted(unknown)[0]}'", catalog_part, name)
    quotas: dict[str, float] = {}
    for metric, limit in _mapping(doc, body.get("quotas"), catalog_part, name, "quotas").items():
        if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 0:
            raise doc.error(
                f"quota for '{metric}' must be a non-negative number, got {limit!r}",
                catalog_part,
                name,
                "quotas",
                metric,
            )
        quotas[str(metric)] = float(limit)
    return Package(
        name=name,
        features=_string_list(doc, body.get("features"), catalog_part, name, "features"),
        quotas=quotas,
        price=_price(doc, body.get("price"), catalog_part, name),
    )


def _price(doc: LocatedYaml, value: Any, catalog_part: str, name: str) -> Price | None:
    """``price: {amount: 49, currency: USD, per: month}``; absent means unknown, not free."""
    if value is None:
        return None
    body = _mapping(doc, value, catalog_part, name, "price")
    unknown = set(body) - {"amount", "currency", "per"}
    if unknown:
        raise doc.error(f"unknown key '{sorted(unknown)[0]}'", catalog_part, name, "price")
    amount = body.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
        raise doc.error(
            f"amount must be a non-negative number, got {amount!r}",
            catalog_part,
            name,
            "price",
            "amount",
        )
    currency = body.get("currency")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise doc.error(
            f"currency must be a three-letter code such as USD, got {currency!r}",
            catalog_part,
            name,
            "price",
            "currency",
        )
    per = str(body.get("per", "month"))
    if per not in PERIODS:
        raise doc.error(
            f"per must be one of {PERIODS}, got {per!r}", catalog_part, name, "price", "per"
        )
    return Price(amount=float(amount), currency=currency, per=per)


def parse_catalog(doc: LocatedYaml) -> Catalog:
    """Validate the catalog: every reference must resolve, or the whole run would be wrong."""
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error("the catalog must be a YAML mapping with version, regions, features, ...")
    for key in ("version", "regions", "features", "metrics", "plans"):
        if key not in data:
            raise doc.error(f"missing required key '{key}'", key)
    regions = {
        str(region): str(jurisdiction)
        for region, jurisdiction in _mapping(doc, data["regions"], "regions").items()
    }
    features = _string_list(doc, data["features"], "features")
    metrics: dict[str, Metric] = {}
    for name, body in _mapping(doc, data["metrics"], "metrics").items():
        body = _mapping(doc, body, "metrics", name)
        if not _IDENTIFIER.match(str(name)):
            raise doc.error("metric names must be identifiers", "metrics", name)
        if "event_type" not in body:
            raise doc.error("missing 'event_type'", "metrics", name)
        aggregation = str(body.get("aggregation", "")).upper()
        if aggregation not in AGGREGATIONS:
            raise doc.error(
                f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {body.get('aggregation')!r}",
                "metrics",
                name,
                "aggregation",
            )
        value_property = body.get("value_property")
        if aggregation != "COUNT" and not value_property:
            raise doc.error(f"{aggregation} needs a value_property", "metrics", name)
        if value_property is not None and not _IDENTIFIER.match(str(value_property)):
            raise doc.error(
                "value_property must be an identifier", "metrics", name, "value_property"
            )
        period = str(body.get("period", "month"))
        if period not in PERIODS:
            raise doc.error(
                f"period must be one of {PERIODS}, got {period!r}", "metrics", name, "period"
            )
        metrics[str(name)] = Metric(
            name=str(name),
            event_type=str(body["event_type"]),
            aggregation=aggregation,
            value_property=str(value_property) if value_property else None,
            period=period,
        )
    plans = {
        str(n): _package(doc, "plans", str(n), b)
        for n, b in _mapping(doc, data["plans"], "plans").items()
    }
    addons = {
        str(n): _package(doc, "addons", str(n), b)
        for n, b in _mapping(doc, data.get("addons"), "addons").items()
    }
    for part, packages in (("plans", plans), ("addons", addons)):
        for package in packages.values():
            for feature in package.features:
                if feature not in features:
                    raise doc.error(
                        f"feature '{feature}' is not defined under features",
                        part,
                        package.name,
                        "features",
                    )
            for metric_name in package.quotas:
                if metric_name not in metrics:
                    raise doc.error(
                        f"metric '{metric_name}' is not defined under metrics",
                        part,
                        package.name,
                        "quotas",
                        metric_name,
                    )
    return Catalog(
        version=str(data["version"]),
        regions=regions,
        features=features,
        metrics=metrics,
        plans=plans,
        addons=addons,
    )


def load_catalog(path: Path) -> Catalog:
    return parse_catalog(load_located_yaml(path))
