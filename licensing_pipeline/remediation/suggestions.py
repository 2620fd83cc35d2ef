"""Upgrade paths and suggested next steps for customer-success agents (pure).

A suggestion is computed from observed usage: for a quota or a feature, the cheapest plan
change or add-on (count) whose grant covers what the tenant uses, priced from the catalog;
for billing, the invoice correction priced from the tenant's own billing records. Each one
carries the agent's text and the wording to use with the customer; the latter never names
policy internals (rule ids, the graduated action, the policy version).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

import pandas as pd

from licensing_pipeline.compliance.entitlements import (
    grant,
    parse_features,
    parse_quotas,
    split_addons,
)
from licensing_pipeline.contract.catalog import Catalog, Package, Price

QUOTA_CHECKS = ("quota_exceeded", "quota_near_limit")
FEATURE_CHECKS = ("feature_not_entitled",)
STEP_LABEL = "Suggested next step: "
CUSTOMER_LABEL = "Customer wording: "
NO_PRICE = "price not in the catalog"


# --- upgrade paths ----------------------------------------------------------------------------


@dataclass(frozen=True)
class UpgradePath:
    """A plan (the current one, or another) with add-ons added or removed, and its grant."""

    plan: str
    addons: tuple[str, ...]  # every add-on of the resulting contract
    overrides: dict[str, Any]  # the resulting contract's quota overrides
    features: tuple[str, ...]
    quotas: dict[str, float]  # a metric missing is unlimited
    plan_changed: bool = False
    added: tuple[str, ...] = ()  # add-on names, repeated for a count
    removed: tuple[str, ...] = ()  # add-ons the new plan makes redundant
    dropped_overrides: tuple[str, ...] = ()
    price_difference: float | None = None  # per month, when every price involved is known
    currency: str | None = None

    def covers(self, quotas: Mapping[str, float], features: Iterable[str] = ()) -> bool:
        return set(features) <= set(self.features) and all(
            metric not in self.quotas or self.quotas[metric] >= needed
            for metric, needed in quotas.items()
        )

    def addon_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name in self.added:
            counts[name] = counts.get(name, 0) + 1
        return counts

    def describe(self) -> str:
        """'plan growth', '2 × seats_pack_10', 'plan growth + 1 × sandbox_env'."""
        parts = [f"plan {self.plan}"] if self.plan_changed else []
        parts += [f"{count} × {name}" for name, count in self.addon_counts().items()]
        text = " + ".join(parts) or f"the current plan {self.plan}"
        return text + (f" (without {', '.join(self.removed)})" if self.removed else "")

    def price_text(self) -> str:
        if self.price_difference is None:
            return NO_PRICE
        more = "more" if self.price_difference >= 0 else "less"
        return f"{_money(abs(self.price_difference), self.currency)}/month {more}"


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return {}
    try:
        parsed = json.loads(str(value))
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _resulting(
    catalog: Catalog, plan: str, addons: list[str], overrides: Mapping[str, Any]
) -> tuple[tuple[str, ...], dict[str, float]]:
    """The grant of a contract, by the one rule entitlements are resolved with."""
    granted = grant(catalog, plan, ";".join(addons), json.dumps(dict(overrides)))
    return parse_features(granted.features), parse_quotas(granted.quotas)


def _no_less(quotas: Mapping[str, float], features: Iterable[str], current: UpgradePath) -> bool:
    """A plan change must not take away a feature or lower (or set) a limit."""
    after = Package("after", tuple(features), dict(quotas))
    return after.includes(Package("now", current.features, current.quotas))


def current_path(catalog: Catalog, entitlement: Mapping[str, Any]) -> UpgradePath:
    """The contract as it stands: no change."""
    plan = str(entitlement.get("plan") or "")
    addons = split_addons(entitlement.get("addons"))
    overrides = _json_object(entitlement.get("quota_overrides"))
    features, quotas = _resulting(catalog, plan, addons, overrides)
    return UpgradePath(plan, tuple(addons), overrides, features, quotas, price_difference=0.0)


def _price_of(packages: Iterable[Package | None]) -> tuple[float, str] | None:
    total, currency = 0.0, None
    for package in packages:
        price: Price | None = package.price if package else None
        if price is None or (currency is not None and price.currency != currency):
            return None
        total, currency = total + price.amount, price.currency
    return total, currency or ""


def _cheapest_addon(
    candidates: list[tuple[Package, int]],
) -> tuple[Package, int] | None:
    """The (add-on, count) of least known price; without prices, the fewest units."""

    def key(item: tuple[Package, int]) -> tuple[int, float, int, str]:
        addon, count = item
        price = addon.price.amount * count if addon.price else math.inf
        return (0 if addon.price else 1, price, count, addon.name)

    return min(candidates, key=key) if candidates else None


def upgrade_paths(
    catalog: Catalog,
    entitlement: Mapping[str, Any],
    *,
    quotas: Mapping[str, float] | None = None,
    features: Iterable[str] = (),
) -> list[UpgradePath]:
    """Every plan (kept or changed) with the add-ons it needs to cover ``quotas`` (metric →
    quantity) and ``features``, cheapest first.

    ``entitlement`` is an effective_entitlements row (plan, addons), with the contract's
    ``quota_overrides`` when it has any: an override on a metric in need is replaced by the
    upgrade, the others stay. A plan change may drop add-ons it makes redundant; plan changes
    that take away a feature or lower (or set) a limit are left out. Paths with a known
    price difference come first, by that difference; then the smallest change first.
    """
    needed_quotas = dict(quotas or {})
    needed_features = tuple(sorted(set(features)))
    current = current_path(catalog, entitlement)
    kept = {m: v for m, v in current.overrides.items() if m not in needed_quotas}
    paths: list[UpgradePath] = []
    for plan in catalog.plans:
        changed = plan != current.plan
        keeps = (
            {c for r in range(len(current.addons) + 1) for c in combinations(current.addons, r)}
            if changed
            else {current.addons}
        )
        for keep in sorted(keeps):
            path = _covering(catalog, plan, list(keep), kept, needed_quotas, needed_features)
            if path is None or (changed and not _no_less(path.quotas, path.features, current)):
                continue
            removed = list(current.addons)
            for name in keep:
                removed.remove(name)
            path = replace(
                path,
                plan_changed=changed,
                removed=tuple(removed),
                dropped_overrides=tuple(sorted(set(current.overrides) - set(kept))),
            )
            if changed or path.added or path.dropped_overrides:
                paths.append(_priced(catalog, path, current.plan))
    return sorted(paths, key=_rank)


def _covering(
    catalog: Catalog,
    plan: str,
    addons: list[str],
    overrides: dict[str, Any],
    quotas: Mapping[str, float],
    features: tuple[str, ...],
) -> UpgradePath | None:
    """``plan`` with ``addons``, plus the cheapest add-ons that cover the need, or None."""
    added: list[str] = []

    def result() -> UpgradePath:
        granted = _resulting(catalog, plan, addons + added, overrides)
        return UpgradePath(plan, tuple(addons + added), overrides, *granted, added=tuple(added))

    for feature in features:
        if feature in result().features:
            continue
        choice = _cheapest_addon([(a, 1) for a in catalog.addons.values() if feature in a.features])
        if choice is None:
            return None
        added.append(choice[0].name)
    for metric, needed in quotas.items():
        limit = result().quotas.get(metric)
        if limit is None or limit >= needed:
            continue
        choice = _cheapest_addon(
            [
                (a, math.ceil((needed - limit) / a.quotas[metric]))
                for a in catalog.addons.values()
                if a.quotas.get(metric, 0) > 0
            ]
        )
        if choice is None:
            return None
        added += [choice[0].name] * choice[1]
    path = result()
    return path if path.covers(quotas, features) else None


def _priced(catalog: Catalog, path: UpgradePath, current_plan: str) -> UpgradePath:
    """The monthly difference: the new plan and added add-ons, less the plan and add-ons
    given up; unknown when a price is missing or the currencies differ."""
    new = [catalog.addons.get(name) for name in path.added]
    old = [catalog.addons.get(name) for name in path.removed]
    if path.plan_changed:
        new.append(catalog.plans.get(path.plan))
        old.append(catalog.plans.get(current_plan))
    gained, lost = _price_of(new), _price_of(old)
    if gained is None or lost is None:
        return path
    if gained[1] and lost[1] and gained[1] != lost[1]:
        return path
    return replace(path, price_difference=gained[0] - lost[0], currency=gained[1] or lost[1])


def _rank(path: UpgradePath) -> tuple[int, float, int, int, str]:
    difference = path.price_difference
    return (
        0 if difference is not None else 1,
        difference if difference is not None else 0.0,
        1 if path.plan_changed else 0,
        len(path.added),
        path.plan,
    )


# --- suggested actions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    """The next step for an agent, and what to tell the customer."""

    kind: str
    internal: str
    customer: str
    plan: str | None = None
    addons: tuple[str, ...] = ()
    amount: float | None = None
    currency: str | None = None
    path: UpgradePath | None = field(default=None, compare=False)

    def ticket_text(self) -> str:
        return f"{STEP_LABEL}{self.internal}\n{CUSTOMER_LABEL}{self.customer}"


@dataclass(frozen=True)
class SuggestionContext:
    """What suggestions are computed from, built by ``suggestion_context``.

    ``entitlements``: (tenant, period) → effective_entitlements row with its contract's
    ``quota_overrides``; ``current``: tenant → its row for the as-of month; ``usage``:
    (tenant, metric, period) → quantity; ``unit_prices``: (tenant, metric, period) →
    (price per unit, currency) from the billing records; ``projections``: (tenant, metric,
    period) → the usage projected to the end of a month still running (usage_forecasts).
    """

    catalog: Catalog
    last_full_month: str
    entitlements: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    current: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    usage: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    unit_prices: Mapping[tuple[str, str, str], tuple[float, str]] = field(default_factory=dict)
    projections: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    near_limit_ratio: float = 0.8

    def unit_price(self, tenant: str, metric: str, period: str) -> tuple[float, str] | None:
        return unit_price(self.unit_prices, tenant, metric, period)


def unit_price(
    prices: Mapping[tuple[str, str, str], tuple[float, str]], tenant: str, metric: str, period: str
) -> tuple[float, str] | None:
    """The period's own price per unit, else the latest one billed for the metric."""
    exact = prices.get((tenant, metric, period))
    if exact is not None:
        return exact
    earlier = sorted(
        (p, price) for (t, m, p), price in prices.items() if t == tenant and m == metric
    )
    return earlier[-1][1] if earlier else None


