"""The sealed container refuses every damage at the chunk it happens in, and a wrong key as
a wrong key."""

import os
from pathlib import Path

import pytest

from licensing_pipeline.governance.sealed import (
    HEADER_BYTES,
    SealError,
    new_key,
    parse_key,
    seal,
    unseal,
)

CHUNK = 1000


@pytest.fixture
def key() -> bytes:
    return parse_key(new_key(), "LICENSING_BACKUP_KEY")


@pytest.fixture
def sealed(tmp_path: Path, key: bytes) -> Path:
    plain = tmp_path / "plain.bin"
    plain.write_bytes(os.urandom(3 * CHUNK + 123))
    out = tmp_path / "sealed.bin"
    seal(plain, out, key, chunk_bytes=CHUNK)
    return out


def _chunk_offset(index: int) -> int:
    return HEADER_BYTES + index * (4 + CHUNK + 16)


def test_what_is_sealed_opens_to_the_same_bytes(tmp_path: Path, sealed: Path, key: bytes):
    out = tmp_path / "opened.bin"
    unseal(sealed, out, key)
    assert out.read_bytes() == (tmp_path / "plain.bin").read_bytes()
    assert (tmp_path / "plain.bin").read_bytes() not in sealed.read_bytes()


def test_an_empty_file_round_trips(tmp_path: Path, key: bytes):
    (tmp_path / "empty").write_bytes(b"")
    seal(tmp_path / "empty", tmp_path / "sealed", key, chunk_bytes=CHUNK)
    unseal(tmp_path / "sealed", tmp_path / "opened", key)
    assert (tmp_path / "opened").read_bytes() == b""


def test_a_stream_cut_at_a_chunk_boundary_names_the_missing_chunk(
    tmp_path: Path, sealed: Path, key: bytes
):
    sealed.write_bytes(sealed.read_bytes()[: _chunk_offset(2)])
    with pytest.raises(SealError, match=r"chunk 2 is missing \(the archive is truncated\)"):
        unseal(sealed, tmp_path / "out", key)


def test_a_stream_cut_inside_a_chunk_names_it(tmp_path: Path, sealed: Path, key: bytes):
    sealed.write_bytes(sealed.read_bytes()[: _chunk_offset(1) + 50])
    with pytest.raises(SealError, match="chunk 1 is truncated"):
        unseal(sealed, tmp_path / "out", key)


@pytest.mark.parametrize("chunk", [0, 2, 3])
def test_one_flipped_byte_fails_its_chunk(tmp_path: Path, sealed: Path, key: bytes, chunk: int):
    data = bytearray(sealed.read_bytes())
    data[_chunk_offset(chunk) + 20] ^= 0x01
    sealed.write_bytes(bytes(data))
    with pytest.raises(SealError, match=f"chunk {chunk} fails authentication"):
        unseal(sealed, tmp_path / "out", key)


def test_a_flipped_byte_in_the_header_is_damage_not_another_key(
    tmp_path: Path, sealed: Path, key: bytes
):
    data = bytearray(sealed.read_bytes())
    data[12] ^= 0x01  # inside the key id
    sealed.write_bytes(bytes(data))
    with pytest.raises(SealError, match="the header is damaged"):
        unseal(sealed, tmp_path / "out", key)


def test_swapped_chunks_fail_at_the_first_moved(tmp_path: Path, sealed: Path, key: bytes):
    data = sealed.read_bytes()
    a, b, c = _chunk_offset(0), _chunk_offset(1), _chunk_offset(2)
    sealed.write_bytes(data[:a] + data[b:c] + data[a:b] + data[c:])
    with pytest.raises(SealError, match="chunk 0 fails authentication"):
        unseal(sealed, tmp_path / "out", key)


def test_the_last_chunk_dropped_is_a_truncation(tmp_path: Path, sealed: Path, key: bytes):
    sealed.write_bytes(sealed.read_bytes()[: _chunk_offset(3)])
    with pytest.raises(SealError, match="chunk 3 is missing"):
        unseal(sealed, tmp_path / "out", key)


def test_bytes_after_the_last_chunk_are_refused(tmp_path: Path, sealed: Path, key: bytes):
    sealed.write_bytes(sealed.read_bytes() + b"x")
    with pytest.raises(SealError, match="data follows the last chunk"):
        unseal(sealed, tmp_path / "out", key)


def test_another_key_is_named_as_such(tmp_path: Path, sealed: Path):
    other = parse_key(new_key(), "LICENSING_BACKUP_KEY")
    with pytest.raises(SealError, match="sealed with another key"):
        unseal(sealed, tmp_path / "out", other)


def test_a_foreign_file_is_not_taken_for_an_archive(tmp_path: Path, key: bytes):
    foreign = tmp_path / "foreign.zip"
    foreign.write_bytes(b"PK\x03\x04" + os.urandom(200))
    with pytest.raises(SealError, match="not a licensing-pipeline sealed archive"):
        unseal(foreign, tmp_path / "out", key)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("not base64!", "is not base64"), ("c2hvcnQ=", "must hold 32 bytes")],
)
def test_a_bad_key_is_named_by_its_variable(text: str, problem: str):
    with pytest.raises(SealError, match=f"LICENSING_BACKUP_KEY {problem}"):
        parse_key(text, "LICENSING_BACKUP_KEY")
