"""`licensing-pipeline changes propose|list|show|approve|reject|withdraw`: four-eyes changes."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from licensing_pipeline.settings import Settings

# payload field -> the propose option that sets it (version and sha256 come from --bundle)
PAYLOAD_OPTIONS = (
    "metric",
    "limit",
    "feature",
    "region",
    "plan",
    "addon",
    "status",
    "check",
    "subject",
)
SHOWN = ["request_id", "kind", "tenant_id", "payload", "effective_from", "effective_until"]


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date like 2026-11-27: {text!r}") from None


def _limit(text: str) -> float | int | None:
    """A number >= 0 (checked by ``propose``), or ``unlimited``."""
    if text.strip().lower() == "unlimited":
        return None
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'unlimited': {text!r}") from None
    return int(number) if number.is_integer() else number


def cmd_propose(args: argparse.Namespace, settings: Settings) -> int:
    """The payload is the options given (an option the kind does not take is refused by
    ``propose``, in one line like every refusal); ``--bundle`` is validated whole and gives
    version and sha256."""
    from licensing_pipeline.governance.access_cli import acting
    from licensing_pipeline.governance.changes import load_vocabulary, propose
    from licensing_pipeline.policy.bundle import load_policy

    payload = {name: getattr(args, name) for name in PAYLOAD_OPTIONS if hasattr(args, name)}
    bundles = [load_policy(args.bundle)] if hasattr(args, "bundle") else []
    for bundle in bundles:
        payload |= {"version": bundle.version, "sha256": bundle.content_hash}
    vocabulary = load_vocabulary(settings.data_dir, bundles)
    with acting(settings) as (con, actor):
        request_id = propose(
            con,
            actor,
            args.kind,
            args.tenant,
            payload,
            args.reason,
            args.effective_from,
            args.until,
            vocabulary=vocabulary,
            today=datetime.now(UTC).date(),
            max_backdate_days=settings.change_max_backdate_days,
        )
    scope = f" for {args.tenant}" if args.tenant else ""
    text = json.dumps(payload, sort_keys=True)
    until = f" until {args.until}" if args.until else ""
    print(
        f"proposed change #{request_id}: {args.kind}{scope} {text} from "
        f"{args.effective_from}{until} by {actor} (pending approval)"
    )
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.governance.changes import requests
    from licensing_pipeline.repository.resources import checked_engine

    with checked_engine(settings.database_url).connect() as con:
        frame = requests(con, args.status, args.tenant)
    for column in ("proposed_at", "decided_at"):
        frame[column] = frame[column].map(lambda t: t.isoformat(timespec="seconds") if t else None)
    for column in ("effective_from", "effective_until"):
        frame[column] = frame[column].map(lambda d: d.isoformat() if d else None)
    if args.format == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif args.format == "jsonl":
        for row in frame.to_dict("records"):
            print(json.dumps({**row, "payload": json.loads(row["payload"])}, sort_keys=True))
    elif frame.empty:
        print("No change requests match.")
    else:
        shown = frame[[*SHOWN, "status", "proposed_by", "decided_by"]].fillna("")
        print(shown.to_string(index=False, max_colwidth=60))
        print(f"\n{len(frame)} change request(s).")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.cli import CliError
    from licensing_pipeline.governance.changes import ChangeRefused, request
    from licensing_pipeline.repository.resources import checked_engine

    with checked_engine(settings.database_url).connect() as con:
        try:
            shown = request(con, args.request_id)
        except ChangeRefused as exc:
            raise CliError(str(exc)) from None
    history = shown.pop("history")
    for name, value in shown.items():
        if isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        elif isinstance(value, datetime):
            value = value.isoformat(timespec="seconds")
        print(f"{name}: {'' if value is None else value}")
    print("history:")
    for entry in history:
        print(
            f"  #{entry['seq']} {entry['at'].isoformat(timespec='seconds')} "
            f"{entry['action']} by {entry['actor']} {entry['details']}"
        )
    return 0


def _decide(args: argparse.Namespace, settings: Settings, step: str) -> str:
    from licensing_pipeline.governance import changes
    from licensing_pipeline.governance.access_cli import acting

    with acting(settings) as (con, actor):
        if step == "withdraw":
            changes.withdraw(con, actor, args.request_id)
        else:
            getattr(changes, step)(con, actor, args.request_id, args.note)
    return actor


def cmd_approve(args: argparse.Namespace, settings: Settings) -> int:
    actor = _decide(args, settings, "approve")
    print(f"approved change #{args.request_id} by {actor}")
    return 0


def cmd_reject(args: argparse.Namespace, settings: Settings) -> int:
    actor = _decide(args, settings, "reject")
    print(f"rejected change #{args.request_id} by {actor}")
    return 0


def cmd_withdraw(args: argparse.Namespace, settings: Settings) -> int:
    actor = _decide(args, settings, "withdraw")
    print(f"withdrew change #{args.request_id} by {actor}")
    return 0


def add_change_commands(sub: Any) -> None:
    from licensing_pipeline.governance.change_kinds import KINDS
    from licensing_pipeline.governance.tables import CHANGE_STATUSES

    changes = sub.add_parser("changes", help="propose, approve, reject and withdraw changes")
    commands = changes.add_subparsers(dest="changes_command", required=True)
    propose = commands.add_parser("propose", help="propose a change (editor); pending approval")
    propose.add_argument("kind", choices=list(KINDS))
    propose.add_argument(
        "--tenant", help="the tenant_id it changes (every kind but policy_version)"
    )
    propose.add_argument("--reason", required=True, help="why, for the approver and the trail")
    propose.add_argument("--effective-from", type=_day, required=True, help="first day in force")
    propose.add_argument("--until", type=_day, help="last day in force (default: open-ended)")
    payload = propose.add_argument_group("what changes (the options the kind takes)")
    suppress = argparse.SUPPRESS
    payload.add_argument("--metric", default=suppress, help="quota_override: the metric")
    payload.add_argument(
        "--limit", type=_limit, default=suppress, help="quota_override: a number or 'unlimited'"
    )
    for option, kinds in (
        ("feature", "feature_grant, feature_revoke"),
        ("region", "region_allow"),
        ("plan", "plan_change"),
        ("addon", "addon_add, addon_remove"),
        ("status", "contract_status"),
        ("check", "exception"),
    ):
        payload.add_argument(f"--{option}", default=suppress, help=f"{kinds}: the {option}")
    payload.add_argument(
        "--subject", default=suppress, help="exception: the subject, or '*' for every subject"
    )
    payload.add_argument(
        "--bundle", type=Path, default=suppress, help="policy_version: the bundle file or folder"
    )
    propose.set_defaults(func=cmd_propose)

    listing = commands.add_parser("list", help="the change requests, oldest first")
    listing.add_argument("--status", choices=CHANGE_STATUSES, help="only this status")
    listing.add_argument("--tenant", help="only this tenant_id")
    listing.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")
    listing.set_defaults(func=cmd_list)
    show = commands.add_parser("show", help="one change request and its audit entries")
    show.add_argument("request_id", type=int)
    show.set_defaults(func=cmd_show)
    approve = commands.add_parser("approve", help="approve (an approver other than the proposer)")
    approve.add_argument("request_id", type=int)
    approve.add_argument("--note", help="a note for the trail")
    approve.set_defaults(func=cmd_approve)
    reject = commands.add_parser("reject", help="reject (an approver other than the proposer)")
    reject.add_argument("request_id", type=int)
    reject.add_argument("--note", required=True, help="why it is rejected")
    reject.set_defaults(func=cmd_reject)
    withdraw = commands.add_parser("withdraw", help="withdraw your own pending proposal")
    withdraw.add_argument("request_id", type=int)
    withdraw.set_defaults(func=cmd_withdraw)
