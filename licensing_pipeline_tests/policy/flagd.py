"""A validator of flagd flag-definition files, written by hand from the flag-definition rules.

JSON Schema (draft 7) for the structure, then the rules a schema cannot say: the default
variant names one of the variants, every variant has the same type, and targeting (JsonLogic)
only ever returns a variant name or null. No network: the schema is written here.
"""

from __future__ import annotations

from typing import Any

import jsonschema

PRIMITIVE = {"type": ["string", "number", "boolean", "null"]}
METADATA = {"type": "object", "additionalProperties": PRIMITIVE}

FLAG = {
    "type": "object",
    "required": ["state", "variants", "defaultVariant"],
    "additionalProperties": False,
    "properties": {
        "state": {"enum": ["ENABLED", "DISABLED"]},
        "variants": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"minLength": 1},
            "additionalProperties": {"type": ["string", "number", "boolean", "object"]},
        },
        "defaultVariant": {"type": "string", "minLength": 1},
        "targeting": {"type": "object"},
        "metadata": METADATA,
    },
}

DOCUMENT = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["flags"],
    "properties": {
        "$schema": {"type": "string"},
        "flags": {
            "type": "object",
            "propertyNames": {"minLength": 1},
            "additionalProperties": FLAG,
        },
        "$evaluators": {"type": "object"},
        "metadata": {
            **METADATA,
            "properties": {"flagSetId": {"type": "string"}, "version": {"type": "string"}},
        },
    },
}

# JsonLogic operators and their argument counts (None: any); `if` takes exactly three in flagd.
OPERATORS: dict[str, int | None] = {
    "if": 3,
    "in": 2,
    "==": 2,
    "===": 2,
    "!=": 2,
    "!==": 2,
    "!": 1,
    "!!": 1,
    "and": None,
    "or": None,
    "var": None,
    "starts_with": 2,
    "ends_with": 2,
}


def _logic_problems(node: Any, where: str) -> list[str]:
    if not isinstance(node, dict):
        return []
    if len(node) != 1:
        return [f"{where}: a JsonLogic rule has exactly one operator, got {sorted(node)}"]
    operator, args = next(iter(node.items()))
    if operator not in OPERATORS:
        return [f"{where}: unknown operator {operator!r}"]
    if operator == "var":
        ok = isinstance(args, str) or (isinstance(args, list) and args and isinstance(args[0], str))
        return [] if ok else [f"{where}: var takes a name"]
    if not isinstance(args, list):
        args = [args]
    count = OPERATORS[operator]
    if count is not None and len(args) != count:
        return [f"{where}: {operator} takes {count} argument(s), got {len(args)}"]
    problems = []
    for index, arg in enumerate(args):
        problems.extend(_logic_problems(arg, f"{where}.{operator}[{index}]"))
    return problems


def _results(node: Any) -> list[Any]:
    """What a targeting expression can return: the leaves of its `if` branches."""
    if isinstance(node, dict) and "if" in node:
        _, then, otherwise = node["if"]
        return _results(then) + _results(otherwise)
    return [node]


def flagd_problems(document: Any) -> list[str]:
    """Every rule the document breaks (empty: valid)."""
    validator = jsonschema.Draft7Validator(DOCUMENT)
    problems = [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(document)
    ]
    if problems:
        return problems
    for key, flag in document["flags"].items():
        variants = flag["variants"]
        if flag["defaultVariant"] not in variants:
            problems.append(f"{key}: defaultVariant {flag['defaultVariant']!r} is not a variant")
        if len({type(v).__name__ for v in variants.values()}) > 1:
            problems.append(f"{key}: variants mix types")
        targeting = flag.get("targeting")
        if targeting:
            problems.extend(_logic_problems(targeting, f"{key}.targeting"))
            if not problems:
                for value in _results(targeting):
                    if value is not None and (not isinstance(value, str) or value not in variants):
                        problems.append(f"{key}: targeting returns {value!r}, not a variant")
    return problems
