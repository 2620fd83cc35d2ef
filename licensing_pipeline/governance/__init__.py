"""Governance: audit trail and evidence beside the flow."""
