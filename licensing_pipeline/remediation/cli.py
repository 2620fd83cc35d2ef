"""`licensing-pipeline tickets list|show|ack|resolve` and `licensing-pipeline alerts test|flush`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

import pandas as pd

from licensing_pipeline.settings import Settings

LIST_COLUMNS = [
    "ticket_id",
    "finding_id",
    "tenant_id",
    "check",
    "subject",
    "period",
    "severity",
    "status",
    "owner",
    "due_date",
    "external_id",
]


def _fail(message: str) -> Exception:
    from licensing_pipeline.cli import CliError

    return CliError(message)


def _actor(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def cmd_tickets_list(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.cli import matching
    from licensing_pipeline.remediation.store import load_tickets
    from licensing_pipeline.repository.resources import checked_engine

    statuses: dict[str, list[str] | None] = {"live": ["open", "acknowledged"], "all": None}
    tickets = matching(
        load_tickets(checked_engine(settings.database_url)),
        status=statuses.get(args.status, args.status),
        severity=args.severity,
        tenant_id=args.tenant,
        owner=args.owner,
    )
    if args.format == "jsonl":
        for record in tickets.astype(object).to_dict("records"):
            print(json.dumps({k: _plain(v) for k, v in record.items()}, ensure_ascii=False))
    elif args.format == "csv":
        tickets.to_csv(sys.stdout, index=False)
    elif tickets.empty:
        print("No tickets match.")
    else:
        shown = tickets[LIST_COLUMNS].astype(object).where(tickets[LIST_COLUMNS].notna(), "")
        print(shown.to_string(index=False, max_colwidth=40))
        print(f"\n{len(tickets)} ticket(s).")
    return 0


def cmd_tickets_show(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.remediation.store import alerts_of, find_ticket, history_of
    from licensing_pipeline.remediation.suggestions import split_details
    from licensing_pipeline.repository.resources import checked_engine

    engine = checked_engine(settings.database_url)
    ticket = find_ticket(engine, args.ticket)
    if ticket is None:
        raise _fail(f"no ticket {args.ticket!r} (give a ticket number or a finding_id)")
    history = history_of(engine, int(ticket["ticket_id"]))
    alerts = alerts_of(engine, int(ticket["ticket_id"]))
    explanation, step, customer = split_details(ticket["details"])
    width = max(len(k) for k in ticket)
    print(f"Ticket {ticket['ticket_id']}")
    for key, value in {**ticket, "details": explanation}.items():
        shown = _plain(value)
        print(f"  {key:<{width}}  {'' if shown is None else shown}")
    if step:
        print(f"\nSuggested next step:\n  {step}")
    if customer:
        print(f"\nCustomer wording:\n  {customer}")
    print("\nHistory:")
    for line in history:
        change = f"{line['from_status'] or '–'} → {line['to_status']}" if line["to_status"] else ""
        print(
            f"  {line['at']:%Y-%m-%d %H:%M:%S}  {line['event']:<16} {change:<26} "
            f"{line['actor']}: {line['note']}"
        )
    if alerts:
        print("\nAlerts:")
        for alert in alerts:
            where = alert["posted_channel"] or alert["channel"]
            error = f" ({alert['last_error']})" if alert["last_error"] else ""
            print(f"  {alert['kind']:<11} {alert['status']:<9} {where}{error}")
    return 0


def _change_ticket(args: argparse.Namespace, settings: Settings, *, resolve: bool) -> int:
    from licensing_pipeline.remediation.alerts import resolution_alert
    from licensing_pipeline.remediation.outbox import post_now, utcnow
    from licensing_pipeline.remediation.resources import slack_alerts
    from licensing_pipeline.remediation.service import RemediationConfig
    from licensing_pipeline.remediation.store import apply_changes, find_ticket
    from licensing_pipeline.remediation.tickets import TicketActionError, acknowledge, close
    from licensing_pipeline.repository.resources import checked_engine

    actor = _actor(args)
    now = utcnow()
    engine = checked_engine(settings.database_url)
    ticket = find_ticket(engine, args.ticket)
    if ticket is None:
        raise _fail(f"no ticket {args.ticket!r} (give a ticket number or a finding_id)")
    try:
        if resolve:
            change = close(ticket, actor=actor, now=now, reason=args.reason, wont_fix=args.wont_fix)
        else:
            change = acknowledge(ticket, actor=actor, now=now, note=args.note or "")
    except TicketActionError as exc:
        raise _fail(str(exc)) from None
    with engine.begin() as con:
        apply_changes(con, [change], now=now)
    print(f"Ticket {ticket['ticket_id']} is now {change.to_status}.")
    if resolve:
        closed = find_ticket(engine, str(ticket["ticket_id"]))
        assert closed is not None
        dagster_url = RemediationConfig.from_env().dagster_url
        alert = resolution_alert(closed, dagster_url=dagster_url)
        report = post_now(engine, slack_alerts(), [alert])
        if report.sent or report.already_posted:
            print(f"Posted the resolution to {closed['channel']}.")
        elif report.not_sent:
            print("Resolution not posted to Slack: no token (SLACK_BOT_TOKEN).")
        else:
            reason = (
                report.auth_error or "; ".join(report.errors) or report.stopped or "already posted"
            )
            print(f"Resolution not posted yet ({reason}); it will be retried.")
    return 0


def cmd_tickets_ack(args: argparse.Namespace, settings: Settings) -> int:
    return _change_ticket(args, settings, resolve=False)


def cmd_tickets_resolve(args: argparse.Namespace, settings: Settings) -> int:
    return _change_ticket(args, settings, resolve=True)


def cmd_alerts_test(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.remediation.messages import test_message
    from licensing_pipeline.remediation.resources import slack_alerts

    slack = slack_alerts()
    channel = args.channel or slack.default_channel
    if not slack.configured:
        raise _fail(
            "not sent: no token. Set SLACK_BOT_TOKEN (and SLACK_API_URL for a test server)."
        )
    result = slack.post(channel, test_message(channel))
    if result.ok:
        print(f"Posted a test message to {result.channel} (ts {result.ts}).")
        if result.note:
            print(f"Note: {result.note}")
        return 0
    print(
        f"Slack did not accept the test message for {result.channel}: {result.error}",
        file=sys.stderr,
    )
    return 1


def _dry_run(engine: Any, sink: Any) -> str:
    from licensing_pipeline.remediation.outbox import held_until, queued, utcnow
    from licensing_pipeline.remediation.service import STALE_EXPORT
    from licensing_pipeline.remediation.store import tickets_to_export, tickets_to_update

    counts = queued(engine)
    parts = [f"{counts.get(s, 0)} {s}" for s in ("pending", "failed") if counts.get(s)]
    if counts.get("unconfirmed"):
        parts.append(f"{counts['unconfirmed']} unanswered (looked for in Slack first)")
    if counts.get("sending"):
        parts.append(f"{counts['sending']} left mid-post by a stopped pass (looked for first)")
    line = f"Would deliver {sum(counts.values())} alert(s)" + (
        f": {', '.join(parts)}" if parts else ""
    )
    hold = held_until(engine)
    if hold is not None and hold > utcnow():
        line += f"; Slack asked to wait until {hold:%Y-%m-%d %H:%M:%S} UTC"
    if sink.enabled:
        exports = tickets_to_export(engine, stale_before=utcnow() - STALE_EXPORT)
        line += f"; tickets: {len(exports)} to export, {len(tickets_to_update(engine))} to update"
    return line + "."


def cmd_alerts_flush(args: argparse.Namespace, settings: Settings) -> int:
    """One delivery pass without the daemon: the same claims as the sensors and the
    remediation job, so running it while they run posts nothing twice."""
    from licensing_pipeline.remediation.outbox import flush
    from licensing_pipeline.remediation.resources import slack_alerts, ticket_sink
    from licensing_pipeline.remediation.service import export_tickets
    from licensing_pipeline.repository.resources import checked_engine

    slack = slack_alerts()
    sink = ticket_sink()
    engine = checked_engine(settings.database_url)
    if args.dry_run:
        print(_dry_run(engine, sink))
        return 0
    if not slack.configured:
        raise _fail(
            "not sent: no token. Set SLACK_BOT_TOKEN (and SLACK_API_URL for a test server)."
        )
    report = flush(engine, slack)
    export = export_tickets(engine, sink) if sink.enabled else None
    line = f"Alerts: {report.summary()}"
    if export is not None:
        line += (
            f"; tickets: {export.exported} exported, {export.updated} updated, "
            f"{export.failed} failed"
        )
    print(line + ".")
    problems = [*report.errors, *report.warnings, *(export.errors if export else [])]
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    left = report.failed or report.unanswered or report.waiting or report.auth_error
    return 1 if left or (export is not None and export.failed) else 0


def add_remediation_commands(subparsers: Any) -> None:
    """Add ``tickets`` and ``alerts`` to the ``licensing-pipeline`` parser."""
    tickets = subparsers.add_parser("tickets", help="remediation tickets: list, show, ack, resolve")
    verbs = tickets.add_subparsers(dest="tickets_command", required=True)

    listing = verbs.add_parser("list", help="list tickets (open and acknowledged by default)")
    listing.add_argument(
        "--status",
        choices=("live", "open", "acknowledged", "resolved", "wont_fix", "all"),
        default="live",
    )
    listing.add_argument("--severity", choices=("info", "warning", "critical"), nargs="+")
    listing.add_argument("--tenant", help="only this tenant_id")
    listing.add_argument("--owner", help="only this owner")
    listing.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")
    listing.set_defaults(func=cmd_tickets_list)

    show = verbs.add_parser("show", help="one ticket, its history and its alerts")
    show.add_argument("ticket", help="ticket number or finding_id")
    show.set_defaults(func=cmd_tickets_show)

    ack = verbs.add_parser("ack", help="acknowledge an open ticket")
    ack.add_argument("ticket", help="ticket number or finding_id")
    ack.add_argument("--note", help="what you are doing about it")
    ack.add_argument("--by", help="who acknowledges (default: your user name)")
    ack.set_defaults(func=cmd_tickets_ack)

    resolve = verbs.add_parser("resolve", help="resolve a ticket (or close it as won't fix)")
    resolve.add_argument("ticket", help="ticket number or finding_id")
    resolve.add_argument("--reason", required=True, help="why it is resolved")
    resolve.add_argument("--wont-fix", action="store_true", help="close as wont_fix instead")
    resolve.add_argument("--by", help="who resolves (default: your user name)")
    resolve.set_defaults(func=cmd_tickets_resolve)

    alerts = subparsers.add_parser("alerts", help="Slack alerts")
    alert_verbs = alerts.add_subparsers(dest="alerts_command", required=True)
    test = alert_verbs.add_parser("test", help="send one test message to the configured channel")
    test.add_argument("--channel", help="channel to post to (default: the default channel)")
    test.set_defaults(func=cmd_alerts_test)
    flush = alert_verbs.add_parser(
        "flush",
        help="deliver queued alerts (and ticket exports) now, without the daemon; "
        "exit 1 if any is left",
    )
    flush.add_argument("--dry-run", action="store_true", help="only count what would be delivered")
    flush.set_defaults(func=cmd_alerts_flush)
