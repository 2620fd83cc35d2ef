"""Remediation: tickets and alerts for findings."""
