"""Errors that name the file, line and field, so a user can fix their export."""

from __future__ import annotations

from pathlib import Path

HOW_TO_FIX_DATA_DIR = (
    "Point LICENSING_DATA_DIR (or --data-dir) at a folder laid out as in the data contract, "
    "or create a demo dataset with `licensing-pipeline demo`."
)


class ContractError(Exception):
    """A whole input cannot be used (as opposed to a bad row, which is quarantined)."""

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field '{self.field}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class MissingInputError(ContractError):
    """A required file or folder is absent."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(f"required {what} not found. {HOW_TO_FIX_DATA_DIR}", file=path)


def link_outside(path: Path, folder: Path) -> bool:
    """True when ``path`` is reached through a symbolic link that leads out of ``folder``:
    such a file is never read (an export must not pull in, say, /etc/passwd)."""
    return not Path(path).resolve().is_relative_to(Path(folder).resolve())
