"""The data-quality suites (``expectations.yaml``), read into plain specs.

Reading the file needs no Great Expectations import (the code location loads fast); the GX
expectation objects are built at run time by ``to_gx_expectation``. The YAML is validated
here, so a typo in it fails when the definitions load, not at 2 a.m.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from licensing_pipeline.contract import schemas
from licensing_pipeline.contract.catalog import CATALOG_COLUMNS

SUITES_FILE = Path(__file__).with_name("expectations.yaml")

# Column layouts an `expect_schema` may name. Types are pandas dtypes as the warehouse hands
# them back; USAGE_EVENTS is the SQL layout, read through a sample.
_SQL_TO_PANDAS = {"VARCHAR": schemas.STRING, "TIMESTAMP": schemas.TIMESTAMP, "BIGINT": schemas.INT}
SCHEMAS: dict[str, Mapping[str, str]] = {
    "CATALOG": dict.fromkeys(CATALOG_COLUMNS, schemas.STRING),
    "TENANTS": schemas.TENANTS,
    "CONTRACTS": schemas.CONTRACTS,
    "BILLING_RECORDS": schemas.BILLING_RECORDS,
    "DEPLOYMENT_CONFIGS": schemas.DEPLOYMENT_CONFIGS,
    "RESIDENCY_CONFIGS": schemas.RESIDENCY_CONFIGS,
    "POLICY_EXCEPTIONS": schemas.POLICY_EXCEPTIONS,
    "USAGE_EVENTS": {c: _SQL_TO_PANDAS[t] for c, t in schemas.USAGE_EVENTS_SQL.items()},
    "QUARANTINED_RECORDS": schemas.QUARANTINED_RECORDS,
    "EFFECTIVE_ENTITLEMENTS": schemas.EFFECTIVE_ENTITLEMENTS,
    "COMPLIANCE_FINDINGS": schemas.COMPLIANCE_FINDINGS,
}
# The type name GX reports for a pandas column of each dtype.
GX_TYPE_NAMES = {
    schemas.STRING: "str",
    schemas.FLOAT: "float64",
    schemas.INT: "int64",
    schemas.BOOL: "bool",
    schemas.TIMESTAMP: "datetime64",
}
_EXPECTATION = re.compile(r"^expect_[a-z0-9_]+$")
_CHECK_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ITEM_KEYS = {"batch", "problem"}
_CHECK_KEYS = {"check", "blocking", "asserts", "batch", "expect"}


class SuiteError(ValueError):
    """The suites file is malformed (a bug in the package, not in the user's data)."""


@dataclass(frozen=True)
class ExpectationSpec:
    """One GX expectation: its type, arguments ("$name": a suite parameter) and batch."""

    type: str
    kwargs: Mapping[str, Any]
    batch: str
    check: str
    problem: str | None = None

    def describe(self) -> str:
        """``expect_...(column=...)``: enough to find the expectation in the Data Docs."""
        shown = {k: v for k, v in self.kwargs.items() if k in _SHOWN_ARGUMENTS}
        arguments = ", ".join(f"{k}={_short(v)}" for k, v in shown.items())
        return f"{self.type}({arguments})"


_SHOWN_ARGUMENTS = (
    "column",
    "column_A",
    "column_B",
    "column_list",
    "value_set",
    "min_value",
    "max_value",
    "regex",
    "type_",
)


def _short(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) > 4:
        return "[" + ", ".join(map(str, value[:4])) + ", …]"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


@dataclass(frozen=True)
class CheckSpec:
    """A Dagster asset check: the expectations that must all hold for it to pass."""

    asset: str
    name: str
    blocking: bool
    asserts: str
    expectations: tuple[ExpectationSpec, ...] = field(default_factory=tuple)

    @property
    def batches(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.batch for e in self.expectations))


def _fail(where: str, message: str) -> SuiteError:
    return SuiteError(f"{SUITES_FILE.name}: {where}: {message}")


def _schema_expectations(
    argument: Any, batch: str, check: str, where: str
) -> list[ExpectationSpec]:
    """``expect_schema: NAME`` (exact columns, in order) or ``{schema: NAME, exact: false}``."""
    name, exact = (argument, True) if isinstance(argument, str) else (None, True)
    if isinstance(argument, dict):
        name, exact = argument.get("schema"), bool(argument.get("exact", True))
    if name not in SCHEMAS:
        raise _fail(where, f"expect_schema names an unknown layout {name!r}: {sorted(SCHEMAS)}")
    layout = SCHEMAS[name]
    columns = list(layout)
    first = (
        ExpectationSpec(
            "expect_table_columns_to_match_ordered_list",
            {"column_list": columns},
            batch,
            check,
            f"the columns are not those of {name}: {{observed}}",
        )
        if exact
        else ExpectationSpec(
            "expect_table_columns_to_match_set",
            {"column_set": columns, "exact_match": False},
            batch,
            check,
            f"columns of {name} are missing: {{observed}}",
        )
    )
    types = [
        ExpectationSpec(
            "expect_column_values_to_be_of_type",
            {"column": column, "type_": GX_TYPE_NAMES[dtype]},
            batch,
            check,
            f"{column} is not of type {GX_TYPE_NAMES[dtype]}: {{observed}}",
        )
        for column, dtype in layout.items()
    ]
    return [first, *types]


