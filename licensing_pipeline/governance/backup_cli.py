"""`licensing-pipeline backup OUT` and `licensing-pipeline restore IN`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from licensing_pipeline.settings import Settings


def _path(text: str) -> Path:
    return Path(text).expanduser().resolve()


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.cli import CliError
    from licensing_pipeline.governance.backup import BackupError, backup
    from licensing_pipeline.run_lock import RunLocked

    out = _path(args.out)
    try:
        manifest = backup(settings, out, unencrypted=args.unencrypted)
    except (BackupError, RunLocked) as exc:
        raise CliError(str(exc)) from None
    rows = sum(m.rows or 0 for m in manifest.members)
    sealed = "unencrypted (--unencrypted)" if args.unencrypted else "encrypted"
    print(
        f"Backup {out}: {len(manifest.members)} members, {rows:,} rows, schema "
        f"{manifest.schema_revision}, {sealed}."
    )
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.cli import CliError
    from licensing_pipeline.governance.backup import BackupError, restore
    from licensing_pipeline.run_lock import RunLocked

    archive = _path(args.archive)
    try:
        manifest, policy = restore(settings, archive, unencrypted=args.unencrypted)
    except (BackupError, RunLocked) as exc:
        raise CliError(str(exc)) from None
    rows = sum(m.rows or 0 for m in manifest.members)
    head = manifest.ledger_head
    ledger = f"ledger head {head.entries} verified" if head else "no ledger in the archive"
    print(
        f"Restored {archive} (written {manifest.created_at}): {rows:,} rows, schema "
        f"{manifest.schema_revision}, {ledger}.\n{policy}\n"
        "The next run rebuilds the warehouse's models whole."
    )
    return 0


def add_backup_commands(sub: Any) -> None:
    """Add ``backup`` and ``restore`` to the ``licensing-pipeline`` parser."""
    backup = sub.add_parser(
        "backup", help="write all licensing state to one archive, encrypted with the backup key"
    )
    backup.add_argument("out", help="the archive to write (must not exist)")
    backup.add_argument(
        "--unencrypted", action="store_true", help="write it without encryption (no key needed)"
    )
    backup.set_defaults(func=cmd_backup)

    restore = sub.add_parser(
        "restore",
        help="check an archive whole, then restore it into an empty repository and warehouse",
    )
    restore.add_argument("archive", help="the archive `backup` wrote")
    restore.add_argument(
        "--unencrypted", action="store_true", help="the archive was written with --unencrypted"
    )
    restore.set_defaults(func=cmd_restore)
