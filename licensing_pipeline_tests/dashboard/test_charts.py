"""The charts as SVG: well-formed, titled for screen readers, with the marks and labels a
reader needs, hostile names kept as text, and the same bytes for the same data."""

import xml.etree.ElementTree as ET

import pandas as pd

from licensing_pipeline.dashboard import charts

SVG = "{http://www.w3.org/2000/svg}"
DAYS = pd.Series(
    [100.0, 250.0, 420.0], index=pd.to_datetime(["2026-11-01", "2026-11-02", "2026-11-03"])
)


def parsed(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def marks(svg: str) -> set[str]:
    """Ids of the chart's groups: each drawn series or bar has one."""
    return {g.get("id") or "" for g in parsed(svg).iter(f"{SVG}g")}


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def test_a_chart_is_inline_svg_with_its_id_role_and_title() -> None:
    svg = charts.usage_bar("usage-bar-api_calls", "api_calls", 1250, 1000, 1500)
    assert svg.startswith("<svg ") and "<?xml" not in svg and "<!DOCTYPE" not in svg
    root = parsed(svg)
    title = "api_calls: 1,250 used of 1,000"
    assert root.get("id") == "usage-bar-api_calls" and root.get("class") == "chart"
    assert root.get("role") == "img" and root.get("aria-label") == title
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}title").text == title
    # scales to the page's column: a viewBox, no fixed size
    assert root.get("viewBox") and root.get("width") is None


def test_the_usage_bar_shows_the_limit_and_the_projection_only_when_known() -> None:
    with_all = charts.usage_bar("b", "api_calls", 1250, 1000, 1500)
    assert {"b-used", "b-projected", "b-limit"} <= marks(with_all)
    bare = charts.usage_bar("b", "exports", 12, None, without_limit="not covered")
    assert marks(bare) & {"b-used", "b-projected", "b-limit"} == {"b-used"}
    assert parsed(bare).get("aria-label") == "exports: 12 used, not covered"
    assert "#b42318" in with_all and "#b42318" not in charts.usage_bar("b", "api_calls", 900, 1000)


def test_the_month_line_has_the_usage_the_forecast_and_the_limit() -> None:
    svg = charts.month_line(
        "m", "api_calls", DAYS, month_end=pd.Timestamp("2026-11-30"), projected=3000, limit=2500
    )
    labels = texts(parsed(svg))
    assert {"to date", "forecast", "limit"} <= set(labels)
    assert {"m-to-date", "m-forecast", "m-limit"} <= marks(svg)
    no_forecast = charts.month_line(
        "m", "api_calls", DAYS, month_end=pd.Timestamp("2026-11-30"), projected=None, limit=None
    )
    assert "forecast" not in texts(parsed(no_forecast)) and "limit" not in texts(
        parsed(no_forecast)
    )


def test_lines_and_bars_label_every_series_and_category() -> None:
    frame = pd.DataFrame(
        {"critical": [2, 1], "warning": [5, 3]}, index=["2026-11-18", "2026-11-19"]
    )
    drawn = charts.lines("l", "Open", frame, ylabel="findings")
    assert {"critical", "warning", "2026-11-18", "2026-11-19", "findings"} <= set(
        texts(parsed(drawn))
    )
    assert {"l-line-0", "l-line-1"} <= marks(drawn)
    risk = pd.DataFrame({"risk": [27, 9]}, index=["globex", "acme"])
    bars = charts.bars("r", "Risk", risk, ylabel="risk", horizontal=True)
    assert {"globex", "acme"} <= set(texts(parsed(bars)))
    assert {"r-bar-0-0", "r-bar-0-1"} <= marks(bars) and "r-bar-0-2" not in marks(bars)


def test_names_stay_text_markup_and_dollars_included() -> None:
    hostile = '<img src=x onerror="alert(1)"> $x^2$'
    svg = charts.usage_bar(f'"><script>{hostile}', hostile, 5, 10)
    root = parsed(svg)  # still well-formed
    assert not list(root.iter(f"{SVG}script")) and not list(root.iter(f"{SVG}img"))
    assert "<script" not in svg and "<img" not in svg
    assert hostile in texts(root)  # the name as written, not mathtext


def test_the_same_data_gives_the_same_bytes() -> None:
    def draw() -> str:
        return charts.month_line(
            "m", "api_calls", DAYS, month_end=pd.Timestamp("2026-11-30"), projected=900, limit=800
        )

    first = draw()
    assert first == draw()
    assert "<dc:date>" not in first  # no render date in the metadata
