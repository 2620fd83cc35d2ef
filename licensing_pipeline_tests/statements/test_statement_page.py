"""A statement page in a real browser (headless Chromium): what the customer's browser builds
from it, including from hostile values, is the statement and nothing else."""

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from licensing_pipeline.statements.resources import StatementFolder
from licensing_pipeline_tests.statements.test_statement import acme

BROWSER = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium here (Debian: apt install chromium)"
)
HOSTILE = "<img src=x onerror=\"document.body.setAttribute('data-pwned', '1')\">"


class Dom(HTMLParser):
    """Elements of the DOM the browser serialised: tags, attributes, and cell text by table."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.rows.setdefault(self._table, [])
        elif tag == "tr" and self._table is not None:
            self.rows[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []
        # the page's title, in the head; the charts' own come after it, in their <svg>
        self._in_title = tag == "title" and not any(t == "svg" for t, _ in self.tags)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.rows[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title:
            self.title += data


def rendered(page: Path) -> Dom:
    assert BROWSER is not None
    out = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    dom = Dom()
    dom.feed(out)
    return dom


def test_the_browser_shows_the_statement_and_runs_nothing_from_its_values(tmp_path: Path) -> None:
    statement = acme()
    statement["tenant_name"] = "Acme " + HOSTILE
    statement["findings"][0]["details"] = HOSTILE
    page = StatementFolder(directory=str(tmp_path)).publish(statement)

    dom = rendered(page)
    assert not any(tag == "img" or "data-pwned" in attrs for tag, attrs in dom.tags)
    assert not any(tag == "script" for tag, _ in dom.tags)
    assert dom.title == f"Usage statement: Acme {HOSTILE}, 2026-10"  # shown, as text
    usage = {row[0]: row[1:] for row in dom.rows["usage"][1:]}
    assert usage["api_calls"] == ["1,250", "1,000", "125%"]
    assert usage["exports"] == ["12", "no limit", "no limit"]
    findings = dom.rows["findings"][1:]
    assert [row[-2] for row in findings] == ["open (throttle)", "waived"]
    assert findings[0][0].startswith("Usage above your plan's limit")
    assert HOSTILE in findings[0][0]
