"""The embedded warehouse file: every tenant's usage, so its owner's only."""

from __future__ import annotations

import stat
from pathlib import Path

from licensing_pipeline.warehouse.resources import Warehouse


def test_the_warehouse_file_and_its_log_are_the_owners_only(tmp_path: Path, open_umask: None):
    path = tmp_path / "home" / "warehouse.duckdb"
    warehouse = Warehouse(path=str(path))
    with warehouse.connect() as con:
        con.execute("CREATE TABLE t AS SELECT range AS n FROM range(10)")
        wal = path.with_name(path.name + ".wal")
        assert wal.exists()  # DuckDB's write-ahead log holds the rows until the checkpoint
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)  # left so by an earlier release
    assert warehouse.read_frame("t")["n"].tolist() == list(range(10))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
