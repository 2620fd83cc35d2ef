"""Reading one environment variable at a time.

Each reader returns None when the variable is unset or blank, so a resource's
``from_env`` passes only what was set (``given``) and its fields' defaults hold the rest;
a bad value stops with one line that names the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg

T = TypeVar("T")


class SettingsError(ValueError):
    """The environment asks for something inconsistent; the message says what to set."""


def given(**values: Any) -> dict[str, Any]:
    """The fields whose variable was set: the others keep their defaults."""
    return {name: value for name, value in values.items() if value is not None}


def text(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def secret(name: str) -> dg.EnvVar | None:
    """The variable by name, so the UI and a repr show the name, never the value; Dagster
    resolves it when it initializes the resource."""
    return dg.EnvVar(name) if text(name) else None


def path(name: str) -> Path | None:
    value = text(name)
    return Path(value).expanduser().resolve() if value else None


def _parsed(name: str, convert: Callable[[str], T], expected: str) -> T | None:
    value = text(name)
    if value is None:
        return None
    try:
        return convert(value)
    except ValueError:
        raise SettingsError(f"{name} must be {expected}, got {value!r}") from None


def switch(name: str) -> bool | None:
    """on/off (also true/false, yes/no, 1/0)."""
    value = text(name)
    if value is None:
        return None
    if value.lower() in ("on", "true", "yes", "1"):
        return True
    if value.lower() in ("off", "false", "no", "0"):
        return False
    raise SettingsError(f"{name} must be on or off, got {value!r}")


def day(name: str) -> date | None:
    return _parsed(name, date.fromisoformat, "a day like 2025-01-01")


def file_mode(name: str) -> int | None:
    """An octal file mode that keeps the owner's read and write and grants others read at
    most (0600, 0640, 0644)."""
    value = text(name)
    if value is None:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if mode & ~0o644 or mode & 0o600 != 0o600:
        raise SettingsError(
            f"{name} must be an octal file mode between 0600 and 0644 (e.g. 0640), got {value!r}"
        )
    return mode


def memory(name: str) -> str | None:
    """An amount of memory as DuckDB reads it: a number and a unit (512MB, 4GB, 1.5GiB)."""
    value = text(name)
    if value is None:
        return None
    amount = value.replace(" ", "")
    if not re.fullmatch(r"\d+(\.\d+)?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", amount, flags=re.IGNORECASE):
        raise SettingsError(f"{name} must be an amount like 512MB or 4GB, got {value!r}")
    return amount


def days(name: str) -> int | None:
    count = _parsed(name, int, "a whole number of days")
    if count is not None and count < 0:
        raise SettingsError(f"{name} must not be negative, got {count}")
    return count


def number(name: str, *, at_most: float | None = None) -> float | None:
    result = _parsed(name, float, "a number")
    if result is not None and (result < 0 or (at_most is not None and result > at_most)):
        bound = f" and at most {at_most:g}" if at_most is not None else ""
        raise SettingsError(f"{name} must be at least 0{bound}, got {text(name)}")
    return result


def transitions(name: str, events: tuple[str, ...]) -> dict[str, str] | None:
    """``event=target`` pairs, comma-separated, each event among ``events``."""
    value = text(name)
    if value is None:
        return None
    result: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        event, _, target = (item.strip() for item in part.partition("="))
        if event not in events or not target:
            raise SettingsError(
                f"{name}: {part!r} is not event=transition with an event among "
                f"{', '.join(events)} (e.g. resolved=Done)"
            )
        result[event] = target
    return result
