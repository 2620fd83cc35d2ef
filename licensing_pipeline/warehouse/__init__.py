"""The warehouse: DuckDB storage and the dbt models built on it."""
