"""Customer statements: what one tenant bought, used and was found in breach of in a month,
and nothing about anyone else.

A statement is built from one tenant's rows (``tenant_statement`` refuses a row of another
tenant rather than trusting its caller's filter), keeps only what the customer may see (no
compliance owner, Slack channel, segment, policy rule or version), and renders as JSON and as
a self-contained HTML page with every value escaped.
"""

import hashlib
import html
import json
import math
import re
from collections.abc import Mapping
from datetime import date
from typing import Any

import pandas as pd

from licensing_pipeline.compliance.entitlements import parse_features, parse_quotas
from licensing_pipeline.contract.catalog import Catalog, Package, Price
from licensing_pipeline.dashboard import charts

# How each check reads to the customer.
CHECK_LABELS = {
    "quota_exceeded": "Usage above your plan's limit",
    "quota_near_limit": "Usage close to your plan's limit",
    "feature_not_entitled": "Feature used that your plan does not include",
    "inactive_contract_usage": "Usage without an active contract",
    "residency_violation": "Data processed outside your allowed regions",
    "config_feature_not_entitled": "Feature enabled that your plan does not include",
    "config_feature_missing": "Feature of your plan not enabled yet",
    "config_quota_mismatch": "Limit configured differently from your plan",
    "config_policy_outdated": "Deployment enforcing an outdated policy",
    "unbilled_usage": "Usage above what was invoiced",
    "overbilled_usage": "Invoiced above what was used",
    "usage_anomaly": "Unusual spike in usage",
}
STATUS_ORDER = {"open": 0, "waived": 1, "resolved": 2}
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class ForeignRowError(ValueError):
    """A row of another tenant reached a statement: refused, never rendered."""


def statement_key(tenant_id: str) -> str:
    """The tenant's folder name: its id when that is a plain file name, else a digest (an
    id such as ``../x`` must not pick where a statement is written)."""
    if _SAFE_NAME.fullmatch(tenant_id) and ".." not in tenant_id:
        return tenant_id
    return "tenant-" + hashlib.sha256(tenant_id.encode()).hexdigest()[:16]


def _own_rows(frame: pd.DataFrame, tenant_id: str, what: str) -> pd.DataFrame:
    foreign = int((frame["tenant_id"] != tenant_id).sum()) if len(frame) else 0
    if foreign:
        raise ForeignRowError(
            f"{what} for the statement of {tenant_id} hold {foreign} row(s) of other tenants"
        )
    return frame


def _number(value: Any) -> float | None:
    """A figure, or None when missing or not finite (JSON has no infinity, and a customer
    must never read 'inf')."""
    if value is None or pd.isna(value) or not math.isfinite(float(value)):
        return None
    return float(value)


def _text(value: Any) -> str | None:
    """A value of a warehouse row, or None when missing (pandas gives NaN, which would read
    'nan' in the page and NaN, not JSON, in the file)."""
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _addons(value: Any) -> list[str]:
    """effective_entitlements.addons: ``;``-separated names, or empty."""
    if not isinstance(value, str):
        return []
    return sorted({name.strip() for name in value.split(";") if name.strip()})


def _price(price: Price | None) -> dict[str, Any] | None:
    return {"amount": price.amount, "currency": price.currency, "per": price.per} if price else None


def _package(package: Package) -> dict[str, Any]:
    return {
        "name": package.name,
        "features": sorted(package.features),
        "quotas": dict(sorted(package.quotas.items())),
        "price": _price(package.price),
    }