def billed_unit_prices(
    billing_records: pd.DataFrame,
) -> dict[tuple[str, str, str], tuple[float, str]]:
    """(tenant, metric, period) → (amount / billed quantity, currency) where both are known."""
    prices: dict[tuple[str, str, str], tuple[float, str]] = {}
    billed = billing_records.dropna(subset=["billed_quantity", "amount"])
    for (tenant, metric, period), group in billed.groupby(["tenant_id", "metric", "period"]):
        quantity = float(pd.to_numeric(group["billed_quantity"]).sum())
        if quantity > 0:
            amount = float(pd.to_numeric(group["amount"]).sum())
            prices[(str(tenant), str(metric), str(period))] = (
                amount / quantity,
                str(group["currency"].iloc[0]),
            )
    return prices


def suggestion_context(
    catalog: Catalog,
    *,
    entitlements: pd.DataFrame,
    contracts: pd.DataFrame,
    usage_monthly: pd.DataFrame,
    billing_records: pd.DataFrame,
    near_limit_ratio: float = 0.8,
    forecasts: pd.DataFrame | None = None,
) -> SuggestionContext:
    """The lookups from the warehouse's tables. The as-of month is the latest one resolved in
    ``entitlements``; the month before it is the last full month."""
    overrides = {
        str(r["contract_id"]): r.get("quota_overrides")
        for r in contracts.astype(object).to_dict("records")
        if r.get("contract_id") is not None and not pd.isna(r.get("contract_id"))
    }
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for row in entitlements.astype(object).to_dict("records"):
        contract = row.get("contract_id")
        key = contract if isinstance(contract, str) else ""
        rows[(str(row["tenant_id"]), str(row["period"]))] = {
            **row,
            "quota_overrides": overrides.get(key),
        }
    current = {tenant: rows[(tenant, period)] for tenant, period in sorted(rows)}
    usage = {
        (str(t), str(m), str(p)): float(q)
        for t, m, p, q in usage_monthly[["tenant_id", "metric", "period", "quantity"]].itertuples(
            index=False
        )
        if q is not None and not pd.isna(q)
    }
    latest = entitlements["period"].dropna().astype(str).max() if len(entitlements) else None
    last_full = (pd.Period(latest, "M") - 1).strftime("%Y-%m") if latest else ""
    return SuggestionContext(
        catalog=catalog,
        last_full_month=last_full,
        entitlements=rows,
        current=current,
        usage=usage,
        unit_prices=billed_unit_prices(billing_records),
        projections=forecast_projections(forecasts),
        near_limit_ratio=near_limit_ratio,
    )


