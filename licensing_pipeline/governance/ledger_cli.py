"""`licensing-pipeline ledger verify|proof|checkpoint|keygen`: prove the usage billed on is the
usage delivered."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from licensing_pipeline.settings import Settings

EXIT_MISMATCH = 1


@contextmanager
def _warehouse(settings: Settings) -> Iterator[Any]:
    """The warehouse, refused in one line when it holds no ledger yet."""
    from licensing_pipeline.cli import CliError
    from licensing_pipeline.contract.usage_registry import table_exists
    from licensing_pipeline.governance.ledger import LEDGER_TABLE
    from licensing_pipeline.warehouse.resources import warehouse_for

    warehouse = warehouse_for(settings)
    if not warehouse.is_postgres and not Path(warehouse.path).expanduser().exists():
        raise CliError(f"{warehouse.location}: no warehouse yet: run `licensing-pipeline run`")
    with warehouse.connect() as con:
        if not table_exists(con, LEDGER_TABLE):
            raise CliError(
                f"{warehouse.location}: no usage ledger yet: run `licensing-pipeline run`"
            )
        yield con


def _keys() -> Any:
    from licensing_pipeline.cli import CliError
    from licensing_pipeline.governance.checkpoint import CheckpointError, load_keys

    try:
        return load_keys()
    except CheckpointError as exc:
        raise CliError(str(exc)) from None


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.cli import CliError
    from licensing_pipeline.governance import checkpoint, ledger_verify

    mark = None
    if args.checkpoint:
        try:
            mark = checkpoint.read(args.checkpoint, _keys().public)
        except checkpoint.CheckpointError as exc:
            raise CliError(str(exc)) from None
    with _warehouse(settings) as con:
        try:
            result = ledger_verify.verify(con, args.from_batch, mark)
        except ledger_verify.LedgerMismatch as exc:
            print(f"licensing-pipeline: ledger verify: {exc}", flush=True)
            return EXIT_MISMATCH
    extends = f"; extends {args.checkpoint} ({mark.entries} entries)" if mark else ""
    print(
        f"ledger intact: {result.entries} entries, chain head {result.chain_head}; "
        f"{result.batches_checked} live batch(es) from batch {args.from_batch} recomputed "
        f"({result.events_checked} events); {result.events_held} events held{extends}"
    )
    return 0


def cmd_proof(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.cli import CliError
    from licensing_pipeline.governance import ledger_verify

    with _warehouse(settings) as con:
        try:
            proof = ledger_verify.prove(con, args.tenant, args.event_id)
        except ledger_verify.LedgerMismatch as exc:
            raise CliError(str(exc)) from None
    print(json.dumps(proof, indent=2))
    return 0


def cmd_checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.cli import CliError
    from licensing_pipeline.governance import checkpoint, checks, ledger_verify

    keys = _keys()
    if keys.signing is None:
        raise CliError(
            "no signing key: set LICENSING_LEDGER_SIGNING_KEY or "
            "LICENSING_LEDGER_SIGNING_KEY_FILE (`licensing-pipeline ledger keygen` makes one)"
        )
    with _warehouse(settings) as con:
        try:
            result = ledger_verify.verify(con)
        except ledger_verify.LedgerMismatch as exc:
            print(f"licensing-pipeline: ledger checkpoint: not signed: {exc}", flush=True)
            return EXIT_MISMATCH
        document = checkpoint.sign(
            result.entries, result.chain_head, datetime.now(UTC), keys.signing
        )
        checks.record_mark(con, document)
    try:
        args.out.write_text(json.dumps(document, indent=2) + "\n")
    except OSError as exc:
        raise CliError(f"{args.out}: cannot write: {exc.strerror}") from None
    print(
        f"checkpoint of {result.entries} entries (chain head {result.chain_head}) written to "
        f"{args.out}\npublic key: {document['public_key']}"
    )
    return 0


def cmd_keygen(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.cli import CliError
    from licensing_pipeline.file_modes import private_file
    from licensing_pipeline.governance.checkpoint import new_key_pem

    if args.out.exists():
        raise CliError(f"{args.out}: exists; not overwritten (a key is never replaced in place)")
    pem, public = new_key_pem()
    try:
        private_file(args.out).write_bytes(pem)
    except OSError as exc:
        raise CliError(f"{args.out}: cannot write: {exc.strerror}") from None
    print(
        f"private key written to {args.out} (mode 0600): LICENSING_LEDGER_SIGNING_KEY_FILE\n"
        f"public key (pin it as LICENSING_LEDGER_PUBLIC_KEY): {public}"
    )
    return 0


def add_ledger_commands(sub: Any) -> None:
    ledger = sub.add_parser("ledger", help="verify the usage ledger, prove an event, checkpoint")
    commands = ledger.add_subparsers(dest="ledger_command", required=True)
    verify = commands.add_parser(
        "verify", help="recompute leaves, roots and the chain from the stored events"
    )
    verify.add_argument(
        "--from", dest="from_batch", type=int, default=0, help="recompute batches from this id on"
    )
    verify.add_argument(
        "--checkpoint", type=Path, help="also prove the ledger extends this signed checkpoint"
    )
    verify.set_defaults(func=cmd_verify)
    proof = commands.add_parser("proof", help="an inclusion proof of one event (JSON)")
    proof.add_argument("tenant")
    proof.add_argument("event_id")
    proof.set_defaults(func=cmd_proof)
    check = commands.add_parser("checkpoint", help="write a signed checkpoint of the ledger")
    check.add_argument("--out", type=Path, required=True, help="the checkpoint file to write")
    check.set_defaults(func=cmd_checkpoint)
    keygen = commands.add_parser("keygen", help="make an Ed25519 signing key")
    keygen.add_argument("--out", type=Path, required=True, help="the private key file to write")
    keygen.set_defaults(func=cmd_keygen)
