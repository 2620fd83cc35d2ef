"""The policy file format, declared as pydantic models.

Every model forbids unknown fields. The validators word their messages for someone editing
the YAML, and ``validate_file`` turns each validation error into a ``ContractError`` naming
the file, line and field it came from. What spans several rules or files (duplicate ids,
overlapping rules, settings outside the versioned file) is checked by ``bundle``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError, PydanticUseDefault

from licensing_pipeline.contract.errors import ContractError
from licensing_pipeline.contract.schemas import ACTIONS, CHECKS, SEVERITIES
from licensing_pipeline.contract.yaml_lines import KeyPath, LocatedYaml

NO_CONTRACT = "none"  # the enforcement condition for findings with no contract in force
ENFORCEMENT_VALUES = ("hard", "soft", NO_CONTRACT)
RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _problem(message: str) -> PydanticCustomError:
    return PydanticCustomError("policy", "{message}", {"message": message})


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _null_is_default(value: Any) -> Any:
    if value is None:
        raise PydanticUseDefault()
    return value


_NULL_IS_DEFAULT = BeforeValidator(_null_is_default)


def _number(low: float, high: float | None = None, *, whole: bool = False) -> BeforeValidator:
    """A number (a whole one for counts) from ``low`` up to ``high``; null keeps the default."""

    def check(value: Any) -> Any:
        value = _null_is_default(value)
        if not (_is_whole(value) if whole else _is_number(value)):
            raise _problem(f"must be a {'whole number' if whole else 'number'}, got {value!r}")
        if value < low or (high is not None and value > high):
            bound = f"at least {_number_text(low)}"
            if high is not None:
                bound = f"between {_number_text(low)} and {_number_text(high)}"
            raise _problem(f"must be {bound}, got {value}")
        return value

    return BeforeValidator(check)


def _steps(value: Any, info: ValidationInfo) -> Any:
    value = _null_is_default(value)
    if not _is_whole(value) or value < 0:
        raise _problem(f"{info.field_name} must be a whole number >= 0, got {value!r}")
    return value


def _choice(allowed: Sequence[str]) -> BeforeValidator:
    def check(value: Any, info: ValidationInfo) -> Any:
        if value not in allowed:
            raise _problem(f"{info.field_name} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    return BeforeValidator(check)


def _names(value: Any) -> list[str]:
    """One name or a list of them; null leaves the condition out."""
    items = _null_is_default(value)
    items = items if isinstance(items, list) else [items]
    if not items or not all(isinstance(v, str) or _is_whole(v) for v in items):
        raise _problem("must be a name or a non-empty list of names")
    return [str(v).strip() for v in items]


def _some_check(value: Any) -> Any:
    if value is None:
        raise _problem("a rule must name its check(s)")
    return value


def _rule_id(value: Any) -> str:
    if not isinstance(value, str) or not RULE_ID.match(value):
        raise _problem(
            "every rule needs an id: letters, digits, '-', '_', '.', ':' (at most 64), "
            f"got {value!r}"
        )
    return value


def _whole_priority(value: Any) -> int:
    if not _is_whole(value):
        raise _problem(f"priority must be a whole number, got {value!r}")
    return int(value)


def _rule_text(value: Any) -> str:
    if not isinstance(value or "", str):
        raise _problem("description must be text")
    return str(value or "").strip()


def _version(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool) or not str(value):
        raise _problem('version must be text like "2026.11.0"')
    return str(value)


def _distinct(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


Steps = Annotated[int, BeforeValidator(_steps)]
Names = Annotated[tuple[str, ...] | None, AfterValidator(_distinct), BeforeValidator(_names)]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # What to say when the YAML holds something else than a mapping here.
    not_a_mapping: ClassVar[str] = "must be a mapping"


class Thresholds(_Schema):
    near_limit_ratio: Annotated[float, _number(0, 1)] = 0.8
    billing_tolerance: Annotated[float, _number(0)] = 0.01


class AnomalyRule(_Schema):
    """The usage_anomaly thresholds; the defaults are the backtest's choice (docs/data-quality.md)."""

    ratio: Annotated[float, _number(1)] = 5.0
    noise_sigmas: Annotated[float, _number(0)] = 4.5
    baseline_days: Annotated[int, _number(1, whole=True)] = 28
    min_history_days: Annotated[int, _number(1, whole=True)] = 28
    seasonal_weeks: Annotated[int, _number(0, whole=True)] = 8
    novelty: Annotated[float, _number(0)] = 2.0
    spread_sigmas: Annotated[float, _number(0)] = 2.0
    min_active_days: Annotated[int, _number(1, whole=True)] = 3
    explained_days: Annotated[int, _number(0, whole=True)] = 7
    episode_gap_days: Annotated[int, _number(0, whole=True)] = 1