def tier(catalog: Catalog, entitlement: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the tenant's tier includes (plan and add-ons, from the catalog) and what the next
    plan up adds: the features it has on top, and each limit it raises (None: no limit)."""
    plan = catalog.plans.get(str(entitlement.get("plan"))) if entitlement else None
    if plan is None or entitlement is None:
        return None
    addons = [catalog.addons[a] for a in _addons(entitlement.get("addons")) if a in catalog.addons]
    nxt = catalog.next_plan(plan.name)
    following = None
    if nxt is not None:
        raised = [
            {"metric": metric, "from": limit, "to": nxt.quotas.get(metric)}
            for metric, limit in sorted(plan.quotas.items())
            if metric not in nxt.quotas or nxt.quotas[metric] > limit
        ]
        difference = (
            nxt.price.amount - plan.price.amount
            if nxt.price and plan.price and nxt.price.currency == plan.price.currency
            else None
        )
        following = {
            **_package(nxt),
            "adds_features": sorted(set(nxt.features) - set(plan.features)),
            "raises": raised,
            "price_difference": difference,
        }
    return {
        "plan": _package(plan),
        "addons": [_package(a) for a in addons],
        "next": following,
    }


def _projections(
    forecasts: pd.DataFrame | None, period: str
) -> dict[str, tuple[float | None, str | None]]:
    """metric -> (projected month-end figure to the hundredth, the day the limit is reached or
    None) for the period's forecasts; none for a closed month (forecasts are of the as-of
    month only)."""
    if forecasts is None or forecasts.empty:
        return {}
    rows = forecasts[forecasts["period"].astype(str) == period]
    return {
        str(r.metric): (
            None if (total := _number(r.projected_total)) is None else round(total, 2),
            None
            if pd.isna(r.projected_exhaustion_day)
            else pd.Timestamp(r.projected_exhaustion_day).strftime("%Y-%m-%d"),
        )
        for r in rows.itertuples()
    }


def _to_date(
    daily: pd.DataFrame | None, period: str, aggregations: Mapping[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """metric -> [{"day", "to_date"}] of the period's days with usage: the month's figure as
    it stood at the end of each day, as the quota check counts it (flows add up, a MAX keeps
    its highest day, a LATEST level is the day's). None for a distinct count: the daily
    counts do not say who is new, so they do not add up to the month's."""
    if daily is None or daily.empty:
        return {}
    days = daily.assign(day=pd.to_datetime(daily["usage_date"]).dt.strftime("%Y-%m-%d"))
    days = days[days["day"].str.startswith(period)].sort_values("day")
    out: dict[str, list[dict[str, Any]]] = {}
    for metric, rows in days.groupby("metric"):
        quantity = pd.to_numeric(rows["quantity"], errors="coerce")
        # a figure that is missing or not finite is drawn as no use (JSON has no infinity)
        quantity = quantity.where(quantity.abs() < math.inf).fillna(0.0)
        figures = quantity.groupby(rows["day"]).sum()
        kind = aggregations.get(str(metric), "SUM")
        if kind == "UNIQUE_COUNT":
            continue
        if kind in ("COUNT", "SUM"):
            figures = figures.cumsum()
        elif kind == "MAX":
            figures = figures.cummax()
        out[str(metric)] = [{"day": d, "to_date": round(float(v), 2)} for d, v in figures.items()]
    return out


def tenant_statement(
    tenant_id: str,
    period: str,
    *,
    as_of: date,
    tenant: Mapping[str, Any] | None,
    entitlement: Mapping[str, Any] | None,
    usage: pd.DataFrame,
    findings: pd.DataFrame,
    catalog: Catalog | None = None,
    forecasts: pd.DataFrame | None = None,
    daily: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """One tenant's statement for ``period`` (YYYY-MM): contract, usage against each quota,
    where the month still running is projected to end and when it reaches the limit, the
    findings of that month, and with the ``catalog`` the tier (what it includes, what the next
    one adds). ``usage`` holds usage_monthly rows, ``findings`` compliance_findings rows,
    ``forecasts`` usage_forecasts rows, ``daily`` usage_daily rows (each metric's month to
    date by day, for the charts); all this tenant's only."""
    for row, what in ((tenant, "the tenant row"), (entitlement, "the entitlement")):
        if row is not None and row.get("tenant_id") != tenant_id:
            raise ForeignRowError(f"{what} for a statement of {tenant_id} is another tenant's")
    usage = _own_rows(usage, tenant_id, "usage rows")
    findings = _own_rows(findings, tenant_id, "findings")
    if forecasts is not None:
        forecasts = _own_rows(forecasts, tenant_id, "forecasts")
    if daily is not None:
        daily = _own_rows(daily, tenant_id, "daily usage rows")
    by_day = _to_date(daily, period, catalog.aggregations() if catalog else {})
    projected = _projections(forecasts, period)
    month = usage[usage["period"] == period]
    used = {str(r.metric): _number(r.quantity) for r in month.itertuples()}
    # A paused, cancelled or expired contract covers nothing: no limits to set usage against.
    entitled = bool(entitlement and entitlement.get("entitled"))
    quotas = parse_quotas(entitlement.get("quotas")) if entitlement and entitled else {}
    lines = []
    for metric in sorted(set(used) | set(quotas)):
        allowed = _number(quotas.get(metric))
        quantity = used.get(metric, 0.0)
        total, reached_on = projected.get(metric, (None, None))
        lines.append(
            {
                "metric": metric,
                "used": quantity,
                "allowed": allowed,
                "share": quantity / allowed if allowed and quantity is not None else None,
                "projected": total,
                "limit_reached_on": reached_on if allowed is not None else None,
                "daily": by_day.get(metric, []),
            }
        )
    in_month = findings[findings["period"].astype(str).str.startswith(period)]
    in_month = in_month.assign(_order=in_month["status"].map(STATUS_ORDER).fillna(9))
    shown = []
    for f in in_month.sort_values(["_order", "check", "subject", "period"]).itertuples():
        shown.append(
            {
                "finding_id": str(f.finding_id),
                "check": str(f.check),
                "what": CHECK_LABELS.get(str(f.check), str(f.check)),
                "subject": str(f.subject),
                "period": str(f.period),
                "observed": _number(f.observed),
                "allowed": _number(f.allowed),
                "status": str(f.status),
                "action": str(f.action) if f.status == "open" else None,
                "first_detected_on": str(f.first_detected_at)[:10],
                "details": str(f.details) if isinstance(f.details, str) else "",
            }
        )
    contract = None
    if entitlement:
        contract = {
            "contract_id": _text(entitlement.get("contract_id")),
            "status": _text(entitlement.get("contract_status")),
            "plan": _text(entitlement.get("plan")),
            "covers_the_month": entitled,
            "addons": _addons(entitlement.get("addons")),
            "features": list(parse_features(entitlement.get("features"))),
        }
    return {
        "tenant_id": tenant_id,
        "tenant_name": str(tenant.get("name") or tenant_id) if tenant else tenant_id,
        "period": period,
        "as_of": as_of.isoformat(),
        "final": as_of.strftime("%Y-%m") > period,
        "contract": contract,
        "usage": lines,
        "findings": shown,
        "tier": tier(catalog, entitlement) if catalog else None,
    }


def _fmt(value: float | None, unlimited: str = "—") -> str:
    if value is None:
        return unlimited
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _finite(value: Any) -> Any:
    """``value`` with every float that is not finite, at any depth, as None: JSON has no
    NaN or infinity (``json.dumps`` would write them, and parsers refuse them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def render_json(statement: Mapping[str, Any]) -> str:
    text = json.dumps(_finite(statement), indent=2, ensure_ascii=False, sort_keys=True)
    return text + "\n"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#1b1f24;padding:0 1rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #d0d7de}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.over{color:#b42318;font-weight:600}.note{color:#57606a}
.status-open{color:#b42318}.status-waived{color:#9a6700}.status-resolved{color:#1a7f37}
svg.chart{display:block;width:100%;max-width:40rem;height:auto;margin:.25rem 0 1rem}
@media (max-width:40rem){table{display:block;overflow-x:auto}}
"""


def _table_head(table_id: str, columns: tuple[str, ...]) -> str:
    heads = "".join(f'<th scope="col">{html.escape(c)}</th>' for c in columns)
    return f'<table id="{table_id}"><thead><tr>{heads}</tr></thead><tbody>'


def _price_text(price: Mapping[str, Any] | None) -> str:
    if not price:
        return "price on request"
    return f"{_fmt(price['amount'])} {price['currency']} per {price['per']}"


def _limits_text(quotas: Mapping[str, float]) -> str:
    return ", ".join(f"{metric} {_fmt(limit)}" for metric, limit in quotas.items()) or "no limits"


def _tier_html(tier_part: Mapping[str, Any] | None, e: Any) -> list[str]:
    """What your tier includes, what the next one adds."""
    if not tier_part:
        return []
    parts = ["<h2>Your tier</h2>", _table_head("tier", ("", "Features", "Limits", "Price"))]
    for label, package in [
        ("Plan", tier_part["plan"]),
        *[("Add-on", a) for a in tier_part["addons"]],
    ]:
        parts.append(
            f'<tr><th scope="row">{label} {e(package["name"])}</th>'
            f"<td>{e(', '.join(package['features']) or '—')}</td>"
            f"<td>{e(_limits_text(package['quotas']))}</td>"
            f"<td>{e(_price_text(package['price']))}</td></tr>"
        )
    parts.append("</tbody></table>")
    following = tier_part["next"]
    if not following:
        parts.append("<p>Your plan is our largest.</p>")
        return parts
    adds = []
    if following["adds_features"]:
        adds.append("the features " + ", ".join(following["adds_features"]))
    adds += [
        f"{r['metric']} {'with no limit' if r['to'] is None else 'up to ' + _fmt(r['to'])} "
        f"(now {_fmt(r['from'])})"
        for r in following["raises"]
    ]
    difference = following["price_difference"]
    price = (
        f" It costs {_fmt(difference)} {following['price']['currency']} more per "
        f"{following['price']['per']}."
        if difference is not None
        else ""
    )
    parts.append(
        f'<p id="next-tier">The next plan, <strong>{e(following["name"])}</strong>, adds '
        f"{e('; '.join(adds) or 'nothing you do not have')}.{e(price)}</p>"
    )
    return parts


def _usage_charts(statement: Mapping[str, Any]) -> list[str]:
    """Per metric its usage against the limit, and the month by day with the forecast to the
    month's end and the limit (inline SVG: the page stays self-contained)."""
    month_end = pd.Period(statement["period"], "M").end_time.normalize()
    contract = statement["contract"]
    without_limit = "no limit" if contract and contract["covers_the_month"] else "not covered"
    parts = ['<div id="usage-charts">']
    for line in statement["usage"]:
        key = re.sub(r"[^A-Za-z0-9_-]", "-", line["metric"])
        parts.append(
            charts.usage_bar(
                f"usage-bar-{key}",
                line["metric"],
                line["used"] or 0.0,
                line["allowed"],
                line.get("projected"),
                without_limit,
            )
        )
        if line.get("daily"):
            days = pd.Series(
                [d["to_date"] for d in line["daily"]],
                index=pd.to_datetime([d["day"] for d in line["daily"]]),
            )
            parts.append(
                charts.month_line(
                    f"usage-month-{key}",
                    line["metric"],
                    days,
                    month_end=month_end,
                    projected=line.get("projected"),
                    limit=line["allowed"],
                )
            )
    parts.append("</div>")
    return parts


def render_html(statement: Mapping[str, Any]) -> str:
    """A self-contained page (no script, no outside resource); every value is escaped."""

    def e(value: Any) -> str:
        return html.escape("" if value is None else str(value), quote=True)

    name, period = statement["tenant_name"], statement["period"]
    state = "final" if statement["final"] else f"month to date, as of {statement['as_of']}"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Usage statement: {e(name)}, {e(period)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Usage statement for {e(name)}</h1>",
        f'<p class="note">{e(period)} ({e(state)}) · account {e(statement["tenant_id"])}</p>',
    ]
    contract = statement["contract"]
    parts.append("<h2>Your contract</h2>")
    if contract:
        addons = ", ".join(contract["addons"]) or "none"
        features = ", ".join(contract["features"]) or "none"
        parts.append(
            "<table><tbody>"
            f'<tr><th scope="row">Contract</th><td>{e(contract["contract_id"] or "—")} '
            f"({e(contract['status'])})</td></tr>"
            f'<tr><th scope="row">Plan</th><td>{e(contract["plan"] or "—")}</td></tr>'
            f'<tr><th scope="row">Add-ons</th><td>{e(addons)}</td></tr>'
            f'<tr><th scope="row">Features</th><td>{e(features)}</td></tr>'
            "</tbody></table>"
        )
    else:
        parts.append("<p>No contract was in force for this month.</p>")
    parts.extend(_tier_html(statement.get("tier"), e))
    parts.append("<h2>Usage against your limits</h2>")
    covered = bool(contract and contract["covers_the_month"])
    if contract and not covered:
        parts.append(
            f"<p>Your contract is {e(contract['status'])} for this month: it covers no usage.</p>"
        )
    no_limit = "no limit" if covered else "not covered"
    if statement["usage"]:
        # The month still running: where it ends at the current pace, and when the limit goes.
        forecast = any(line.get("projected") is not None for line in statement["usage"])
        columns: tuple[str, ...] = ("Metric", "Used", "Limit", "Share of limit")
        if forecast:
            columns += ("Projected by month end", "Limit reached on")
        parts.append(_table_head("usage", columns))
        for line in statement["usage"]:
            share = line["share"]
            over = share is not None and share > 1
            share_text = no_limit if share is None else f"{share:.0%}"
            cells = (
                f'<td>{e(line["metric"])}</td><td class="n">{_fmt(line["used"])}</td>'
                f'<td class="n">{_fmt(line["allowed"], no_limit)}</td>'
                f'<td class="n{" over" if over else ""}">{e(share_text)}</td>'
            )
            if forecast:
                cells += (
                    f'<td class="n">{_fmt(line.get("projected"))}</td>'
                    f"<td>{e(line.get('limit_reached_on') or '—')}</td>"
                )
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</tbody></table>")
        parts.extend(_usage_charts(statement))
    else:
        parts.append("<p>No metered usage this month.</p>")
    parts.append("<h2>What we found</h2>")
    if statement["findings"]:
        columns = ("Finding", "About", "Observed", "Allowed", "Status", "Since")
        parts.append(_table_head("findings", columns))
        for f in statement["findings"]:
            status = f["status"] + (f" ({f['action']})" if f["action"] else "")
            parts.append(
                f'<tr><td>{e(f["what"])}<br><span class="note">{e(f["details"])}</span></td>'
                f'<td>{e(f["subject"])}</td><td class="n">{_fmt(f["observed"])}</td>'
                f'<td class="n">{_fmt(f["allowed"])}</td>'
                f'<td class="status-{e(f["status"])}">{e(status)}</td>'
                f"<td>{e(f['first_detected_on'])}</td></tr>"
            )
        parts.append("</tbody></table>")
    else:
        parts.append("<p>Nothing to report: your usage matches your contract.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def statement_periods(as_of: date) -> list[str]:
    """The month before as-of (final once it has ended) and the as-of month (to date)."""
    previous = (as_of.replace(day=1) - pd.Timedelta(days=1)).strftime("%Y-%m")
    return [previous, as_of.strftime("%Y-%m")]


def _by_tenant(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {str(key): rows for key, rows in frame.groupby("tenant_id", sort=False)}


def period_statements(
    period: str,
    *,
    as_of: date,
    tenants: pd.DataFrame,
    entitlements: pd.DataFrame,
    usage: pd.DataFrame,
    findings: pd.DataFrame,
    catalog: Catalog | None = None,
    forecasts: pd.DataFrame | None = None,
    daily: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """Every tenant's statement for ``period``: each one built from that tenant's rows only.
    Tenants are those of tenants.csv and any tenant entitled in the period."""
    month_entitlements = entitlements[entitlements["period"] == period]
    ids = sorted(set(tenants["tenant_id"].astype(str)) | set(month_entitlements["tenant_id"]))
    tenant_rows = {str(r["tenant_id"]): r for r in tenants.to_dict("records")}
    entitled = {str(r["tenant_id"]): r for r in month_entitlements.to_dict("records")}
    usage_of, findings_of = _by_tenant(usage), _by_tenant(findings)
    forecasts = forecasts if forecasts is not None else pd.DataFrame(columns=["tenant_id"])
    forecasts_of = _by_tenant(forecasts)
    daily = daily if daily is not None else pd.DataFrame(columns=["tenant_id"])
    daily_of = _by_tenant(daily)
    return [
        tenant_statement(
            tenant_id,
            period,
            as_of=as_of,
            tenant=tenant_rows.get(tenant_id),
            entitlement=entitled.get(tenant_id),
            usage=usage_of.get(tenant_id, usage.iloc[0:0]),
            findings=findings_of.get(tenant_id, findings.iloc[0:0]),
            catalog=catalog,
            forecasts=forecasts_of.get(tenant_id, forecasts.iloc[0:0]),
            daily=daily_of.get(tenant_id, daily.iloc[0:0]),
        )
        for tenant_id in ids
    ]
