"""Who may read what the pipeline writes: its owner only, whatever the umask.

The warehouse, the repository, statements, the dashboard and the Data Docs hold every
tenant's data, so their files are 0600 and their folders 0700. What is shared on purpose
says so: the enforcement feed (0644, read by the product's flag provider) and statements
when ``LICENSING_STATEMENTS_MODE`` opens them to a group.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700
SHARED_FILE = 0o644


def folder_mode(file_mode: int) -> int:
    """The folder mode that goes with a file mode: entry (x) wherever reading is granted."""
    return file_mode | ((file_mode & 0o444) >> 2)


def set_mode(path: Path, mode: int) -> None:
    """``chmod`` to ``mode``, keeping a folder's setgid bit (a shared statements folder's
    group passes on to what is written in it). Someone else's file is theirs to set."""
    current = os.stat(path).st_mode
    wanted = (current & 0o7000) | mode
    if stat.S_IMODE(current) != wanted:
        with suppress(PermissionError):
            os.chmod(path, wanted)


def make_folders(folder: Path, mode: int) -> Path:
    """``mkdir -p`` whose new folders get exactly ``mode`` (mkdir's own is cut by the umask);
    folders that exist are left as they are."""
    missing = []
    current = Path(folder)
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=mode)
        except FileExistsError:  # made meanwhile by another process
            continue
        set_mode(path, mode)
    return Path(folder)


def own_folder(folder: Path, mode: int = PRIVATE_FOLDER) -> Path:
    """A folder only the pipeline writes (statements, the dashboard, the Data Docs): made if
    missing, and set to ``mode`` even when it exists (an earlier release left it 0755)."""
    make_folders(folder, mode)
    set_mode(folder, mode)
    return Path(folder)


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 if it is missing, or set an existing one to 0600:
    a database created in it then never exists readable by others (SQLite gives its
    journal the database file's mode)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        set_mode(path, PRIVATE_FILE)
    return Path(path)


@contextmanager
def private_umask() -> Iterator[None]:
    """Files and folders created in the block, by this process or a process it starts there
    (DuckDB's write-ahead log, dbt's), are private. The umask is per process: the pipeline
    sets it only around its own writing, never to make something less private."""
    previous = os.umask(0o077)
    os.umask(previous | 0o077)
    try:
        yield
    finally:
        os.umask(previous)
