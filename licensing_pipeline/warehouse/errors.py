"""Errors of the warehouse, importable without DuckDB, dbt or Dagster (the CLI catches them)."""


class WarehouseBusy(Exception):
    """The embedded warehouse file is held by another process: DuckDB admits one writer."""
