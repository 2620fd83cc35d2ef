"""`licensing-pipeline audit verify|log`: check the audit trail's chain, print who did what."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from licensing_pipeline.settings import Settings

EXIT_MISMATCH = 1


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.governance import audit_trail
    from licensing_pipeline.repository.resources import checked_engine

    with checked_engine(settings.database_url).connect() as con:
        try:
            result = audit_trail.verify(con)
        except audit_trail.AuditMismatch as exc:
            print(f"licensing-pipeline: audit verify: {exc}", flush=True)
            return EXIT_MISMATCH
    print(f"audit trail intact: {result.entries} entries, head {result.head}")
    return 0


def _plain(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        **entry,
        "at": entry["at"].isoformat(timespec="seconds"),
        "details": json.loads(entry["details"]),
    }


def cmd_log(args: argparse.Namespace, settings: Settings) -> int:
    import pandas as pd

    from licensing_pipeline.governance import audit_trail
    from licensing_pipeline.repository.resources import checked_engine

    since = datetime.fromisoformat(args.since) if args.since else None
    with checked_engine(settings.database_url).connect() as con:
        rows = [_plain(e) for e in audit_trail.entries(con, tenant_id=args.tenant, since=since)]
    if args.format == "jsonl":
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return 0
    if not rows:
        print("No audit entries.")
        return 0
    columns = ["seq", "at", "actor", "action", "tenant_id", "subject", "details"]
    table = pd.DataFrame(rows, columns=columns).fillna("")
    table["details"] = [json.dumps(d, sort_keys=True) if d else "" for d in table["details"]]
    print(table.to_string(index=False))
    return 0


def add_audit_commands(sub: Any) -> None:
    from licensing_pipeline.cli import _iso_date

    audit = sub.add_parser("audit", help="verify and print the audit trail (who did what)")
    commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = commands.add_parser(
        "verify", help="recompute the hash chain; exit 1 naming the first bad entry"
    )
    verify.set_defaults(func=cmd_verify)
    log = commands.add_parser("log", help="print the audit trail, oldest first")
    log.add_argument("--tenant", help="only this tenant_id's entries")
    log.add_argument("--since", type=_iso_date, help="only entries from this day (UTC) on")
    log.add_argument("--format", choices=("table", "jsonl"), default="table")
    log.set_defaults(func=cmd_log)
