"""Entitlement resolution and one module per family of checks."""
