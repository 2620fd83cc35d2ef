"""File modes whatever the umask: private by default, shared only where asked."""

from __future__ import annotations

import stat
from pathlib import Path

from licensing_pipeline.file_modes import (
    folder_mode,
    make_folders,
    own_folder,
    private_file,
    private_umask,
)
from licensing_pipeline.policy.enforcement import write_atomically


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_folder_modes_follow_file_modes():
    assert [folder_mode(m) for m in (0o600, 0o640, 0o644)] == [0o700, 0o750, 0o755]


def test_new_folders_get_exactly_their_mode(tmp_path: Path, open_umask: None):
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    make_folders(existing / "a" / "b", 0o700)
    assert (mode(existing), mode(existing / "a"), mode(existing / "a" / "b")) == (
        0o755,
        0o700,
        0o700,
    )
    own_folder(existing)
    assert mode(existing) == 0o700


def test_private_files_and_the_umask_around_writing(tmp_path: Path, open_umask: None):
    database = private_file(tmp_path / "x.db")
    assert database.stat().st_size == 0 and mode(database) == 0o600
    database.chmod(0o644)
    private_file(database)
    assert mode(database) == 0o600
    with private_umask():
        (tmp_path / "log").write_text("rows")
        (tmp_path / "folder").mkdir()
    (tmp_path / "after").write_text("")
    assert (mode(tmp_path / "log"), mode(tmp_path / "folder")) == (0o600, 0o700)
    assert mode(tmp_path / "after") == 0o666  # the umask is the caller's again


def test_atomic_writes_are_private_unless_shared(tmp_path: Path, open_umask: None):
    private = tmp_path / "new" / "page.html"
    assert write_atomically(private, "x")
    assert (mode(private.parent), mode(private)) == (0o700, 0o600)
    private.chmod(0o644)  # left so by an earlier release
    assert not write_atomically(private, "x")  # unchanged, but narrowed all the same
    assert mode(private) == 0o600
    feed = tmp_path / "feed" / "flags.json"
    write_atomically(feed, "{}", mode=0o644)
    assert (mode(feed.parent), mode(feed)) == (0o755, 0o644)
