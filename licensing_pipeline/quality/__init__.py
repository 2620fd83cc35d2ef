"""Data quality: Great Expectations suites on every source and the key derived assets."""
