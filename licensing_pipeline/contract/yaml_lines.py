"""YAML loading that remembers where every value came from, for error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from licensing_pipeline.contract.errors import ContractError

KeyPath = tuple[str | int, ...]


class LocatedYaml:
    """Parsed YAML plus the 1-based line of each key path (``("plans", "starter")``)."""

    def __init__(self, data: Any, lines: dict[KeyPath, int], file: Path) -> None:
        self.data = data
        self.lines = lines
        self.file = file

    def line(self, *path: str | int) -> int | None:
        """Line of the deepest known prefix of ``path``."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def error(self, message: str, *path: str | int) -> ContractError:
        field = ".".join(str(p) for p in path) or None
        return ContractError(message, file=self.file, line=self.line(*path), field=field)


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines)


def load_located_yaml(path: Path) -> LocatedYaml:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(f"not UTF-8 text ({exc.reason})", file=path) from None
    return located_yaml_from_text(text, path)


def located_yaml_from_text(text: str, path: Path) -> LocatedYaml:
    """The same, for text already read (or kept in the repository); ``path`` names it in errors."""
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ContractError(f"not valid YAML: {exc.problem or exc}", file=path, line=line) from None
    except yaml.YAMLError as exc:
        raise ContractError(f"not valid YAML: {exc}", file=path) from None
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return LocatedYaml(data, lines, path)
