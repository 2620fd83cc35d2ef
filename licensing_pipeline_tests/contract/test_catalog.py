"""The catalog: a broken reference or bad YAML must say which file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from licensing_pipeline.contract.catalog import Catalog, Price, load_catalog
from licensing_pipeline.contract.errors import ContractError

CATALOG_YAML = """\
version: "2026-10-01"
regions:
  us-east-1: US
  eu-west-1: EU
features: [api_access, sso, advanced_analytics]
metrics:
  api_calls:  {event_type: api.request, aggregation: COUNT, period: month}
  seats:      {event_type: auth.login, aggregation: UNIQUE_COUNT, value_property: user_id}
  storage_gb: {event_type: storage.reported, aggregation: max, value_property: gb}
plans:
  starter:
    features: [api_access]
    quotas: {api_calls: 100000, seats: 5, storage_gb: 10}
addons:
  seats_pack_10: {quotas: {seats: 10}}
  analytics:     {features: [advanced_analytics]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> ContractError:
    path = write(tmp_path, text)
    with pytest.raises(ContractError) as raised:
        load_catalog(path)
    assert raised.value.file == str(path)
    assert str(path) in str(raised.value)
    return raised.value


def test_a_valid_catalog_round_trips_through_its_table(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, CATALOG_YAML))
    assert catalog.version == "2026-10-01"
    assert catalog.metrics["storage_gb"].aggregation == "MAX"
    assert catalog.numeric_value_properties() == {"storage.reported": ["gb"]}

    frame = catalog.to_frame()
    assert set(frame["kind"]) == {"region", "feature", "metric", "plan", "addon"}
    starter = frame[(frame["kind"] == "plan") & (frame["name"] == "starter")].iloc[0]
    assert json.loads(starter["quotas"]) == {"api_calls": 100000, "seats": 5, "storage_gb": 10}
    assert Catalog.from_frame(frame) == catalog


def test_a_plan_quota_for_an_undefined_metric(tmp_path: Path) -> None:
    error = error_for(
        tmp_path, CATALOG_YAML.replace("storage_gb: 10}", "storage_gb: 10, gpu_hours: 3}")
    )
    assert error.field == "plans.starter.quotas.gpu_hours"
    assert error.line == 13
    assert "gpu_hours" in error.message and "not defined under metrics" in error.message
    assert "line 13" in str(error) and "plans.starter.quotas.gpu_hours" in str(error)


def test_an_addon_feature_that_is_not_defined(tmp_path: Path) -> None:
    error = error_for(
        tmp_path, CATALOG_YAML.replace("[advanced_analytics]}", "[advanced_analytics, ai]}")
    )
    assert error.field == "addons.analytics.features"
    assert error.line == 16
    assert "'ai' is not defined under features" in error.message


def test_an_unknown_aggregation(tmp_path: Path) -> None:
    error = error_for(tmp_path, CATALOG_YAML.replace("aggregation: COUNT", "aggregation: AVG"))
    assert error.field == "metrics.api_calls.aggregation"
    assert error.line == 7


def test_a_missing_section(tmp_path: Path) -> None:
    error = error_for(tmp_path, CATALOG_YAML.split("plans:")[0])
    assert error.field == "plans"
    assert "missing required key 'plans'" in error.message


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    error = error_for(tmp_path, CATALOG_YAML.replace("  eu-west-1: EU", "  eu-west-1: [EU"))
    assert error.line is not None and error.line >= 4
    assert "not valid YAML" in error.message


PRICED_YAML = CATALOG_YAML.replace(
    "    quotas: {api_calls: 100000, seats: 5, storage_gb: 10}\n",
    "    quotas: {api_calls: 100000, seats: 5, storage_gb: 10}\n"
    "    price: {amount: 49, currency: USD, per: month}\n",
).replace(
    "seats_pack_10: {quotas: {seats: 10}}",
    "seats_pack_10: {quotas: {seats: 10}, price: {amount: 12.5, currency: USD}}",
)


def test_prices_are_optional_and_survive_the_table(tmp_path: Path) -> None:
    unpriced = load_catalog(write(tmp_path, CATALOG_YAML))
    assert unpriced.plans["starter"].price is None

    catalog = load_catalog(write(tmp_path, PRICED_YAML))
    assert catalog.plans["starter"].price == Price(49.0, "USD", "month")
    assert catalog.addons["seats_pack_10"].price == Price(12.5, "USD", "month")
    assert catalog.addons["analytics"].price is None
    assert Catalog.from_frame(catalog.to_frame()) == catalog


@pytest.mark.parametrize(
    ("price", "field", "says"),
    [
        ("{amount: -1, currency: USD}", "plans.starter.price.amount", "non-negative number"),
        ("{amount: 49, currency: dollars}", "plans.starter.price.currency", "three-letter"),
        ("{amount: 49, currency: USD, per: week}", "plans.starter.price.per", "per must be"),
        ("{amount: 49, currency: USD, vat: 20}", "plans.starter.price", "unknown key 'vat'"),
    ],
)
def test_a_bad_price_names_its_field(tmp_path: Path, price: str, field: str, says: str) -> None:
    error = error_for(
        tmp_path, PRICED_YAML.replace("{amount: 49, currency: USD, per: month}", price)
    )
    assert error.field == field
    assert says in error.message
