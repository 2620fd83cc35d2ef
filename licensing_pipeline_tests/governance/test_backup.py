"""What goes into a backup, and the ledger head it records, on both warehouses."""

from pathlib import Path

import pytest

from licensing_pipeline.governance.backup import (
    LedgerHead,
    ledger_head,
    rebuilt_models,
    repository_tables,
    usage_tables,
)
from licensing_pipeline.warehouse.resources import Warehouse


def test_usage_tables_leave_out_what_a_run_rebuilds():
    names = [
        "usage_events",
        "usage_files",
        "usage_batch_days",
        "usage_build_state",
        "usage_ledger",
        "usage_ledger_batches",
        "usage_daily",
        "usage_monthly",
        "quarantine_usage_events",
        "quarantine_tenants",
        "tenants",
        "metric_daily",
    ]
    assert usage_tables(names, rebuilt_models()) == [
        "quarantine_usage_events",
        "usage_batch_days",
        "usage_events",
        "usage_files",
        "usage_ledger",
        "usage_ledger_batches",
    ]


def test_the_dbt_models_are_known_from_the_manifest():
    assert {"usage_daily", "usage_monthly", "events_in_scope", "metric_daily"} <= rebuilt_models()


def test_every_repository_table_is_in_and_parents_come_first():
    names = [t.name for t in repository_tables()]
    assert {"compliance_findings", "ticket_history", "alert_outbox", "policy_bundles"} <= set(names)
    assert names.index("remediation_tickets") < names.index("ticket_history")


def test_no_ledger_has_no_head(any_warehouse: Warehouse):
    with any_warehouse.connect() as con:
        assert ledger_head(con) is None


def test_the_ledger_head_is_its_last_entry(any_warehouse: Warehouse, tmp_path: Path):
    with any_warehouse.connect() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS main")
        con.execute("CREATE TABLE main.usage_ledger (seq BIGINT, chain_hash VARCHAR)")
        assert ledger_head(con) == LedgerHead(0, "")
        con.execute("INSERT INTO main.usage_ledger VALUES (2, 'b'), (3, 'c'), (1, 'a')")
        assert ledger_head(con) == LedgerHead(3, "c")


@pytest.mark.parametrize("entries", [0, 7])
def test_a_head_survives_the_manifest(entries: int):
    from licensing_pipeline.governance.backup import _head_from_json

    head = LedgerHead(entries, "ab" * 32)
    assert _head_from_json(head.as_json()) == head
    assert _head_from_json(None) is None
