"""Run migrations on the connection ``schema.py`` hands over (no alembic.ini, no URL here)."""

from __future__ import annotations

from alembic import context

from licensing_pipeline.repository.schema import VERSION_TABLE, full_metadata, include_object

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through licensing_pipeline.repository.schema")

context.configure(
    connection=connection,
    target_metadata=full_metadata(),
    version_table=VERSION_TABLE,
    include_object=include_object,
    # SQLite cannot ALTER most things: Alembic copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
