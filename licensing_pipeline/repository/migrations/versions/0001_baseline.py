"""Baseline: the schema as ``metadata.create_all`` made it before migrations.

On an empty database it creates every table. On one created by that code (no version table),
it adopts what is there: creates the tables a later release added, adds the nullable columns
that start-up used to add with ALTER TABLE, and the indexes; a missing NOT NULL column cannot
be filled in and stops the upgrade. The tables are spelled out here, not taken from
``metadata``, so this revision keeps meaning the same schema when the models move on.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

from licensing_pipeline.repository.errors import SchemaNotCurrent

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tables() -> list[tuple[str, list[SchemaItem]]]:
    """Fresh column objects on every call (a Column belongs to one Table)."""
    return [
        (
            "alert_outbox",
            [
                sa.Column("alert_id", sa.Integer(), autoincrement=True, nullable=False),
                sa.Column("alert_key", sa.String(length=400), nullable=False),
                sa.Column("kind", sa.String(length=32), nullable=False),
                sa.Column("ref", sa.String(length=300), nullable=False),
                sa.Column("period", sa.String(length=64), nullable=False),
                sa.Column("ticket_id", sa.Integer(), nullable=True),
                sa.Column("channel", sa.String(length=200), nullable=False),
                sa.Column("payload", sa.Text(), nullable=False),
                sa.Column("status", sa.String(length=16), nullable=False),
                sa.Column("attempts", sa.Integer(), nullable=False),
                sa.Column("last_error", sa.Text(), nullable=True),
                sa.Column("posted_channel", sa.String(length=200), nullable=True),
                sa.Column("slack_ts", sa.String(length=64), nullable=True),
                sa.Column("created_at", sa.DateTime(), nullable=False),
                sa.Column("claimed_at", sa.DateTime(), nullable=True),
                sa.Column("sent_at", sa.DateTime(), nullable=True),
                sa.Column("updated_at", sa.DateTime(), nullable=False),
                sa.PrimaryKeyConstraint("alert_id"),
                sa.UniqueConstraint("alert_key"),
            ],
        ),
        (
            "compliance_findings",
            [
                sa.Column("finding_id", sa.String(length=32), nullable=False),
                sa.Column("tenant_id", sa.String(length=200), nullable=False),
                sa.Column("check", sa.String(length=64), nullable=False),
                sa.Column("subject", sa.String(length=200), nullable=False),
                sa.Column("period", sa.String(length=10), nullable=False),
                sa.Column("observed", sa.Float(), nullable=True),
                sa.Column("allowed", sa.Float(), nullable=True),
                sa.Column("severity", sa.String(length=16), nullable=False),
                sa.Column("action", sa.String(length=16), nullable=False),
                sa.Column("status", sa.String(length=16), nullable=False),
                sa.Column("policy_version", sa.String(length=64), nullable=False),
                sa.Column("catalog_version", sa.String(length=64), nullable=False),
                sa.Column("first_detected_at", sa.DateTime(), nullable=False),
                sa.Column("last_detected_at", sa.DateTime(), nullable=False),
                sa.Column("details", sa.Text(), nullable=False),
                sa.Column("policy_hash", sa.String(length=64), nullable=True),
                sa.Column("rule_id", sa.String(length=64), nullable=True),
                sa.Column("exception_id", sa.String(length=64), nullable=True),
                sa.PrimaryKeyConstraint("finding_id"),
            ],
        ),
        (
            "data_quality_report",
            [
                sa.Column("run_id", sa.String(length=64), nullable=False),
                sa.Column("asset", sa.String(length=128), nullable=False),
                sa.Column("check_name", sa.String(length=128), nullable=False),
                sa.Column("as_of", sa.Date(), nullable=False),
                sa.Column("evaluated_at", sa.DateTime(), nullable=False),
                sa.Column("outcome", sa.String(length=8), nullable=False),
                sa.Column("blocking", sa.Boolean(), nullable=False),
                sa.Column("expectations", sa.Integer(), nullable=False),
                sa.Column("failed_expectations", sa.Integer(), nullable=False),
                sa.Column("unexpected_count", sa.Integer(), nullable=False),
                sa.Column("summary", sa.Text(), nullable=False),
                sa.Column("data_docs", sa.Text(), nullable=True),
                sa.Column("seconds", sa.Float(), nullable=False),
                sa.PrimaryKeyConstraint("run_id", "asset", "check_name"),
            ],
        ),
        (
            "enforcement_changes",
            [
                sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
                sa.Column("run_id", sa.String(length=64), nullable=False),
                sa.Column("changed_at", sa.DateTime(), nullable=False),
                sa.Column("as_of", sa.Date(), nullable=False),
                sa.Column("tenant_id", sa.String(length=200), nullable=False),
                sa.Column("capability", sa.String(length=250), nullable=False),
                sa.Column("previous_action", sa.String(length=16), nullable=False),
                sa.Column("action", sa.String(length=16), nullable=False),
                sa.Column("severity", sa.String(length=16), nullable=True),
                sa.Column("check", sa.String(length=64), nullable=True),
                sa.Column("finding_id", sa.String(length=32), nullable=True),
                sa.Column("rule_id", sa.String(length=64), nullable=True),
                sa.Column("policy_version", sa.String(length=64), nullable=False),
                sa.Column("policy_hash", sa.String(length=64), nullable=False),
                sa.Column("details", sa.Text(), nullable=False),
                sa.PrimaryKeyConstraint("seq"),
            ],
        ),
        (
            "enforcement_state",
            [
                sa.Column("tenant_id", sa.String(length=200), nullable=False),
                sa.Column("capability", sa.String(length=250), nullable=False),
                sa.Column("action", sa.String(length=16), nullable=False),
                sa.Column("severity", sa.String(length=16), nullable=False),
                sa.Column("check", sa.String(length=64), nullable=False),
                sa.Column("subject", sa.String(length=200), nullable=False),
                sa.Column("period", sa.String(length=10), nullable=False),
                sa.Column("finding_id", sa.String(length=32), nullable=False),
                sa.Column("rule_id", sa.String(length=64), nullable=False),
                sa.Column("policy_version", sa.String(length=64), nullable=False),
                sa.Column("policy_hash", sa.String(length=64), nullable=False),
                sa.Column("details", sa.Text(), nullable=False),
                sa.Column("since", sa.DateTime(), nullable=False),
                sa.Column("updated_at", sa.DateTime(), nullable=False),
                sa.PrimaryKeyConstraint("tenant_id", "capability"),
            ],
        ),
        (
            "finding_runs",
            [
                sa.Column("run_id", sa.String(length=64), nullable=False),
                sa.Column("finished_at", sa.DateTime(), nullable=False),
                sa.Column("as_of", sa.Date(), nullable=False),
                sa.Column("policy_version", sa.String(length=64), nullable=False),
                sa.Column("catalog_version", sa.String(length=64), nullable=False),
                sa.Column("open_findings", sa.Integer(), nullable=False),
                sa.Column("waived_findings", sa.Integer(), nullable=False),
                sa.Column("resolved_findings", sa.Integer(), nullable=False),
                sa.PrimaryKeyConstraint("run_id"),
            ],
        ),
        (
            "managed_exceptions",
            [
                sa.Column("exception_id", sa.String(length=64), nullable=False),
                sa.Column("tenant_id", sa.String(length=200), nullable=False),
                sa.Column("check", sa.String(length=64), nullable=False),
                sa.Column("subject", sa.String(length=200), nullable=False),
                sa.Column("approved_by", sa.String(length=200), nullable=False),
                sa.Column("expires_on", sa.Date(), nullable=False),
                sa.Column("reason", sa.Text(), nullable=False),
                sa.Column("created_at", sa.DateTime(), nullable=False),
                sa.Column("created_by", sa.String(length=200), nullable=True),
                sa.Column("revoked_at", sa.DateTime(), nullable=True),
                sa.Column("revoked_by", sa.String(length=200), nullable=True),
                sa.PrimaryKeyConstraint("exception_id"),
            ],
        ),
        (
            "policy_bundles",
            [
                sa.Column("content_hash", sa.String(length=64), nullable=False),
                sa.Column("version", sa.String(length=64), nullable=False),
                sa.Column("source", sa.Text(), nullable=False),
                sa.Column("files", sa.Text(), nullable=False),
                sa.Column("first_applied_at", sa.DateTime(), nullable=False),
                sa.Column("last_applied_at", sa.DateTime(), nullable=False),
                sa.PrimaryKeyConstraint("content_hash"),
            ],
        ),
        (
            "policy_runs",
            [
                sa.Column("run_id", sa.String(length=64), nullable=False),
                sa.Column("finished_at", sa.DateTime(), nullable=False),
                sa.Column("as_of", sa.Date(), nullable=False),
                sa.Column("data_dir", sa.Text(), nullable=False),
                sa.Column("policy_version", sa.String(length=64), nullable=False),
                sa.Column("policy_hash", sa.String(length=64), nullable=False),
                sa.Column("configured_hash", sa.String(length=64), nullable=True),
                sa.Column("fallback_error", sa.Text(), nullable=True),
                sa.PrimaryKeyConstraint("run_id"),
            ],
        ),
        (
            "remediation_tickets",
            [
                sa.Column("ticket_id", sa.Integer(), autoincrement=True, nullable=False),
                sa.Column("finding_id", sa.String(length=32), nullable=False),
                sa.Column("tenant_id", sa.String(length=200), nullable=False),
                sa.Column("check", sa.String(length=64), nullable=False),
                sa.Column("subject", sa.String(length=200), nullable=False),
                sa.Column("period", sa.String(length=10), nullable=False),
                sa.Column("severity", sa.String(length=16), nullable=False),
                sa.Column("action", sa.String(length=16), nullable=False),
                sa.Column("observed", sa.Float(), nullable=True),
                sa.Column("allowed", sa.Float(), nullable=True),
                sa.Column("details", sa.Text(), nullable=False),
                sa.Column("owner", sa.String(length=200), nullable=False),
                sa.Column("channel", sa.String(length=200), nullable=False),
                sa.Column("escalation_channel", sa.String(length=200), nullable=False),
                sa.Column("status", sa.String(length=16), nullable=False),
                sa.Column("status_reason", sa.Text(), nullable=False),
                sa.Column("cycle", sa.Integer(), nullable=False),
                sa.Column("opened_at", sa.DateTime(), nullable=False),
                sa.Column("due_date", sa.Date(), nullable=False),
                sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
                sa.Column("closed_at", sa.DateTime(), nullable=True),
                sa.Column("escalated_cycle", sa.Integer(), nullable=True),
                sa.Column("updated_at", sa.DateTime(), nullable=False),
                sa.Column("external_id", sa.String(length=200), nullable=True),
                sa.Column("external_url", sa.String(length=500), nullable=True),
                sa.Column("sink_status", sa.String(length=16), nullable=False),
                sa.Column("sink_attempts", sa.Integer(), nullable=False),
                sa.Column("sink_error", sa.Text(), nullable=True),
                sa.PrimaryKeyConstraint("ticket_id"),
                sa.UniqueConstraint("finding_id"),
            ],
        ),
        (
            "ticket_history",
            [
                sa.Column("history_id", sa.Integer(), autoincrement=True, nullable=False),
                sa.Column("ticket_id", sa.Integer(), nullable=False),
                sa.Column("at", sa.DateTime(), nullable=False),
                sa.Column("actor", sa.String(length=200), nullable=False),
                sa.Column("event", sa.String(length=32), nullable=False),
                sa.Column("from_status", sa.String(length=16), nullable=True),
                sa.Column("to_status", sa.String(length=16), nullable=True),
                sa.Column("note", sa.Text(), nullable=False),
                sa.ForeignKeyConstraint(
                    ["ticket_id"], ["remediation_tickets.ticket_id"], ondelete="CASCADE"
                ),
                sa.PrimaryKeyConstraint("history_id"),
            ],
        ),
    ]


INDEXES: dict[str, list[tuple[str, list[str]]]] = {
    "alert_outbox": [
        ("ix_alert_outbox_kind", ["kind"]),
        ("ix_alert_outbox_status", ["status"]),
    ],
    "compliance_findings": [
        ("ix_compliance_findings_check", ["check"]),
        ("ix_compliance_findings_status", ["status"]),
        ("ix_compliance_findings_tenant_id", ["tenant_id"]),
    ],
    "data_quality_report": [
        ("ix_data_quality_report_as_of", ["as_of"]),
        ("ix_data_quality_report_evaluated_at", ["evaluated_at"]),
    ],
    "enforcement_changes": [
        ("ix_enforcement_changes_run_id", ["run_id"]),
    ],
    "managed_exceptions": [
        ("ix_managed_exceptions_tenant_id", ["tenant_id"]),
    ],
    "policy_bundles": [
        ("ix_policy_bundles_last_applied_at", ["last_applied_at"]),
    ],
    "policy_runs": [
        ("ix_policy_runs_finished_at", ["finished_at"]),
    ],
    "remediation_tickets": [
        ("ix_remediation_tickets_status", ["status"]),
        ("ix_remediation_tickets_tenant_id", ["tenant_id"]),
    ],
    "ticket_history": [
        ("ix_ticket_history_ticket_id", ["ticket_id"]),
    ],
}


def _adopt(name: str, items: list[SchemaItem]) -> None:
    """Bring a table created before migrations up to this revision, where that is safe."""
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(name)}
    for column in (i for i in items if isinstance(i, sa.Column)):
        if column.name in present:
            continue
        if not column.nullable:
            raise SchemaNotCurrent(
                f"cannot adopt table {name}: its NOT NULL column {column.name} is missing "
                "and has no value to fill in; add it by hand, then run `db upgrade` again"
            )
        with op.batch_alter_table(name) as batch:
            batch.add_column(column)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, items in _tables():
        if name in existing:
            _adopt(name, items)
        else:
            op.create_table(name, *items)
        indexed = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes(name)}
        for index, columns in INDEXES.get(name, []):
            if index not in indexed:
                op.create_index(index, name, columns)


def downgrade() -> None:
    for name, _ in reversed(_tables()):
        op.drop_table(name)
