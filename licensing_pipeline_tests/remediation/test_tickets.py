from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from licensing_pipeline.contract.errors import ContractError
from licensing_pipeline.remediation.store import TICKET_COLUMNS
from licensing_pipeline.remediation.tickets import (
    Routing,
    RoutingRule,
    Sla,
    SyncPlan,
    TicketActionError,
    acknowledge,
    apply_plan,
    close,
    load_routing_rules,
    plan_ticket_sync,
)
from licensing_pipeline_tests.remediation.builders import (
    finding,
    findings,
    quota_warning,
    tenant,
    tenants,
)

NOW = datetime(2026, 11, 20, 3, 0, 0)
ROUTING = Routing(default_channel="#compliance", escalation_channel="#managers")


def no_tickets() -> pd.DataFrame:
    return pd.DataFrame(columns=TICKET_COLUMNS)


def as_tickets(rows: list[dict]) -> pd.DataFrame:
    """The plan's result as the repository would hold it (ticket ids assigned)."""
    out = []
    for number, row in enumerate(rows, start=1):
        full = {c: None for c in TICKET_COLUMNS}
        full.update(row)
        if full["ticket_id"] is None:
            full["ticket_id"] = number
        out.append(full)
    return pd.DataFrame(out, columns=TICKET_COLUMNS)


def sync(tickets: pd.DataFrame, frame: pd.DataFrame, now: datetime = NOW, **kwargs):
    plan = plan_ticket_sync(
        tickets, frame, tenants(tenant()), routing=ROUTING, sla=Sla(), now=now, **kwargs
    )
    return plan, as_tickets(apply_plan(tickets, plan))


def test_one_ticket_per_open_critical_or_warning_finding():
    frame = findings(
        finding(),
        quota_warning(),
        finding("t-1", "quota_near_limit", "seats", severity="info", action="notify"),
        finding("t-1", "feature_not_entitled", "sso", status="waived"),
        finding("t-1", "unbilled_usage", "api_calls", "2026-10", status="resolved"),
    )
    plan, tickets = sync(no_tickets(), frame)
    assert plan.count("opened") == 2
    assert set(tickets["check"]) == {"residency_violation", "quota_exceeded"}
    critical = tickets[tickets["severity"] == "critical"].iloc[0]
    assert critical["status"] == "open"
    assert critical["owner"] == "ana@example.com"
    assert critical["channel"] == "#acme-compliance"
    assert critical["escalation_channel"] == "#managers"
    assert critical["due_date"] == date(2026, 11, 23)  # 3 days for critical
    warning = tickets[tickets["severity"] == "warning"].iloc[0]
    assert warning["due_date"] == date(2026, 12, 4)  # 14 days for warning
    assert plan.changes[0].to_status == "open" and plan.changes[0].event == "opened"


def test_a_second_sync_of_the_same_findings_changes_nothing():
    frame = findings(finding(), quota_warning())
    _, tickets = sync(no_tickets(), frame)
    plan, _ = sync(tickets, frame, now=NOW + timedelta(days=1))
    assert plan.changes == []


def test_new_figures_refresh_the_ticket_without_reopening_it():
    _, tickets = sync(no_tickets(), findings(quota_warning()))
    changed = quota_warning()
    changed["observed"] = 150_000.0
    plan, after = sync(tickets, findings(changed))
    assert [c.event for c in plan.changes] == ["refreshed"]
    assert after.iloc[0]["observed"] == 150_000.0
    assert after.iloc[0]["status"] == "open"


def test_a_resolved_finding_closes_its_ticket_with_the_reason():
    _, tickets = sync(no_tickets(), findings(finding()))
    resolved = finding(status="resolved")
    plan, after = sync(tickets, findings(resolved), now=NOW + timedelta(days=1))
    assert [c.event for c in plan.changes] == ["resolved"]
    assert after.iloc[0]["status"] == "resolved"
    assert "no longer detected" in after.iloc[0]["status_reason"]
    assert plan.changes[0].from_status == "open"


def test_a_waived_finding_closes_its_ticket_as_waived():
    _, tickets = sync(no_tickets(), findings(finding()))
    _, after = sync(tickets, findings(finding(status="waived")))
    assert after.iloc[0]["status"] == "resolved"
    assert "waived" in after.iloc[0]["status_reason"]


def test_a_recurring_finding_reopens_its_ticket_instead_of_a_new_one():
    _, tickets = sync(no_tickets(), findings(finding()))
    _, tickets = sync(tickets, findings(finding(status="resolved")))
    later = NOW + timedelta(days=10)
    plan, after = sync(tickets, findings(finding()), now=later)
    assert [c.event for c in plan.changes] == ["reopened"]
    assert len(after) == 1
    row = after.iloc[0]
    assert row["status"] == "open" and row["cycle"] == 2
    assert row["due_date"] == (later + timedelta(days=3)).date()
    assert row["closed_at"] is None


