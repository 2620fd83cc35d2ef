"""Provable telemetry: the usage ledger, its checkpoints and its nightly check."""
