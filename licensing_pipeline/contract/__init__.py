"""The data contract as code: schemas, catalog model and loaders (no Dagster here)."""