def forecast_projections(forecasts: pd.DataFrame | None) -> dict[tuple[str, str, str], float]:
    """(tenant, metric, period) → projected month-end usage, where a forecast gives one."""
    if forecasts is None or forecasts.empty:
        return {}
    rows = forecasts.dropna(subset=["projected_total"])
    return {
        (str(t), str(m), str(p)): float(q)
        for t, m, p, q in rows[["tenant_id", "metric", "period", "projected_total"]].itertuples(
            index=False
        )
    }


def _money(amount: float, currency: str | None) -> str:
    return f"{amount:,.2f} {currency or ''}".strip()


def _figure(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _number(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def quota_need(
    finding: Mapping[str, Any], context: SuggestionContext, projected: float | None = None
) -> float:
    """The usage an upgrade must cover: the finding's observed figure, the last full month's,
    and a projected one when a forecast is passed; near the limit, with the headroom that
    keeps it below the warning ratio."""
    tenant, metric = str(finding["tenant_id"]), str(finding["subject"])
    figures = [
        _number(finding.get("observed")),
        context.usage.get((tenant, metric, context.last_full_month)),
        projected
        if projected is not None
        else context.projections.get((tenant, metric, str(finding.get("period")))),
    ]
    usage = max(f for f in figures if f is not None) if any(f is not None for f in figures) else 0
    if str(finding["check"]) == "quota_near_limit" and context.near_limit_ratio > 0:
        return float(math.ceil(usage / context.near_limit_ratio))
    return float(usage)


def _situation(finding: Mapping[str, Any]) -> str:
    """What the customer is told about the finding: figures, never policy."""
    check, subject = str(finding["check"]), str(finding["subject"])
    observed, allowed = _number(finding.get("observed")), _number(finding.get("allowed"))
    limit = f" of {_figure(allowed)}" if allowed is not None else ""
    if check == "quota_exceeded":
        used = f" ({_figure(observed)})" if observed is not None else ""
        return f"Your {subject} usage{used} is above the limit{limit} your subscription includes."
    if check == "quota_near_limit":
        return f"Your {subject} usage is close to the limit{limit} your subscription includes."
    return f"Your team uses {subject}, which your subscription does not include yet."


def _offer_wording(path: UpgradePath) -> str:
    counts = path.addon_counts()
    addons = " and ".join(
        f"the {name} add-on" + (f" (×{count})" if count > 1 else "")
        for name, count in counts.items()
    )
    if path.plan_changed:
        replacing = " and ".join(path.removed)
        return (
            f"The {path.plan} plan"
            + (f" with {addons}" if addons else "")
            + (f" (in place of your {replacing} add-on)" if replacing else "")
        )
    return addons[0].upper() + addons[1:]


def _upgrade_suggestion(
    finding: Mapping[str, Any],
    context: SuggestionContext,
    *,
    quotas: Mapping[str, float],
    features: tuple[str, ...],
) -> Suggestion:
    tenant, subject = str(finding["tenant_id"]), str(finding["subject"])
    entitlement = context.current.get(tenant) or context.entitlements.get(
        (tenant, str(finding["period"])), {}
    )
    plan = str(entitlement.get("plan") or "")
    need = f"{subject} at {_figure(quotas[subject])}" if subject in quotas else subject
    situation = _situation(finding)
    now = current_path(context.catalog, entitlement)
    if plan and now.covers(quotas, features):
        return Suggestion(
            kind="no_change",
            internal=(
                f"The current contract (plan {plan}) already covers {need}: confirm the change "
                "with the customer; no offer needed."
            ),
            customer=f"Your current {plan} plan now covers your use of {subject}.",
            plan=plan,
            path=now,
        )
    paths = upgrade_paths(context.catalog, entitlement, quotas=quotas, features=features)
    if not paths:
        return Suggestion(
            kind="no_catalog_option",
            internal=(
                f"No plan or add-on in the catalog covers {need} on plan {plan or 'none'}: "
                "negotiate custom terms (a quota override) with the customer."
            ),
            customer=(
                f"{situation} It is beyond what our standard plans include; your account "
                "manager will get in touch to agree terms that fit."
            ),
        )
    best = paths[0]
    others = (
        f" Next option: {paths[1].describe()}, {paths[1].price_text()}." if len(paths) > 1 else ""
    )
    dropped = (
        f" It replaces the contract's override on {', '.join(best.dropped_overrides)}."
        if best.dropped_overrides
        else ""
    )
    verb = "Propose" if best.plan_changed else "Offer"
    difference = best.price_difference
    price = (
        f" for {_money(abs(difference), best.currency)} "
        f"{'more' if difference >= 0 else 'less'} per month"
        if difference is not None
        else ""
    )
    return Suggestion(
        kind="propose_plan" if best.plan_changed else "offer_addon",
        internal=(
            f"{verb} {best.describe()} to cover {need} (now plan {plan or 'none'}): "
            f"{best.price_text()}.{dropped}{others}"
        ),
        customer=(
            f"{situation} {_offer_wording(best)} covers it{price}; we would be happy to set "
            "it up for you."
        ),
        plan=best.plan if best.plan_changed else None,
        addons=best.added,
        amount=best.price_difference,
        currency=best.currency,
        path=best,
    )


def _invoice_suggestion(finding: Mapping[str, Any], context: SuggestionContext) -> Suggestion:
    tenant, metric, period = (str(finding[k]) for k in ("tenant_id", "subject", "period"))
    measured = _number(finding.get("observed")) or 0.0
    billed = _number(finding.get("allowed")) or 0.0
    unbilled = str(finding["check"]) == "unbilled_usage"
    quantity = measured - billed if unbilled else billed - measured
    price = context.unit_price(tenant, metric, period)
    amount = round(price[0] * quantity, 2) if price else None
    currency = price[1] if price else None
    priced = (
        f"{_figure(quantity)} × {_money(price[0], currency)} = {_money(amount or 0.0, currency)}"
        if price
        else f"{_figure(quantity)} {metric} (no billed unit price on record: price it from "
        "the order form)"
    )
    if unbilled:
        return Suggestion(
            kind="correct_invoice",
            internal=f"Correct the {period} invoice for the unbilled {metric}: {priced}.",
            customer=(
                f"Your {period} invoice did not include all of your {metric} usage. We will "
                "send a corrected invoice"
                + (f" for the difference of {_money(amount, currency)}." if amount else ".")
            ),
            amount=amount,
            currency=currency,
        )
    return Suggestion(
        kind="credit_note",
        internal=f"Issue a credit note on the {period} invoice for the overbilled {metric}: {priced}.",
        customer=(
            f"Your {period} invoice charged more {metric} than you used. We will issue a "
            "credit note" + (f" of {_money(amount, currency)}." if amount else ".")
        ),
        amount=amount,
        currency=currency,
    )


def suggested_action(
    finding: Mapping[str, Any], context: SuggestionContext, *, projected: float | None = None
) -> Suggestion:
    """The next step for one finding (a compliance_findings row).

    ``projected`` is a forecast of the metric's usage for quota findings, covered too when
    given (the forecast is not an input yet).
    """
    check = str(finding["check"])
    tenant, subject, period = (str(finding[k]) for k in ("tenant_id", "subject", "period"))
    if check in QUOTA_CHECKS:
        need = quota_need(finding, context, projected)
        return _upgrade_suggestion(finding, context, quotas={subject: need}, features=())
    if check in FEATURE_CHECKS:
        return _upgrade_suggestion(finding, context, quotas={}, features=(subject,))
    if check in ("unbilled_usage", "overbilled_usage"):
        return _invoice_suggestion(finding, context)
    if check == "inactive_contract_usage":
        row = context.entitlements.get((tenant, period), {})
        status = str(row.get("contract_status") or "none")
        plan = row.get("plan") if isinstance(row.get("plan"), str) else None
        contract = row.get("contract_id") if isinstance(row.get("contract_id"), str) else None
        on = f"contract {contract} ({status}, plan {plan})" if contract else "no contract"
        return Suggestion(
            kind="renewal_outreach",
            internal=(
                f"Renewal outreach: usage in {period} on {on}. Offer to "
                + (f"renew plan {plan}." if plan else "sign a contract.")
            ),
            customer=(
                f"We noticed activity on your account in {period} while your subscription is "
                "not active. We'd be glad to help you renew so your team keeps working "
                "without interruption."
            ),
            plan=plan,
        )
    if check == "config_policy_outdated":  # the subject names the policy: not for customers
        details = str(finding.get("details") or "").strip()
        return Suggestion(
            kind="fix_config",
            internal=f"Point the deployment at the current enforcement feed: {details}".strip(),
            customer=(
                "We will bring your deployment's settings up to date; nothing is needed from you."
            ),
        )
    if check.startswith("config_"):
        details = str(finding.get("details") or "").strip()
        return Suggestion(
            kind="fix_config",
            internal=f"Fix the deployment config ({check}, {subject}): {details}".strip(),
            customer=(
                f"We will align the configuration of your deployment for {subject} with your "
                "subscription; nothing is needed from you."
            ),
        )
    if check == "residency_violation":
        return Suggestion(
            kind="residency",
            internal=(
                f"Move the workload processed in {subject} to a region the residency terms "
                "allow, or agree a residency amendment with the customer."
            ),
            customer=(
                f"Some of your data was processed in {subject}, outside the regions your "
                "agreement allows. We are moving it back; if you would like to allow this "
                "region, we can amend your data-residency terms."
            ),
        )
    if check == "usage_anomaly":
        return Suggestion(
            kind="check_with_customer",
            internal=(
                f"Check with the customer: {subject} from {period} is far above their usual "
                "level (a batch job, a leaked key, a migration?)."
            ),
            customer=(
                f"We saw an unusual rise in your {subject} usage from {period}. Was this "
                "expected? If not, we can help you look into it."
            ),
        )
    return Suggestion(
        kind="review",
        internal=f"Review the {check} finding.",
        customer="We are reviewing your account.",
    )


def ticket_suggestions(
    findings: pd.DataFrame, context: SuggestionContext | None
) -> dict[str, Suggestion]:
    """finding_id → suggestion, for every open finding (none without a context)."""
    if context is None or findings.empty:
        return {}
    open_findings = findings[findings["status"] == "open"]
    return {
        str(row["finding_id"]): suggested_action(row, context)
        for row in open_findings.astype(object).to_dict("records")
    }


def split_details(details: Any) -> tuple[str, str | None, str | None]:
    """A ticket's details as (the finding's explanation, next step, customer wording)."""
    explanation, step, customer = [], None, None
    for line in str(details or "").splitlines():
        if line.startswith(STEP_LABEL):
            step = line[len(STEP_LABEL) :]
        elif line.startswith(CUSTOMER_LABEL):
            customer = line[len(CUSTOMER_LABEL) :]
        else:
            explanation.append(line)
    return "\n".join(explanation).strip(), step, customer


def step_of(details: Any) -> str | None:
    """The suggested next step written into a ticket's details, if any."""
    return split_details(details)[1]


def with_suggestion(details: str, suggestion: Suggestion | None) -> str:
    """A ticket's details: the finding's explanation, then the suggested step."""
    if suggestion is None:
        return details
    return f"{details}\n\n{suggestion.ticket_text()}" if details else suggestion.ticket_text()
