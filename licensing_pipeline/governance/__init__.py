"""Governance: what makes the results defensible (ledger, backups)."""