def test_wont_fix_is_a_decision_the_pipeline_respects():
    _, tickets = sync(no_tickets(), findings(finding()))
    change = close(
        tickets.iloc[0].to_dict(), actor="ana", now=NOW, reason="accepted", wont_fix=True
    )
    tickets = as_tickets(apply_plan(tickets, SyncPlan(changes=[change])))
    plan, after = sync(tickets, findings(finding()))
    assert plan.changes == []
    assert after.iloc[0]["status"] == "wont_fix"


def test_a_severity_rise_moves_the_due_date_and_is_recorded():
    _, tickets = sync(no_tickets(), findings(quota_warning()))
    critical = quota_warning()
    critical.update(severity="critical", action="throttle")
    plan, after = sync(tickets, findings(critical))
    events = [c.event for c in plan.changes]
    assert "severity_changed" in events
    assert after.iloc[0]["severity"] == "critical"
    assert after.iloc[0]["due_date"] == date(2026, 11, 23)


def test_an_overdue_ticket_escalates_once_per_opening():
    _, tickets = sync(no_tickets(), findings(finding()))
    late = NOW + timedelta(days=5)  # due 2026-11-23
    plan, tickets = sync(tickets, findings(finding()), now=late)
    assert [c.event for c in plan.changes] == ["escalated"]
    assert "#managers" in plan.changes[0].note
    plan, tickets = sync(tickets, findings(finding()), now=late + timedelta(days=1))
    assert plan.changes == []
    # resolved, then back and overdue again: a new opening escalates again
    _, tickets = sync(tickets, findings(finding(status="resolved")), now=late)
    _, tickets = sync(tickets, findings(finding()), now=late)
    plan, _ = sync(tickets, findings(finding()), now=late + timedelta(days=4))
    assert [c.event for c in plan.changes] == ["escalated"]


def test_sla_days_are_configurable():
    plan = plan_ticket_sync(
        no_tickets(),
        findings(finding()),
        None,
        routing=ROUTING,
        sla=Sla(critical_days=1),
        now=NOW,
    )
    assert plan.changes[0].values["due_date"] == date(2026, 11, 21)


def test_routing_rules_beat_the_tenant_owner_and_a_catch_all_only_fills_gaps():
    routing = Routing(
        rules=(
            RoutingRule(check="unbilled_usage", owner="finance@example.com"),
            RoutingRule(segment="smb", slack_channel="#smb-compliance"),
            RoutingRule(owner="fallback@example.com", escalation_channel="#vp"),
        ),
        default_channel="#compliance",
        escalation_channel="#managers",
    )
    assert routing.route("unbilled_usage", "enterprise", "ana@x", "#acme").owner == (
        "finance@example.com"
    )
    route = routing.route("quota_exceeded", "smb", "ana@x", "#acme")
    assert (route.owner, route.channel, route.escalation_channel) == (
        "ana@x",
        "#smb-compliance",
        "#vp",
    )
    nobody = routing.route("quota_exceeded", "enterprise", "", "")
    assert (nobody.owner, nobody.channel) == ("fallback@example.com", "#compliance")
    assert Routing().route("quota_exceeded", "x").owner == "unassigned"


def test_an_unknown_tenant_goes_to_the_default_channel():
    plan = plan_ticket_sync(
        no_tickets(), findings(finding("t-ghost")), tenants(), routing=ROUTING, sla=Sla(), now=NOW
    )
    values = plan.changes[0].values
    assert (values["owner"], values["channel"]) == ("unassigned", "#compliance")


def test_routing_table_is_read_from_csv_with_clear_errors(tmp_path: Path):
    path = tmp_path / "routing.csv"
    path.write_text(
        "check,segment,owner,slack_channel,escalation_channel\n"
        "unbilled_usage,*,finance@example.com,#finance,#cfo\n"
        ",smb,,#smb,\n"
    )
    rules = load_routing_rules(path)
    assert rules[0] == RoutingRule("unbilled_usage", "*", "finance@example.com", "#finance", "#cfo")
    assert rules[1].check == "*" and rules[1].slack_channel == "#smb"
    path.write_text("check,segment,owner\nquota_exceeded,smb,\n")
    with pytest.raises(ContractError) as error:
        load_routing_rules(path)
    assert "routing.csv" in str(error.value) and "2" in str(error.value)


def test_people_acknowledge_and_close_tickets_within_the_lifecycle():
    _, tickets = sync(no_tickets(), findings(finding()))
    ticket = tickets.iloc[0].to_dict()
    ack = acknowledge(ticket, actor="ana", now=NOW, note="on it")
    assert (ack.from_status, ack.to_status, ack.actor) == ("open", "acknowledged", "ana")
    ticket.update(ack.values)
    with pytest.raises(TicketActionError):
        acknowledge(ticket, actor="ana", now=NOW)
    with pytest.raises(TicketActionError):
        close(ticket, actor="ana", now=NOW, reason="  ")
    done = close(ticket, actor="ana", now=NOW, reason="contract amended")
    assert done.values["status"] == "resolved"
    ticket.update(done.values)
    with pytest.raises(TicketActionError):
        close(ticket, actor="ana", now=NOW, reason="again")
