"""The compliance dashboard: where the business stands after the latest evaluation, as one
static page that compliance owners and customer success can open or be sent.

Internal: it names every tenant. Customers get their own statements instead.
"""

import html
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

import pandas as pd

from licensing_pipeline.contract.schemas import ACTIONS, CHECKS, SEVERITIES
from licensing_pipeline.dashboard import charts
from licensing_pipeline.remediation.change_alerts import describe_change

TOP_TENANTS = 20
_BY_WEIGHT = tuple(reversed(SEVERITIES))  # critical, warning, info


def change_rows(requests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Change requests (``change_requests`` rows) as the page's table shows them, newest first."""
    return [
        {
            "request_id": int(r["request_id"]),
            "status": str(r["status"]),
            "change": describe_change(str(r["kind"]), json.loads(r["payload"]), r["tenant_id"]),
            "proposed_by": str(r["proposed_by"]),
            "decided_by": "" if r["decided_by"] is None else str(r["decided_by"]),
            "effective_from": pd.Timestamp(r["effective_from"]).date().isoformat(),
        }
        for r in sorted(requests, key=lambda r: -int(r["request_id"]))
    ]


def dashboard_summary(
    findings: pd.DataFrame,
    runs: pd.DataFrame,
    as_of: date,
    names: Mapping[str, str] | None = None,
    changes: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Counts of the findings (compliance_findings rows) and of the latest runs (finding_runs
    rows, oldest first) that the page shows; ``names`` are the tenants' names by id;
    ``changes`` the pending change requests and the recent decisions."""
    names = names or {}
    status = findings["status"]
    live = findings[status == "open"]
    by_check: list[dict[str, Any]] = []
    for check in CHECKS:
        rows = live[live["check"] == check]
        if len(rows):
            counts = rows["severity"].value_counts()
            by_check.append(
                {
                    "check": check,
                    **{s: int(counts.get(s, 0)) for s in _BY_WEIGHT},
                    "total": len(rows),
                }
            )
    actions = live["action"].value_counts()
    tenants: list[dict[str, Any]] = []
    for tenant_id, rows in live.groupby("tenant_id"):
        counts = rows["severity"].value_counts()
        ranks = rows["action"].map({a: i for i, a in enumerate(ACTIONS)})
        tenants.append(
            {
                "tenant_id": str(tenant_id),
                "name": names.get(str(tenant_id), ""),
                **{s: int(counts.get(s, 0)) for s in _BY_WEIGHT},
                "total": len(rows),
                "strongest_action": ACTIONS[int(ranks.max())],
            }
        )
    tenants.sort(key=lambda t: (*(-t[s] for s in _BY_WEIGHT), t["tenant_id"]))
    previous_open = int(runs["open_findings"].iloc[-2]) if len(runs) > 1 else None
    return {
        "as_of": as_of.isoformat(),
        "open": len(live),
        "critical_open": int((live["severity"] == "critical").sum()),
        "waived": int((status == "waived").sum()),
        "resolved": int((status == "resolved").sum()),
        "open_change": None if previous_open is None else len(live) - previous_open,
        "by_check": by_check,
        "by_action": [{"action": a, "open": int(actions.get(a, 0))} for a in reversed(ACTIONS)],
        "tenants": tenants[:TOP_TENANTS],
        "tenants_with_open": len(tenants),
        "changes": change_rows(changes),
        "runs": [
            {
                "as_of": str(r.as_of)[:10],
                "finished_at": str(r.finished_at)[:16],
                "open": int(r.open_findings),
                "waived": int(r.waived_findings),
                "resolved": int(r.resolved_findings),
                "policy_version": str(r.policy_version),
            }
            for r in runs.itertuples()
        ],
    }


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#1b1f24;padding:0 1rem}
.kpis{display:flex;gap:1rem;flex-wrap:wrap}.kpi{border:1px solid #d0d7de;border-radius:6px;
padding:.6rem 1rem;min-width:9rem}.kpi b{display:block;font-size:1.8rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #d0d7de}
td.n{text-align:right;font-variant-numeric:tabular-nums}.critical{color:#b42318;font-weight:600}
.note{color:#57606a}svg{display:block;margin:.5rem 0 1.5rem}
svg.chart{width:100%;max-width:48rem;height:auto}
@media (max-width:40rem){table{display:block;overflow-x:auto}}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(table_id: str, columns: tuple[str, ...], rows: list[list[str]]) -> str:
    """Cells arrive escaped (or built from escaped parts)."""
    head = "".join(f'<th scope="col">{_e(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _num(value: int) -> str:
    return f'<td class="n">{value:,}</td>'


def _trend(runs: list[Mapping[str, Any]]) -> str:
    """Open findings per run as bars (inline SVG: no script, nothing loaded from outside)."""
    if not runs:
        return ""
    top = max(max(r["open"] for r in runs), 1)
    width, height, gap = 16, 80, 4
    bars = "".join(
        f'<rect x="{i * (width + gap)}" y="{height - round(r["open"] / top * height)}" '
        f'width="{width}" height="{round(r["open"] / top * height)}" fill="#0969da">'
        f"<title>{_e(r['as_of'])}: {r['open']} open</title></rect>"
        for i, r in enumerate(runs)
    )
    return (
        f'<svg role="img" aria-label="open findings per run" width="{len(runs) * (width + gap)}" '
        f'height="{height}" viewBox="0 0 {len(runs) * (width + gap)} {height}">{bars}</svg>'
    )


def render_dashboard(
    summary: Mapping[str, Any],
    statement_link: Callable[[str], str | None] = lambda _: None,
    trends: Mapping[str, pd.DataFrame] | None = None,
) -> str:
    """The page; ``statement_link`` gives a tenant's statement (relative URL) or None;
    ``trends`` (``trends.dashboard_trends``) adds the charts section."""
    change = summary["open_change"]
    since = "" if change is None else f"{change:+,} since the previous run"
    kpis = [
        ("Open findings", f"{summary['open']:,}", since),
        ("Critical open", f"{summary['critical_open']:,}", ""),
        ("Tenants with open findings", f"{summary['tenants_with_open']:,}", ""),
        ("Waived", f"{summary['waived']:,}", "by approved exceptions"),
        ("Resolved", f"{summary['resolved']:,}", "no longer seen"),
    ]
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Compliance dashboard, as of {_e(summary['as_of'])}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Compliance as of {_e(summary['as_of'])}</h1>",
        '<div class="kpis" id="kpis">',
        *(
            f'<div class="kpi"><span>{_e(label)}</span><b>{_e(value)}</b>'
            f'<span class="note">{_e(note)}</span></div>'
            for label, value, note in kpis
        ),
        "</div>",
        "<h2>Open findings by check</h2>",
    ]
    severities = tuple(s.capitalize() for s in _BY_WEIGHT)
    parts.append(
        _table(
            "by-check",
            ("Check", *severities, "Total"),
            [
                [f"<td>{_e(r['check'])}</td>", *(_num(r[s]) for s in _BY_WEIGHT), _num(r["total"])]
                for r in summary["by_check"]
            ],
        )
        if summary["by_check"]
        else "<p>No open findings.</p>"
    )
    parts.append("<h2>Enforcement actions of the open findings</h2>")
    parts.append(
        _table(
            "by-action",
            ("Action", "Open findings"),
            [[f"<td>{_e(r['action'])}</td>", _num(r["open"])] for r in summary["by_action"]],
        )
    )
    parts.append("<h2>Tenants needing attention</h2>")
    rows = []
    for t in summary["tenants"]:
        link = statement_link(t["tenant_id"])
        name = _e(f"{t['name']} ({t['tenant_id']})" if t["name"] else t["tenant_id"])
        cell = f'<a href="{_e(link)}">{name}</a>' if link else name
        critical = ' class="n critical"' if t["critical"] else ' class="n"'
        rows.append(
            [
                f"<td>{cell}</td>",
                f"<td{critical}>{t['critical']:,}</td>",
                _num(t["warning"]),
                _num(t["info"]),
                f"<td>{_e(t['strongest_action'])}</td>",
            ]
        )
    parts.append(
        _table("tenants", ("Tenant", *severities, "Strongest action"), rows)
        if rows
        else "<p>No tenant has an open finding.</p>"
    )
    parts.append("<h2>Change requests</h2>")
    parts.append(
        _table(
            "changes",
            ("Change", "Status", "What", "Proposed by", "Decided by", "Effective"),
            [
                [
                    f"<td>#{r['request_id']}</td>",
                    f"<td>{_e(r['status'])}</td>",
                    f"<td>{_e(r['change'])}</td>",
                    f"<td>{_e(r['proposed_by'])}</td>",
                    f"<td>{_e(r['decided_by'])}</td>",
                    f"<td>{_e(r['effective_from'])}</td>",
                ]
                for r in summary["changes"]
            ],
        )
        if summary["changes"]
        else "<p>No change request is pending or was decided in the last week.</p>"
    )
    if "success" in summary:
        parts.append(success_section(summary["success"]))
    parts.append("<h2>The latest runs</h2>")
    parts.append(_trend(summary["runs"]))
    parts.append(
        _table(
            "runs",
            ("As of", "Finished (UTC)", "Open", "Waived", "Resolved", "Policy"),
            [
                [
                    f"<td>{_e(r['as_of'])}</td>",
                    f"<td>{_e(r['finished_at'])}</td>",
                    _num(r["open"]),
                    _num(r["waived"]),
                    _num(r["resolved"]),
                    f"<td>{_e(r['policy_version'])}</td>",
                ]
                for r in reversed(summary["runs"])
            ],
        )
    )
    if trends is not None:
        parts.append(render_trends(trends))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


SUCCESS_MONTHS = 12


def success_summary(metrics: pd.DataFrame) -> dict[str, Any]:
    """What the page shows of the success_metrics rows: the contract movements and incident
    response of the latest months, and leakage found and recovered, all months, by currency."""

    def wide(family: str) -> pd.DataFrame:
        rows = metrics[metrics["family"] == family]
        if rows.empty:
            return pd.DataFrame()
        return rows.pivot_table(
            index=["period", "dimension"], columns="metric", values="value", aggfunc="first"
        ).reset_index()

    contracts, response, leak = (wide(f) for f in ("contracts", "incident_response", "leakage"))
    months = sorted(set(metrics["period"]))[-SUCCESS_MONTHS:]
    amounts = ["found_amount", "recovered_amount", "findings"]
    totals = (
        leak.reindex(columns=["dimension", *amounts])
        .fillna({a: 0.0 for a in amounts})
        .groupby("dimension")[amounts]
        .sum()
        if len(leak)
        else pd.DataFrame()
    )
    return {
        "contracts": [r for r in contracts.to_dict("records") if r["period"] in months][::-1],
        "response": [r for r in response.to_dict("records") if r["period"] in months][::-1],
        "leakage": [
            {
                "currency": currency,
                "found": float(t["found_amount"]),
                "recovered": float(t["recovered_amount"]),
                "findings": int(t["findings"]),
            }
            for currency, t in totals.iterrows()
        ],
    }


def _figure(value: Any, digits: int = 1) -> str:
    if value is None or pd.isna(value):
        return '<td class="n">–</td>'
    return f'<td class="n">{float(value):,.{digits}f}</td>'


def _count(value: Any) -> str:
    return _num(0 if value is None or pd.isna(value) else int(value))


def success_section(success: Mapping[str, Any]) -> str:
    """The "Success metrics" section: renewals and plan moves, response hours, leakage."""
    parts = ["<h2>Success metrics</h2>", "<h3>Contracts</h3>"]
    parts.append(
        _table(
            "success-contracts",
            (
                "Month",
                "Ended",
                "Renewals",
                "Renewal rate",
                "Upgrades",
                "Downgrades",
                "Pauses",
                "Cancellations",
            ),
            [
                [
                    f"<td>{_e(r['period'])}</td>",
                    _count(r.get("ended")),
                    _count(r.get("renewals")),
                    '<td class="n">–</td>'
                    if pd.isna(r.get("renewal_rate"))
                    else f'<td class="n">{float(r["renewal_rate"]):.0%}</td>',
                    *(
                        _count(r.get(k))
                        for k in ("upgrades", "downgrades", "pauses", "cancellations")
                    ),
                ]
                for r in success["contracts"]
            ],
        )
        if success["contracts"]
        else "<p>No contract movements yet.</p>"
    )
    parts.append("<h3>Incident response (hours from detection)</h3>")
    parts.append(
        _table(
            "success-response",
            (
                "Month",
                "Severity",
                "Tickets",
                "Ack median",
                "Ack p90",
                "Resolved median",
                "Resolved p90",
            ),
            [
                [
                    f"<td>{_e(r['period'])}</td>",
                    f"<td>{_e(r['dimension'])}</td>",
                    _count(r.get("incidents")),
                    *(
                        _figure(r.get(k))
                        for k in (
                            "ack_median_hours",
                            "ack_p90_hours",
                            "resolve_median_hours",
                            "resolve_p90_hours",
                        )
                    ),
                ]
                for r in success["response"]
            ],
        )
        if success["response"]
        else "<p>No tickets yet.</p>"
    )
    parts.append("<h3>Revenue leakage (unbilled usage)</h3>")
    parts.append(
        _table(
            "success-leakage",
            ("Currency", "Findings", "Found", "Recovered"),
            [
                [
                    f"<td>{_e(r['currency'] or 'unpriced')}</td>",
                    _num(r["findings"]),
                    _figure(r["found"], 2),
                    _figure(r["recovered"], 2),
                ]
                for r in success["leakage"]
            ],
        )
        if success["leakage"]
        else "<p>No unbilled usage found.</p>"
    )
    return "\n".join(parts)


def leakage_totals(unbilled: pd.DataFrame) -> dict[str, float]:
    """The priced leakage by currency, to the cent: the sum of the unbilled amounts."""
    priced = unbilled.dropna(subset=["amount"])
    return {
        str(c): round(float(a), 2) for c, a in priced.groupby("currency")["amount"].sum().items()
    }


def render_trends(trends: Mapping[str, pd.DataFrame]) -> str:
    """The charts section (inline SVG drawn now, see ``charts``): the figures of
    ``trends.dashboard_trends``, each with its accessible title and a note when empty."""
    unbilled = trends["unbilled"]
    totals = leakage_totals(unbilled)
    total_text = " + ".join(f"{a:,.2f} {c}" for c, a in totals.items()) or "0.00"
    unpriced = int(unbilled["amount"].isna().sum())
    note = f"{len(unbilled):,} open unbilled finding(s)" + (
        f", {unpriced:,} of a metric never billed (not priced)" if unpriced else ""
    )
    colours = dict(charts.SEVERITY_COLOURS)
    sections = [
        ("open-by-check", "Open findings by check, per run", trends["open_by_check"], "lines", {}),
        (
            "open-by-severity",
            "Open findings by severity, per run",
            trends["open_by_severity"],
            "lines",
            colours,
        ),
        ("leakage", "Revenue leakage by month", trends["leakage_by_month"], "bars", {}),
        ("tickets", "Tickets opened and closed, by day", trends["tickets_by_day"], "bars", {}),
        (
            "remediation",
            "Median days to remediation, by severity",
            trends["remediation_days"],
            "bars",
            {},
        ),
        (
            "dq-pass-rate",
            "Data-quality checks passed, per run (%)",
            trends["pass_rate"],
            "lines",
            {},
        ),
        ("tenant-risk", "Top tenants by risk", trends["tenant_risk"], "hbars", {}),
    ]
    ylabels = {
        "leakage": "amount in " + ", ".join(map(str, trends["leakage_by_month"].columns)),
        "remediation": "days",
        "dq-pass-rate": "% passed",
        "tenant-risk": "risk (critical 9, warning 3, info 1)",
    }
    parts = [
        '<h2 id="trends">Trends</h2>',
        f'<div class="kpis"><div class="kpi" id="leakage-total"><span>Revenue leakage</span>'
        f'<b>{_e(total_text)}</b><span class="note">{_e(note)}</span></div></div>',
    ]
    for chart_id, title, frame, kind, palette in sections:
        parts.append(f"<h3>{_e(title)}</h3>")
        if frame.empty:
            parts.append(f'<p class="note" id="{chart_id}-none">Nothing yet.</p>')
            continue
        ylabel = ylabels.get(chart_id, "findings" if chart_id.startswith("open") else "tickets")
        if kind == "lines":
            parts.append(
                charts.lines(
                    f"chart-{chart_id}",
                    title,
                    frame,
                    ylabel=ylabel,
                    colours=palette,
                    percent=chart_id == "dq-pass-rate",
                )
            )
        else:
            parts.append(
                charts.bars(
                    f"chart-{chart_id}", title, frame, ylabel=ylabel, horizontal=kind == "hbars"
                )
            )
    return "\n".join(parts)
