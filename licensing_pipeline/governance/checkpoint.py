"""Signed checkpoints of the usage ledger: its entry count and chain head at a time, signed
with Ed25519, to be kept outside the database. A later ledger must extend it.

The signer's public key is pinned by configuration (``LICENSING_LEDGER_PUBLIC_KEY``, or the
one of the signing key): the key a checkpoint carries is only a label, never trusted.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from licensing_pipeline import environment as env
from licensing_pipeline.governance.ledger_verify import Mark

FORMAT = "licensing-pipeline usage ledger checkpoint v1"


class CheckpointError(Exception):
    """A checkpoint or key that cannot be used (one line, naming the file or variable)."""


@dataclass(frozen=True)
class Keys:
    signing: Ed25519PrivateKey | None
    public: Ed25519PublicKey | None


def parse_key(text: str, what: str, private: bool) -> Any:
    data = text.strip().encode()
    try:
        if data.startswith(b"-----BEGIN"):
            return (
                serialization.load_pem_private_key(data, password=None)
                if private
                else serialization.load_pem_public_key(data)
            )
        raw = base64.b64decode(data, validate=True)
        return (
            Ed25519PrivateKey.from_private_bytes(raw)
            if private
            else Ed25519PublicKey.from_public_bytes(raw)
        )
    except (ValueError, TypeError, binascii.Error) as exc:
        raise CheckpointError(f"{what}: not an Ed25519 key (PEM or base64 raw): {exc}") from None


def public_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_keys() -> Keys:
    """The signing key (``LICENSING_LEDGER_SIGNING_KEY``, or the file
    ``LICENSING_LEDGER_SIGNING_KEY_FILE``) and the pinned public key
    (``LICENSING_LEDGER_PUBLIC_KEY``, else the signing key's)."""
    text, what = env.text("LICENSING_LEDGER_SIGNING_KEY"), "LICENSING_LEDGER_SIGNING_KEY"
    key_file = env.path("LICENSING_LEDGER_SIGNING_KEY_FILE")
    if text is None and key_file is not None:
        what = f"{key_file} (LICENSING_LEDGER_SIGNING_KEY_FILE)"
        try:
            text = key_file.read_text()
        except OSError as exc:
            raise CheckpointError(f"{what}: cannot read: {exc.strerror}") from None
    signing = parse_key(text, what, private=True) if text else None
    if signing is not None and not isinstance(signing, Ed25519PrivateKey):
        raise CheckpointError(f"{what}: not an Ed25519 private key")
    pinned = env.text("LICENSING_LEDGER_PUBLIC_KEY")
    public = (
        parse_key(pinned, "LICENSING_LEDGER_PUBLIC_KEY", private=False)
        if pinned
        else (signing.public_key() if signing else None)
    )
    if public is not None and not isinstance(public, Ed25519PublicKey):
        raise CheckpointError("LICENSING_LEDGER_PUBLIC_KEY: not an Ed25519 public key")
    return Keys(signing, public)


def new_key_pem() -> tuple[bytes, str]:
    """A new private key (PEM) and its public key (base64 raw)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, public_text(key.public_key())


def _signed_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(entries: int, chain_head: str, at: datetime, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The checkpoint document: the body and its signature over the body's sorted JSON."""
    body = {
        "format": FORMAT,
        "entries": entries,
        "chain_head": chain_head,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "public_key": public_text(key.public_key()),
    }
    return {**body, "signature": base64.b64encode(key.sign(_signed_bytes(body))).decode()}


def check_signature(document: dict[str, Any], public: Ed25519PublicKey, where: str) -> Mark:
    """The mark a checkpoint sets, once its signature holds under the pinned key."""
    body = {k: v for k, v in document.items() if k != "signature"}
    try:
        signature = base64.b64decode(str(document.get("signature", "")), validate=True)
        public.verify(signature, _signed_bytes(body))
    except (InvalidSignature, binascii.Error, ValueError):
        raise CheckpointError(
            f"{where}: the signature does not hold under the pinned public key "
            f"{public_text(public)} (signed by another key, or edited)"
        ) from None
    return Mark(int(body["entries"]), str(body["chain_head"]), origin=f"checkpoint {where}")


def read(path: Path, public: Ed25519PublicKey | None) -> Mark:
    """A checkpoint file, verified against the pinned public key."""
    if public is None:
        raise CheckpointError(
            "no public key pinned: set LICENSING_LEDGER_PUBLIC_KEY (or the signing key) to "
            f"check {path}"
        )
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not a checkpoint (line {exc.lineno}: {exc.msg})") from None
    fields = {"format", "entries", "chain_head", "time", "public_key", "signature"}
    if (
        not isinstance(document, dict)
        or document.get("format") != FORMAT
        or set(document) != fields
    ):
        raise CheckpointError(f"{path}: not a usage ledger checkpoint ({FORMAT})")
    return check_signature(document, public, str(path))
