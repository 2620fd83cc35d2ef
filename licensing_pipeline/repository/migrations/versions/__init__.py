"""Revisions of the licensing repository, oldest first by ``down_revision``."""
