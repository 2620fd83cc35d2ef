"""The suites file: readable, valid, and saying exactly which checks block."""

from __future__ import annotations

import pytest
import yaml

from licensing_pipeline.contract.schemas import QUARANTINE_SOURCES
from licensing_pipeline.quality.suites import (
    SUITES_FILE,
    SuiteError,
    load_suites,
    parse_suites,
    to_gx_expectation,
)

# The contract's sources: the catalog and those that quarantine rows, which are gathered.
SOURCE_ASSETS = ("catalog", *QUARANTINE_SOURCES, "quarantined_records")
# What stops compliance_findings from being rewritten (docs/data-quality.md, "What blocks").
BLOCKING = {
    ("contracts", "contracts_unique"),
    ("contracts", "contracts_rows_valid"),
    ("contracts", "contracts_reference_catalog"),
    ("billing_records", "billing_records_reference_catalog"),
    ("usage_events", "usage_events_schema"),
    ("usage_events", "usage_events_files_complete"),
    ("usage_events", "usage_events_fresh"),
    ("usage_events", "usage_events_feed_volume"),
    ("effective_entitlements", "effective_entitlements_one_per_tenant_period"),
    ("compliance_findings", "compliance_findings_valid"),
}


def test_every_source_and_the_findings_have_a_suite():
    suites = load_suites()
    assert set(SOURCE_ASSETS) | {"compliance_findings", "effective_entitlements"} == set(suites)
    for checks in suites.values():
        for check in checks:
            assert check.asserts and check.expectations
            assert all(e.check == check.name for e in check.expectations)


def test_exactly_the_documented_checks_block():
    blocking = {
        (c.asset, c.name) for checks in load_suites().values() for c in checks if c.blocking
    }
    assert blocking == BLOCKING


def test_every_expectation_is_a_great_expectations_expectation():
    for checks in load_suites().values():
        for check in checks:
            for spec in check.expectations:
                expectation = to_gx_expectation(spec, {"check": check.name})
                assert type(expectation).__name__.lower() == spec.type.replace("_", "")


def test_shorthands_expand_to_one_expectation_each():
    suites = parse_suites(
        {
            "tenants": [
                {
                    "check": "ok",
                    "blocking": False,
                    "asserts": "what holds",
                    "batch": "tenants",
                    "expect": [
                        {"expect_schema": "RESIDENCY_CONFIGS"},
                        {"expect_column_values_to_not_be_null": {"column": ["a", "b"]}},
                        {"expect_column_values_to_be_in_set": {"column": "c", "value_set": "$v"}},
                    ],
                }
            ]
        }
    )
    [check] = suites["tenants"]
    types = [e.type for e in check.expectations]
    assert types == [
        "expect_table_columns_to_match_ordered_list",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_set",
    ]
    kwargs = to_gx_expectation(check.expectations[-1], {}).value_set
    assert kwargs == {"$PARAMETER": "v"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"check": "x", "blocking": "yes", "asserts": "a", "expect": [{}]}, "blocking"),
        ({"check": "x", "blocking": True, "asserts": "a", "expect": []}, "expect"),
        (
            {"check": "x", "blocking": True, "asserts": "a", "batch": "t", "expect": [{"a": {}}]},
            "not an expectation type",
        ),
        (
            {"check": "x", "blocking": True, "asserts": "a", "expect": [{"expect_x": {}}]},
            "no batch",
        ),
        (
            {"check": "x", "blocking": True, "asserts": "a", "on": "t", "expect": []},
            "unknown key",
        ),
    ],
)
def test_a_malformed_suite_names_the_problem(body, message):
    with pytest.raises(SuiteError, match=message):
        parse_suites({"tenants": [body]})


def test_the_file_has_no_yaml_1_1_surprises():
    """`on:` would be read as True: every key of the file is a string."""
    document = yaml.safe_load(SUITES_FILE.read_text())

    def keys(node):
        if isinstance(node, dict):
            for key, value in node.items():
                yield key
                yield from keys(value)
        elif isinstance(node, list):
            for item in node:
                yield from keys(item)

    assert all(isinstance(k, str) for k in keys(document))
