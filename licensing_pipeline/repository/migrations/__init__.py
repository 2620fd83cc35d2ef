"""Alembic migration environment of the licensing repository (configured in ``schema.py``)."""
