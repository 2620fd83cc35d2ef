"""Charts for the statements and the dashboard: matplotlib figures rendered to inline SVG
when the page is built, so the page loads nothing and runs no script when it is viewed.

Pure: frames and figures in, SVG text out. The output is byte-for-byte the same for the
same input (a fixed hash salt, no date in the metadata, text kept as text in a generic
font family), so a page rebuilt from the same data does not change.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd
from cycler import cycler
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure

# Colour-blind-safe (Okabe–Ito), and the severities in the colours the pages use.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
SEVERITY_COLOURS = {"critical": "#b42318", "warning": "#9a6700", "info": "#0969da"}
_STYLE: dict[Any, Any] = {
    "svg.hashsalt": "licensing-pipeline",
    "svg.fonttype": "none",
    "text.parse_math": False,  # a "$" in a metric or tenant name is text, not mathtext
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=PALETTE),
}
_WIDTH = 6.4  # inches; the page scales the SVG to its column


def _svg(figure: Figure, chart_id: str, title: str) -> str:
    """The figure as an <svg> element with the chart's id, role and accessible title; the
    XML prolog and doctype dropped (it goes inline into HTML)."""
    buffer = io.StringIO()
    with rc_context(_STYLE):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    label = html.escape(title, quote=True)
    chart_id = html.escape(chart_id, quote=True)
    text = re.sub(
        r"<svg ([^>]*?)width=\"[^\"]*\" height=\"[^\"]*\"",
        lambda m: (
            f'<svg id="{chart_id}" class="chart" role="img" aria-label="{label}" {m.group(1)}'
            'preserveAspectRatio="xMinYMin meet"'
        ),
        text,
        count=1,
    )
    return text.replace(">", f"><title>{label}</title>", 1)


def _figure(height: float) -> tuple[Figure, Axes]:
    with rc_context(_STYLE):
        figure = Figure(figsize=(_WIDTH, height))
        return figure, figure.subplots()


def usage_bar(
    chart_id: str,
    metric: str,
    used: float,
    limit: float | None,
    projected: float | None = None,
    without_limit: str = "no limit",
) -> str:
    """One metric's usage against its limit: the bar of the usage, the limit as a line, and
    the projected month-end figure as a hatched bar behind it when there is one;
    ``without_limit`` says why there is no limit line. Marks: ``<g id="{chart_id}-used">``,
    ``-projected`` and ``-limit``, as for every chart here (lines ``-line-N``, bars
    ``-bar-N-M``)."""
    title = f"{metric}: {used:,.0f} used" + (
        f" of {limit:,.0f}" if limit is not None else f", {without_limit}"
    )
    with rc_context(_STYLE):
        figure, axes = _figure(0.9)
        if projected is not None:
            axes.barh(
                [0],
                [projected],
                color="none",
                edgecolor=PALETTE[0],
                hatch="//",
                gid=f"{chart_id}-projected",
            )
        over = limit is not None and used > limit
        colour = SEVERITY_COLOURS["critical"] if over else PALETTE[0]
        axes.barh([0], [used], color=colour, gid=f"{chart_id}-used")
        if limit is not None:
            axes.axvline(limit, color="#1b1f24", linewidth=2, gid=f"{chart_id}-limit")
        axes.set_yticks([0], [metric])
        axes.set_xlim(0, max(used, limit or 0, projected or 0, 1) * 1.08)
        axes.set_title(title, loc="left", fontsize=9)
    return _svg(figure, chart_id, title)


def month_line(
    chart_id: str,
    metric: str,
    to_date: pd.Series,
    *,
    month_end: pd.Timestamp,
    projected: float | None,
    limit: float | None,
) -> str:
    """A metric's month to date by day (``to_date``: figure indexed by day), the forecast as
    a dashed line from the last day to ``month_end`` and the limit as a horizontal line."""
    title = f"{metric}: usage this month by day"
    with rc_context(_STYLE):
        figure, axes = _figure(2.2)
        axes.plot(
            to_date.index,
            to_date.to_numpy(),
            marker=".",
            label="to date",
            gid=f"{chart_id}-to-date",
        )
        if projected is not None and len(to_date):
            axes.plot(
                [to_date.index[-1], month_end],
                [float(to_date.iloc[-1]), projected],
                linestyle="--",
                color=PALETTE[1],
                label="forecast",
                gid=f"{chart_id}-forecast",
            )
        if limit is not None:
            axes.axhline(
                limit,
                color=SEVERITY_COLOURS["critical"],
                linewidth=1.5,
                label="limit",
                gid=f"{chart_id}-limit",
            )
        axes.set_ylim(bottom=0)
        axes.set_title(title, loc="left", fontsize=9)
        axes.legend(loc="upper left", frameon=False)
        axes.set_xlim(month_end.replace(day=1), month_end)
        axes.xaxis.set_major_formatter(DateFormatter("%b %d"))
    return _svg(figure, chart_id, title)


def lines(
    chart_id: str,
    title: str,
    frame: pd.DataFrame,
    *,
    ylabel: str,
    colours: Mapping[str, str] | None = None,
    percent: bool = False,
) -> str:
    """One line per column of ``frame`` (indexed by the x axis: runs or days)."""
    with rc_context(_STYLE):
        figure, axes = _figure(2.6)
        for i, column in enumerate(frame.columns):
            axes.plot(
                [str(x) for x in frame.index],
                frame[column].to_numpy(),
                marker=".",
                label=str(column),
                color=(colours or {}).get(str(column)),
                gid=f"{chart_id}-line-{i}",
            )
        axes.set_ylabel(ylabel)
        axes.set_ylim(0, 100 if percent else None)
        axes.set_title(title, loc="left", fontsize=10)
        if len(frame.columns) > 1:
            axes.legend(loc="upper left", bbox_to_anchor=(0, -0.3), ncol=3, frameon=False)
        _thin_ticks(axes, len(frame.index))
    return _svg(figure, chart_id, title)


def bars(
    chart_id: str,
    title: str,
    frame: pd.DataFrame,
    *,
    ylabel: str,
    colours: Mapping[str, str] | None = None,
    horizontal: bool = False,
) -> str:
    """Grouped bars: one group per row of ``frame``, one bar per column in it."""
    with rc_context(_STYLE):
        height = 0.35 * len(frame.index) + 0.8 if horizontal else 2.6
        figure, axes = _figure(max(height, 1.2))
        labels = [str(x) for x in frame.index]
        width = 0.8 / max(len(frame.columns), 1)
        for i, column in enumerate(frame.columns):
            positions = [p + i * width for p in range(len(labels))]
            draw = axes.barh if horizontal else axes.bar
            container = draw(
                positions,
                frame[column].to_numpy(),
                width,
                label=str(column),
                color=(colours or {}).get(str(column), PALETTE[i % len(PALETTE)]),
            )
            for j, patch in enumerate(container.patches):
                patch.set_gid(f"{chart_id}-bar-{i}-{j}")
        middle = [p + width * (len(frame.columns) - 1) / 2 for p in range(len(labels))]
        if horizontal:
            axes.set_yticks(middle, labels)
            axes.invert_yaxis()
            axes.set_xlabel(ylabel)
        else:
            axes.set_xticks(middle, labels)
            axes.set_ylabel(ylabel)
            _thin_ticks(axes, len(labels))
        axes.set_title(title, loc="left", fontsize=10)
        if len(frame.columns) > 1:
            axes.legend(loc="upper left", bbox_to_anchor=(0, -0.3), ncol=3, frameon=False)
    return _svg(figure, chart_id, title)


def _thin_ticks(axes: Axes, count: int, most: int = 10) -> None:
    """At most ``most`` labels on the x axis, turned so long ones do not overlap."""
    step = max(1, -(-count // most))
    for i, label in enumerate(axes.get_xticklabels()):
        label.set_visible(i % step == 0)
        label.set_rotation(30)
        label.set_horizontalalignment("right")