class Defaults(_Schema):
    """What every rule gets unless it says otherwise."""

    grace_periods: Steps = 0
    escalate_every: Steps = 0
    escalate_up_to: Annotated[str, _choice(ACTIONS), _NULL_IS_DEFAULT] = "suspend"


class Fallback(_Schema):
    severity: Annotated[str, _choice(SEVERITIES)] = "warning"
    action: Annotated[str, _choice(ACTIONS)] = "notify"


class Range(_Schema):
    """``at_least <= x < below``; a missing bound is open."""

    not_a_mapping: ClassVar[str] = "must be a mapping like {at_least: 1.5, below: 2}"
    at_least: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Range:
        if not self.model_fields_set:
            raise _problem("give at_least and/or below")
        if self.at_least is not None and self.below is not None and self.below <= self.at_least:
            raise _problem(
                f"below ({_number_text(self.below)}) must be above at_least "
                f"({_number_text(self.at_least)})"
            )
        return self

    def contains(self, value: float) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return (self.at_least is None or value >= self.at_least) and (
            self.below is None or value < self.below
        )

    def overlaps(self, other: Range) -> bool:
        low = max(self.at_least or 0.0, other.at_least or 0.0)
        high = min(
            math.inf if self.below is None else self.below,
            math.inf if other.below is None else other.below,
        )
        return low < high

    def describe(self) -> str:
        parts = []
        if self.at_least is not None:
            parts.append(f">= {_number_text(self.at_least)}")
        if self.below is not None:
            parts.append(f"< {_number_text(self.below)}")
        return " and ".join(parts)


class RatioRange(Range):
    at_least: Annotated[float | None, _number(0)] = None
    below: Annotated[float | None, _number(0)] = None


class PeriodRange(Range):
    at_least: Annotated[float | None, _number(1, whole=True)] = None
    below: Annotated[float | None, _number(1, whole=True)] = None


class RuleSpec(_Schema):
    """One rule as written: conditions (absent ones match anything) and an outcome."""

    not_a_mapping: ClassVar[str] = "each rule is a mapping"
    id: Annotated[str, BeforeValidator(_rule_id)] = Field(None, validate_default=True)
    description: Annotated[str, BeforeValidator(_rule_text)] = ""
    priority: Annotated[int, BeforeValidator(_whole_priority)] = 0
    check: Annotated[
        tuple[Annotated[str, _choice(CHECKS)], ...],
        AfterValidator(_distinct),
        BeforeValidator(_names),
        BeforeValidator(_some_check),
    ] = Field(None, validate_default=True)
    enforcement: Annotated[
        tuple[Annotated[str, _choice(ENFORCEMENT_VALUES)], ...] | None,
        AfterValidator(_distinct),
        BeforeValidator(_names),
    ] = None
    segment: Names = None
    jurisdiction: Names = None
    ratio: RatioRange | None = None
    consecutive_periods: PeriodRange | None = None
    severity: Annotated[str, _choice(SEVERITIES)] = Field(None, validate_default=True)
    action: Annotated[str, _choice(ACTIONS)] = Field(None, validate_default=True)
    grace_periods: Steps | None = None
    escalate_every: Steps | None = None
    escalate_up_to: Annotated[str | None, _choice(ACTIONS), _NULL_IS_DEFAULT] = None


