"""Remediation tables, in the licensing repository's own ``metadata`` (created with it).

Timestamps are naive UTC, like the findings tables.
"""

from __future__ import annotations

import sqlalchemy as sa

from licensing_pipeline.repository.tables import metadata

TICKET_STATUSES = ("open", "acknowledged", "resolved", "wont_fix")
LIVE_TICKET_STATUSES = ("open", "acknowledged")
SINK_STATUSES = ("pending", "synced", "failed", "disabled")
# pending: written, not yet posted; sending: claimed by a poster; sent: posted;
# failed: will be retried; unconfirmed: posted, but Slack's answer was lost (looked for in
# the channel before it is posted again); not_sent: recorded without posting (no token);
# raised / cleared: operator alerts (about the alerting itself).
OUTBOX_STATUSES = (
    "pending",
    "sending",
    "sent",
    "failed",
    "unconfirmed",
    "not_sent",
    "raised",
    "cleared",
)

# One ticket per finding, ever: a recurring finding reopens its ticket.
remediation_tickets = sa.Table(
    "remediation_tickets",
    metadata,
    sa.Column("ticket_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("finding_id", sa.String(32), nullable=False, unique=True),
    sa.Column("tenant_id", sa.String(200), nullable=False, index=True),
    sa.Column("check", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("period", sa.String(10), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("observed", sa.Float),
    sa.Column("allowed", sa.Float),
    sa.Column("details", sa.Text, nullable=False, default=""),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("escalation_channel", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("status_reason", sa.Text, nullable=False, default=""),
    # cycle counts openings: 1 when first opened, +1 on every reopening.
    sa.Column("cycle", sa.Integer, nullable=False, default=1),
    sa.Column("opened_at", sa.DateTime, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("acknowledged_at", sa.DateTime),
    sa.Column("closed_at", sa.DateTime),
    sa.Column("escalated_cycle", sa.Integer),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("external_id", sa.String(200)),
    sa.Column("external_url", sa.String(500)),
    sa.Column("sink_status", sa.String(16), nullable=False, default="disabled"),
    sa.Column("sink_attempts", sa.Integer, nullable=False, default=0),
    sa.Column("sink_error", sa.Text),
    # The status the ticket system was last told (at creation, then by each update).
    sa.Column("sink_reported_status", sa.String(16)),
)

# Every change to a ticket, by the pipeline or a person.
ticket_history = sa.Table(
    "ticket_history",
    metadata,
    sa.Column("history_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "ticket_id",
        sa.Integer,
        sa.ForeignKey("remediation_tickets.ticket_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("from_status", sa.String(16)),
    sa.Column("to_status", sa.String(16)),
    sa.Column("note", sa.Text, nullable=False, default=""),
)

# The outbox: an alert is written here (in the same transaction as the change behind it)
# before it is posted, and marked sent after; its key makes a second write a no-op.
alert_outbox = sa.Table(
    "alert_outbox",
    metadata,
    sa.Column("alert_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_key", sa.String(400), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False, index=True),
    sa.Column("ref", sa.String(300), nullable=False),  # finding_id, channel, run id, ...
    sa.Column("period", sa.String(64), nullable=False),
    sa.Column("ticket_id", sa.Integer),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON: {"text": ..., "blocks": [...]}
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("posted_channel", sa.String(200)),
    sa.Column("slack_ts", sa.String(64)),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("claimed_at", sa.DateTime),
    sa.Column("sent_at", sa.DateTime),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    # Carried in the message's metadata, so a post whose answer was lost can be found.
    sa.Column("delivery_key", sa.String(64)),
    # Set before each post, cleared once its outcome is known: while set, the alert may be
    # in ``posted_channel`` already, and is looked for there (around this time) before posting.
    sa.Column("unconfirmed_since", sa.DateTime),
    # How far down (newest first) that look has read without finding it, when cut short.
    sa.Column("searched_before", sa.DateTime),
)

# A destination that asked to be left alone (Slack's 429 Retry-After): no pass sends there
# before ``not_before``.
delivery_holds = sa.Table(
    "delivery_holds",
    metadata,
    sa.Column("destination", sa.String(64), primary_key=True),
    sa.Column("not_before", sa.DateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
