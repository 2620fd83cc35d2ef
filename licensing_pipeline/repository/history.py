"""Which findings a run adds to ``finding_history``: the new ones and the changed ones.

Only changes, not every finding every night: most findings stay as they were for weeks (a
resolved one forever), so a row per finding per run would grow the table by the whole
finding set each night and bury the few changes an auditor looks for. Compared with each
finding's latest history row, not with ``compliance_findings``, so the first run after the
migration records every finding once, as the baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from licensing_pipeline.repository.tables import HISTORY_TRACKED


def _same(now: pd.Series, before: pd.Series) -> pd.Series:
    """Equal, or both missing (NaN, None, NA), per row."""
    now = now.astype(object).where(now.notna(), None)
    before = before.astype(object).where(before.notna(), None)
    return (now == before).fillna(False).astype(bool) | (now.isna() & before.isna())


def finding_changes(records: pd.DataFrame, latest: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``records`` that are new or differ from ``latest`` in a tracked column,
    with ``change``: "new", or the changed columns, comma-separated in ``HISTORY_TRACKED``'s
    order. ``latest`` holds ``finding_id`` and the tracked columns of each finding's latest
    history row."""
    before = latest[["finding_id", *HISTORY_TRACKED]].rename(
        columns={c: f"{c}__before" for c in HISTORY_TRACKED}
    )
    records = records.reset_index(drop=True)
    merged = records.merge(before, on="finding_id", how="left", indicator="_known")
    new = (merged["_known"] == "left_only").to_numpy()
    change = pd.Series("", index=merged.index, dtype=object)
    for column in HISTORY_TRACKED:  # nine columns, each compared over every row at once
        differs = ~_same(merged[column], merged[f"{column}__before"]).to_numpy()
        change = change + np.where(differs & ~new, f",{column}", "")
    change = change.str.lstrip(",")
    change[new] = "new"
    keep = (change != "").to_numpy()
    out = records.loc[keep].copy()
    out["change"] = change[keep].to_numpy()
    return out.reset_index(drop=True)