class PolicyFile(_Schema):
    """One file of a bundle; the settings (all but rules) live in the file with the version."""

    not_a_mapping: ClassVar[str] = "a policy file is a mapping (version, thresholds, rules, ...)"
    version: Annotated[str | None, BeforeValidator(_version)] = None
    description: Annotated[str, BeforeValidator(lambda text: str(text or "").strip())] = ""
    thresholds: Annotated[Thresholds, _NULL_IS_DEFAULT] = Thresholds()
    anomaly: Annotated[AnomalyRule, _NULL_IS_DEFAULT] = AnomalyRule()
    defaults: Annotated[Defaults, _NULL_IS_DEFAULT] = Defaults()
    fallback: Annotated[Fallback, _NULL_IS_DEFAULT] = Fallback()
    rules: Annotated[list[RuleSpec], _NULL_IS_DEFAULT] = []


SETTINGS = ("thresholds", "anomaly", "defaults", "fallback")  # besides the version itself


# --- from validation errors to file, line and field --------------------------------------


def _model_in(annotation: Any) -> type[_Schema] | None:
    if isinstance(annotation, type) and issubclass(annotation, _Schema):
        return annotation
    return next(filter(None, map(_model_in, get_args(annotation))), None)


def _model_at(path: KeyPath) -> type[_Schema]:
    model: type[_Schema] = PolicyFile
    for part in path:
        if isinstance(part, str):
            model = _model_in(model.model_fields[part].annotation) or model
    return model


def _yaml_path(data: Any, loc: tuple[str | int, ...]) -> KeyPath:
    """The error's location as the YAML has it: a single name given where a list is allowed
    has no index, and a number is a key wherever the YAML has a mapping."""
    path: list[str | int] = []
    for part in loc:
        if isinstance(data, dict):
            data, part = data.get(part), str(part)
        elif isinstance(data, list) and isinstance(part, int):
            data = data[part] if part < len(data) else None
        elif isinstance(part, int):
            continue
        path.append(part)
    return tuple(path)


def _message(error: ErrorDetails, path: KeyPath) -> str:
    kind = error["type"]
    if kind == "policy":
        return str(error.get("ctx", {})["message"])
    if kind in ("extra_forbidden", "invalid_key"):
        known = ", ".join(_model_at(path[:-1]).model_fields)
        return f"unknown field '{path[-1]}' (known: {known})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return _model_at(path).not_a_mapping
    if kind == "list_type":
        return f"{path[-1]} must be a list"
    return error["msg"]


def validation_problems(doc: LocatedYaml, error: ValidationError) -> list[ContractError]:
    problems = []
    for details in error.errors():
        path = _yaml_path(doc.data, details["loc"])
        problems.append(doc.error(_message(details, path), *path))
    return problems


def validate_file(doc: LocatedYaml) -> tuple[PolicyFile | None, list[ContractError]]:
    """The file's model, or None and every problem in it."""
    try:
        return PolicyFile.model_validate(doc.data), []
    except ValidationError as error:
        return None, validation_problems(doc, error)


Part = TypeVar("Part", bound=_Schema)


def valid_part(model: type[Part], data: Any) -> Part | None:
    """``data`` as ``model`` if it validates on its own: the parts of a file with problems
    elsewhere can still be checked against each other, so every problem is reported at once."""
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


def valid_fields(model: type[Part], data: Any) -> Part:
    """``model`` from the fields of ``data`` that validate on their own; the rest default."""
    fields = data.items() if isinstance(data, dict) else ()
    return model.model_validate({k: v for k, v in fields if valid_part(model, {k: v})})
