"""Materialization metadata that more than one domain's assets show in the Dagster UI."""

import dagster as dg
import pandas as pd

PREVIEW_ROWS = 10


def preview(frame: pd.DataFrame) -> dg.MetadataValue:
    """The first rows as a Markdown table, or ``_none_`` so that an empty result reads as one."""
    if frame.empty:
        return dg.MetadataValue.md("_none_")
    return dg.MetadataValue.md(str(frame.head(PREVIEW_ROWS).to_markdown(index=False)))


def markdown_table(frame: pd.DataFrame) -> dg.MetadataValue:
    """The whole frame as a Markdown table (``|`` escaped), or ``_none_``."""
    if frame.empty:
        return dg.MetadataValue.md("_none_")
    cells = frame.astype("string").fillna("").apply(lambda c: c.str.replace("|", "\\|"))
    return dg.MetadataValue.md(str(cells.to_markdown(index=False)))