def _item_expectations(
    item: Any, default_batch: str | None, check: str, where: str
) -> list[ExpectationSpec]:
    if not isinstance(item, dict):
        raise _fail(where, "each entry of expect must be a mapping")
    types = [k for k in item if k not in _ITEM_KEYS]
    if len(types) != 1:
        raise _fail(where, f"expected exactly one expect_* key, found {types}")
    [kind] = types
    batch = item.get("batch", default_batch)
    if not isinstance(batch, str) or not batch:
        raise _fail(where, "no batch: give `batch:` on the check or on the expectation")
    if kind == "expect_schema":
        return _schema_expectations(item[kind], batch, check, where)
    if not _EXPECTATION.match(kind):
        raise _fail(where, f"{kind!r} is not an expectation type (expect_...)")
    kwargs = item[kind] or {}
    if not isinstance(kwargs, dict):
        raise _fail(where, f"the arguments of {kind} must be a mapping")
    problem = item.get("problem")
    if problem is not None:
        problem = " ".join(str(problem).split())
    columns = kwargs.get("column")
    if isinstance(columns, list):  # shorthand: one expectation per column
        return [
            ExpectationSpec(kind, {**kwargs, "column": c}, batch, check, problem) for c in columns
        ]
    return [ExpectationSpec(kind, dict(kwargs), batch, check, problem)]


def parse_suites(document: Any) -> dict[str, tuple[CheckSpec, ...]]:
    """The checks of every asset, in file order."""
    if not isinstance(document, dict):
        raise _fail("top level", "must map asset names to lists of checks")
    suites: dict[str, tuple[CheckSpec, ...]] = {}
    for asset, checks in document.items():
        if not isinstance(checks, list) or not checks:
            raise _fail(str(asset), "must be a non-empty list of checks")
        specs: list[CheckSpec] = []
        for position, body in enumerate(checks, start=1):
            where = f"{asset} check #{position}"
            if not isinstance(body, dict):
                raise _fail(where, "must be a mapping")
            unknown = set(body) - _CHECK_KEYS
            if unknown:
                raise _fail(where, f"unknown key(s) {sorted(unknown)}")
            name = body.get("check")
            if not isinstance(name, str) or not _CHECK_NAME.match(name):
                raise _fail(where, f"check must be a lower_case name, got {name!r}")
            where = f"{asset}.{name}"
            if not isinstance(body.get("blocking"), bool):
                raise _fail(where, "blocking must be true or false")
            asserts = body.get("asserts")
            if not isinstance(asserts, str) or not asserts.strip():
                raise _fail(where, "asserts must say what the check asserts")
            items = body.get("expect")
            if not isinstance(items, list) or not items:
                raise _fail(where, "expect must be a non-empty list")
            expectations = [
                spec
                for n, item in enumerate(items, start=1)
                for spec in _item_expectations(item, body.get("batch"), name, f"{where} #{n}")
            ]
            specs.append(
                CheckSpec(
                    asset=str(asset),
                    name=name,
                    blocking=body["blocking"],
                    asserts=" ".join(asserts.split()),
                    expectations=tuple(expectations),
                )
            )
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise _fail(str(asset), f"check names repeat: {names}")
        suites[str(asset)] = tuple(specs)
    return suites


@cache
def load_suites(path: Path = SUITES_FILE) -> dict[str, tuple[CheckSpec, ...]]:
    with path.open(encoding="utf-8") as handle:
        return parse_suites(yaml.safe_load(handle))


def checks_of(*assets: str) -> list[CheckSpec]:
    suites = load_suites()
    missing = [a for a in assets if a not in suites]
    if missing:
        raise SuiteError(f"{SUITES_FILE.name} has no checks for {missing}")
    return [check for asset in assets for check in suites[asset]]


# --- Great Expectations objects (built at run time) ----------------------------------------


def _camel(expectation_type: str) -> str:
    return "".join(part.capitalize() for part in expectation_type.split("_"))


def gx_kwargs(spec: ExpectationSpec) -> dict[str, Any]:
    """The arguments with "$name" turned into GX suite parameters."""
    return {
        key: {"$PARAMETER": value[1:]}
        if isinstance(value, str) and value.startswith("$")
        else value
        for key, value in spec.kwargs.items()
    }


def to_gx_expectation(spec: ExpectationSpec, meta: Mapping[str, Any]) -> Any:
    import great_expectations.expectations as gxe

    cls = getattr(gxe, _camel(spec.type), None)
    if cls is None:
        raise SuiteError(f"{SUITES_FILE.name}: {spec.check}: unknown expectation {spec.type!r}")
    return cls(**gx_kwargs(spec), meta=dict(meta))
