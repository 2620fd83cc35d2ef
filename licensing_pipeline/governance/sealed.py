"""The sealed container: a file encrypted with AES-256-GCM in authenticated chunks.

Layout: a header (magic, version, key id, salt, chunk size, a checksum of those), then chunks,
each a 4-byte length and its ciphertext. Each archive encrypts under its own key, derived
(HKDF-SHA256) from the backup key and the header's random salt, so chunk nonces can simply
count. A chunk's nonce and associated data bind its index and whether it is the last one, and
the associated data the whole header: a truncated stream (no last chunk), reordered chunks and
a flipped byte anywhere fail at a named chunk. The key id (a short hash of the key) lets a
wrong key be named as such instead of as damage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"LPSEALED"
VERSION = 1
KEY_BYTES = 32
SALT_BYTES = 16
CHUNK_BYTES = 1 << 20
_FIELDS = struct.Struct(">8sB8s16sI")  # magic, version, key id, salt, chunk size
_CHECK_BYTES = 4
HEADER_BYTES = _FIELDS.size + _CHECK_BYTES
_LENGTH = struct.Struct(">I")
_TAG_BYTES = 16


class SealError(Exception):
    """A sealed file that cannot be opened: the message names the file and where it fails."""


def new_key() -> str:
    """A fresh backup key, as LICENSING_BACKUP_KEY holds it (32 random bytes, base64)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def parse_key(text: str, name: str) -> bytes:
    """The 32 bytes of a base64 key; ``name`` (the variable) is what a bad value names."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SealError(
            f"{name} is not base64 (32 random bytes: docs/operations.md says how)"
        ) from None
    if len(key) != KEY_BYTES:
        raise SealError(f"{name} must hold {KEY_BYTES} bytes (base64), it holds {len(key)}")
    return key


def key_id(key: bytes) -> bytes:
    """Eight bytes that tell keys apart without revealing them."""
    return hashlib.sha256(b"licensing-pipeline backup key id\0" + key).digest()[:8]


def is_sealed(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


@dataclass(frozen=True)
class Header:
    version: int
    key_id: bytes
    salt: bytes
    chunk_bytes: int
    raw: bytes

    @classmethod
    def new(cls, key: bytes, chunk_bytes: int) -> Header:
        salt = os.urandom(SALT_BYTES)
        fields = _FIELDS.pack(MAGIC, VERSION, key_id(key), salt, chunk_bytes)
        raw = fields + hashlib.sha256(fields).digest()[:_CHECK_BYTES]
        return cls(VERSION, key_id(key), salt, chunk_bytes, raw)

    @classmethod
    def read(cls, handle: BinaryIO, where: str) -> Header:
        raw = handle.read(HEADER_BYTES)
        if raw[: len(MAGIC)] != MAGIC:
            raise SealError(f"{where}: not a licensing-pipeline sealed archive (unknown format)")
        if len(raw) < HEADER_BYTES:
            raise SealError(f"{where}: the header is truncated")
        fields, check = raw[: _FIELDS.size], raw[_FIELDS.size :]
        if hashlib.sha256(fields).digest()[:_CHECK_BYTES] != check:
            raise SealError(f"{where}: the header is damaged")
        _, version, kid, salt, chunk_bytes = _FIELDS.unpack(fields)
        if version != VERSION:
            raise SealError(
                f"{where}: sealed format version {version}, this release reads {VERSION}"
            )
        return cls(version, kid, salt, chunk_bytes, raw)

    def cipher(self, key: bytes) -> AESGCM:
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=KEY_BYTES,
            salt=self.salt,
            info=b"licensing-pipeline backup v1",
        ).derive(key)
        return AESGCM(derived)


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _associated(header: Header, index: int, last: bool) -> bytes:
    return header.raw + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


def _chunks(handle: BinaryIO, size: int) -> Iterator[tuple[bytes, bool]]:
    """The file's chunks, each with whether it is the last (an empty file is one empty chunk)."""
    current = handle.read(size)
    while True:
        following = handle.read(size)
        yield current, not following
        if not following:
            return
        current = following


def seal(plain: Path, out: Path, key: bytes, chunk_bytes: int = CHUNK_BYTES) -> None:
    """Encrypt ``plain`` into ``out``."""
    header = Header.new(key, chunk_bytes)
    cipher = header.cipher(key)
    with plain.open("rb") as source, out.open("wb") as sink:
        sink.write(header.raw)
        for index, (chunk, last) in enumerate(_chunks(source, chunk_bytes)):
            sealed = cipher.encrypt(_nonce(index, last), chunk, _associated(header, index, last))
            sink.write(_LENGTH.pack(len(sealed)) + sealed)


def unseal(sealed: Path, out: Path, key: bytes) -> None:
    """Decrypt ``sealed`` into ``out``, every chunk authenticated; raises ``SealError`` naming
    the chunk that is missing, cut short or altered (``out`` then holds no usable content)."""
    where = str(sealed)
    with sealed.open("rb") as source, out.open("wb") as sink:
        header = Header.read(source, where)
        if header.key_id != key_id(key):
            raise SealError(
                f"{where} was sealed with another key (key id {header.key_id.hex()}, "
                f"LICENSING_BACKUP_KEY's is {key_id(key).hex()})"
            )
        cipher = header.cipher(key)
        index = 0
        while True:
            length = source.read(_LENGTH.size)
            if not length:
                raise SealError(f"{where}: chunk {index} is missing (the archive is truncated)")
            if len(length) < _LENGTH.size:
                raise SealError(f"{where}: chunk {index} is truncated")
            (size,) = _LENGTH.unpack(length)
            if size < _TAG_BYTES or size > header.chunk_bytes + _TAG_BYTES:
                raise SealError(f"{where}: chunk {index} is damaged (impossible length {size})")
            body = source.read(size)
            if len(body) < size:
                raise SealError(f"{where}: chunk {index} is truncated")
            plain, last = _open_chunk(cipher, header, index, body, where)
            sink.write(plain)
            if last:
                break
            index += 1
        if source.read(1):
            raise SealError(f"{where}: data follows the last chunk ({index})")


def _open_chunk(
    cipher: AESGCM, header: Header, index: int, body: bytes, where: str
) -> tuple[bytes, bool]:
    """The chunk's plaintext, and whether it authenticates as the last chunk."""
    for last in (False, True):
        try:
            return cipher.decrypt(_nonce(index, last), body, _associated(header, index, last)), last
        except InvalidTag:
            continue
    raise SealError(f"{where}: chunk {index} fails authentication (damaged or altered)")
