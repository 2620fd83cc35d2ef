"""Errors of the licensing repository, importable without SQLAlchemy or Alembic."""

from __future__ import annotations


class SchemaNotCurrent(Exception):
    """The repository's schema is not the one this release expects; the message says what to do.

    Raised instead of migrating on the fly: only an empty database is upgraded without asking.
    """


class TenantIsolationError(Exception):
    """A per-tenant read cannot be isolated (not PostgreSQL, or no reader role)."""
