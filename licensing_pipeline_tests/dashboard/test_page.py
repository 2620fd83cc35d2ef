"""The compliance dashboard on small frames, and as a real browser (headless Chromium) builds
it: counts, order of the tenants, links to statements, hostile ids shown as text."""

from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from licensing_pipeline.dashboard.page import dashboard_summary, render_dashboard
from licensing_pipeline.dashboard.resources import DashboardFolder
from licensing_pipeline_tests.statements.test_statement import finding
from licensing_pipeline_tests.statements.test_statement_page import BROWSER, HOSTILE, rendered

AS_OF = date(2026, 11, 20)


def findings() -> pd.DataFrame:
    rows = [
        finding("acme", "quota_exceeded", "api_calls", "2026-10", "open"),
        finding("acme", "quota_near_limit", "seats", "2026-11", "open"),
        finding("globex", "residency_violation", "ap-south-1", "2026-11", "open"),
        finding("globex", "feature_not_entitled", "sso", "2026-11", "open"),
        finding("initech", "quota_near_limit", "seats", "2026-11", "open"),
        finding("initech", "unbilled_usage", "api_calls", "2026-10", "waived"),
        finding("umbrella", "overbilled_usage", "api_calls", "2026-09", "resolved"),
    ]
    frame = pd.DataFrame(rows)
    frame["severity"] = ["critical", "info", "critical", "warning", "info", "warning", "critical"]
    frame["action"] = ["throttle", "notify", "suspend", "warn", "notify", "notify", "suspend"]
    return frame


RUNS = pd.DataFrame(
    {
        "run_id": ["r1", "r2"],
        "finished_at": pd.to_datetime(["2026-11-19 02:10", "2026-11-20 02:10"]),
        "as_of": [date(2026, 11, 18), date(2026, 11, 19)],
        "policy_version": ["2026.11.0", "2026.11.0"],
        "catalog_version": ["2026-11-01", "2026-11-01"],
        "open_findings": [7, 5],
        "waived_findings": [1, 1],
        "resolved_findings": [0, 1],
    }
)


def test_the_summary_counts_open_findings_by_check_severity_and_action() -> None:
    summary = dashboard_summary(findings(), RUNS, AS_OF, {"acme": "Acme Rockets"})
    assert (summary["open"], summary["critical_open"], summary["waived"], summary["resolved"]) == (
        5,
        2,
        1,
        1,
    )
    # the last run is this one (its findings are saved first); 7 were open in the one before
    assert summary["open_change"] == -2
    by_check = {r["check"]: r for r in summary["by_check"]}
    assert by_check["quota_near_limit"]["info"] == 2 and by_check["quota_near_limit"]["total"] == 2
    assert "unbilled_usage" not in by_check  # waived, not open
    assert {r["action"]: r["open"] for r in summary["by_action"]} == {
        "suspend": 1,
        "throttle": 1,
        "warn": 1,
        "notify": 2,
    }


def test_tenants_are_ordered_by_critical_then_warning_then_info() -> None:
    summary = dashboard_summary(findings(), RUNS, AS_OF, {"acme": "Acme Rockets"})
    tenants = summary["tenants"]
    assert [t["tenant_id"] for t in tenants] == ["globex", "acme", "initech"]
    assert tenants[0]["strongest_action"] == "suspend"
    assert tenants[1]["name"] == "Acme Rockets" and tenants[1]["strongest_action"] == "throttle"
    assert summary["tenants_with_open"] == 3


def test_the_change_since_the_previous_run_needs_one() -> None:
    assert dashboard_summary(findings(), RUNS.iloc[:1], AS_OF)["open_change"] is None
    growing = RUNS.assign(open_findings=[4, 5])
    assert dashboard_summary(findings(), growing, AS_OF)["open_change"] == 1


@pytest.mark.skipif(BROWSER is None, reason="no Chromium here (Debian: apt install chromium)")
def test_the_browser_shows_the_numbers_the_links_and_hostile_ids_as_text(tmp_path: Path) -> None:
    frame = findings()
    frame.loc[frame["tenant_id"] == "initech", "tenant_id"] = HOSTILE
    summary = dashboard_summary(frame, RUNS, AS_OF)
    statement = tmp_path / "statements" / "globex" / "2026-11.html"
    statement.parent.mkdir(parents=True)
    statement.write_text("<!doctype html><title>globex</title>")
    page = DashboardFolder(directory=str(tmp_path / "dashboard")).publish(
        render_dashboard(
            summary, lambda t: "../statements/globex/2026-11.html" if t == "globex" else None
        )
    )

    dom = rendered(page)
    assert not any(tag in ("img", "script") or "data-pwned" in a for tag, a in dom.tags)
    tenants = [row[0] for row in dom.rows["tenants"][1:]]
    assert tenants == ["globex", "acme", HOSTILE]
    links = [a["href"] for tag, a in dom.tags if tag == "a"]
    assert links == ["../statements/globex/2026-11.html"]
    assert (page.parent / str(links[0])).resolve() == statement.resolve()
    by_action = {row[0]: row[1] for row in dom.rows["by-action"][1:]}
    assert by_action == {"suspend": "1", "throttle": "1", "warn": "1", "notify": "2"}
    runs = dom.rows["runs"][1:]
    assert [row[0] for row in runs] == ["2026-11-19", "2026-11-18"]  # newest first


class _Cells(HTMLParser):
    """The text of each row of one table, by id."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside, self.rows = table_id, False, []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.inside = dict(attrs).get("id") == self.table_id
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def table_rows(page: str, table_id: str) -> list[list[str]]:
    parser = _Cells(table_id)
    parser.feed(page)
    return parser.rows


def request(request_id: int, status: str, **values: object) -> dict[str, object]:
    return {
        "request_id": request_id,
        "kind": "quota_override",
        "tenant_id": "acme",
        "payload": '{"metric": "api_calls", "limit": 200000}',
        "reason": "renewal",
        "effective_from": date(2026, 12, 8),
        "effective_until": None,
        "status": status,
        "proposed_by": "bob",
        "decided_by": None if status == "pending" else "carol",
        "decided_at": None,
        **values,
    }


def test_pending_changes_and_recent_decisions_show_as_a_table_newest_first() -> None:
    changes = [
        request(6, "approved"),
        request(7, "pending", tenant_id="<b>x</b>"),
        request(5, "rejected", kind="feature_grant", payload='{"feature": "sso"}'),
    ]
    page = render_dashboard(dashboard_summary(findings(), RUNS, AS_OF, changes=changes))
    assert table_rows(page, "changes") == [
        ["Change", "Status", "What", "Proposed by", "Decided by", "Effective"],
        [
            "#7",
            "pending",
            "quota override api_calls → 200,000 for tenant <b>x</b>",
            "bob",
            "",
            "2026-12-08",
        ],
        [
            "#6",
            "approved",
            "quota override api_calls → 200,000 for tenant acme",
            "bob",
            "carol",
            "2026-12-08",
        ],
        ["#5", "rejected", "feature grant sso for tenant acme", "bob", "carol", "2026-12-08"],
    ]
    assert "<b>x</b>" not in page  # a tenant id is text, never markup
    empty = render_dashboard(dashboard_summary(findings(), RUNS, AS_OF))
    assert table_rows(empty, "changes") == []
    assert "No change request is pending" in empty
