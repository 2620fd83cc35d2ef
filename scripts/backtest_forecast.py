"""The usage forecast's backtest: the end-of-month forecast made mid-month against the month.

    python scripts/backtest_forecast.py [--cut-day 15] [--synthetic-tenants 500] [--seed 11]

On the demo's six months (``licensing-pipeline demo --months 6`` and ``run`` in a scratch
home), every closed month is forecast from its days up to the cut-off day with the function
the nightly ``usage_forecasts`` asset runs, and compared with the month's figure; the median
absolute percentage error is reported for flows, gauges and distinct counts apart. The same
is then done on the anomaly backtest's synthetic traffic (weekly rhythms, bursts, new tenants,
late deliveries; licensing_pipeline/compliance/backtest.py), which the demo generator did not
plan.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pandas as pd

from licensing_pipeline.compliance import backtest as synthetic
from licensing_pipeline.compliance.forecast_backtest import backtest, summary

AS_OF = "2026-12-07"


def demo_tables(home: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str], list[str]]:
    """usage_daily, metric_daily_values, the catalog's aggregations and the demo's closed
    months, from a demo run in ``home``."""
    env = {**os.environ, "LICENSING_HOME": str(home), "LICENSING_PROFILE": "embedded"}
    env.pop("LICENSING_DATA_DIR", None)
    cli = str(Path(sys.executable).with_name("licensing-pipeline"))
    for command in (["demo", "--months", "6", "--as-of", AS_OF], ["run"]):
        done = subprocess.run([cli, *command], env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"licensing-pipeline {command[0]} failed:\n{done.stderr[-2000:]}")
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        usage = con.execute("SELECT * FROM main.usage_daily").df()
        values = con.execute("SELECT * FROM main.metric_daily_values").df()
        metrics = con.execute(
            "SELECT name, aggregation FROM main.catalog WHERE kind = 'metric'"
        ).fetchall()
    periods = sorted(pd.to_datetime(usage["usage_date"]).dt.strftime("%Y-%m").unique())
    return usage, values, dict(metrics), periods[:-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cut-day", type=int, default=15)
    parser.add_argument("--synthetic-tenants", type=int, default=500)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="forecast-backtest-") as scratch:
        usage, values, aggregations, periods = demo_tables(Path(scratch))
    scored = backtest(usage, values, aggregations, periods, args.cut_day)
    print(
        f"The demo's six months (as of {AS_OF}): closed months {', '.join(periods)}, forecast "
        f"on day {args.cut_day} against the month"
    )
    print(summary(scored).to_markdown(index=False))

    data = synthetic.generate(args.synthetic_tenants, seed=args.seed)
    days = pd.to_datetime(data.usage_daily["usage_date"])
    months = sorted(days.dt.strftime("%Y-%m").unique())[1:-1]  # whole months only
    no_values = pd.DataFrame(columns=["tenant_id", "metric", "usage_date", "value_text"])
    scored = backtest(data.usage_daily, no_values, synthetic.AGGREGATIONS, months, args.cut_day)
    print(
        f"\nSynthetic traffic ({args.synthetic_tenants} tenants, seed {args.seed}, months "
        f"{', '.join(months)}; no distinct values, so no UNIQUE_COUNT)"
    )
    print(summary(scored).to_markdown(index=False))


if __name__ == "__main__":
    main()
