"""What the benchmark scripts write: bench-results/<name>.json, the day, the cores and the rows."""

import json
import os
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def save_results(name: str, results: list[dict[str, object]]) -> None:
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(
        json.dumps(
            {"date": date.today().isoformat(), "cores": os.cpu_count(), "results": results},
            indent=2,
        )
    )
