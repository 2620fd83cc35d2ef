"""The finding's identity: a fingerprint of tenant, check, subject and period."""

from __future__ import annotations

import hashlib

import pandas as pd

KEY = ["tenant_id", "check", "subject", "period"]


def finding_fingerprint(tenant_id: str, check: str, subject: str, period: str) -> str:
    """Stable across nights and machines: the same breach is one finding."""
    key = "\x1f".join((tenant_id, check, subject, period))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def fingerprints(frame: pd.DataFrame) -> pd.Series:
    """``finding_fingerprint`` of every row of a frame with the KEY columns."""
    return pd.Series(
        [finding_fingerprint(*row) for row in frame[KEY].astype(str).itertuples(index=False)],
        index=frame.index,
        dtype="string",
    )
