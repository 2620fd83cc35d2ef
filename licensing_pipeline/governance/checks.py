"""The nightly ledger check: a blocking asset check on ``usage_events``, so a tampered usage
history produces no findings and no bills.

Each night it verifies the chain over every entry (cheap) and that it extends the last mark
(``main.usage_ledger_checkpoints``), recomputes leaves and roots only for the batches after
that mark, and compares the events held with the live batches' counts: a night costs what it
brought, not the history. When it holds, it records a new mark, signed when a signing key is
set. An unsigned mark is only as strong as the warehouse's access control; a signed one is
checked against the pinned public key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from licensing_pipeline.governance import checkpoint, ledger, ledger_verify
from licensing_pipeline.governance.ledger import CHECKPOINTS_TABLE, Connection
from licensing_pipeline.warehouse.resources import Warehouse

CHECK_NAME = "usage_events_ledger_intact"


def record_mark(con: Connection, document: dict[str, Any]) -> None:
    """Keep a checkpoint (signed or not) as the next night's starting mark."""
    con.execute(
        f"INSERT INTO {CHECKPOINTS_TABLE} VALUES (?, ?, ?, ?, ?)",
        [
            document["entries"],
            document["chain_head"],
            datetime.strptime(document["time"], "%Y-%m-%dT%H:%M:%SZ"),
            document.get("public_key"),
            document.get("signature"),
        ],
    )


def last_mark(con: Connection, keys: checkpoint.Keys) -> tuple[ledger_verify.Mark | None, int]:
    """The latest recorded mark (its signature checked when it has one) and the first batch
    after it."""
    row = con.execute(
        f"SELECT entries, chain_head, recorded_at, public_key, signature FROM {CHECKPOINTS_TABLE} "
        "ORDER BY entries DESC, recorded_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None, 0
    document = {
        "format": checkpoint.FORMAT,
        "entries": int(row[0]),
        "chain_head": str(row[1]),
        "time": row[2].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "public_key": row[3],
        "signature": row[4],
    }
    where = f"the mark of {document['time']} in {CHECKPOINTS_TABLE}"
    if row[4] is not None and keys.public is not None:
        mark = checkpoint.check_signature(document, keys.public, where)
    else:
        mark = ledger_verify.Mark(int(row[0]), str(row[1]), origin=where)
    covered = [e.batch_id for e in ledger.entries(con)[: mark.entries] if e.batch_id is not None]
    return mark, max(covered, default=0) + 1


def verify_since_mark(con: Connection, keys: checkpoint.Keys) -> ledger_verify.Verified:
    """The night's verification; records the new mark when it holds."""
    mark, from_batch = last_mark(con, keys)
    result = ledger_verify.verify(con, from_batch, mark)
    now = datetime.now(UTC)
    document = (
        checkpoint.sign(result.entries, result.chain_head, now, keys.signing)
        if keys.signing
        else {
            "entries": result.entries,
            "chain_head": result.chain_head,
            "time": f"{now:%Y-%m-%dT%H:%M:%SZ}",
        }
    )
    record_mark(con, document)
    return result


@dg.asset_check(
    asset="usage_events",
    name=CHECK_NAME,
    blocking=True,
    description=(
        "The usage events held are exactly the ledger's: the chain is intact and extends the "
        "last mark, and the batches since it recompute to their Merkle roots."
    ),
)
def usage_events_ledger_intact(warehouse: Warehouse) -> dg.AssetCheckResult:
    try:
        keys = checkpoint.load_keys()
        with warehouse.connect() as con:
            result = verify_since_mark(con, keys)
    except (ledger_verify.LedgerMismatch, checkpoint.CheckpointError) as exc:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.ERROR, description=str(exc)
        )
    return dg.AssetCheckResult(
        passed=True,
        description=f"{result.batches_checked} new batch(es), {result.events_checked} events",
        metadata={
            "entries": result.entries,
            "chain_head": result.chain_head,
            "batches_recomputed": result.batches_checked,
            "events_recomputed": result.events_checked,
            "events_held": result.events_held,
        },
    )
