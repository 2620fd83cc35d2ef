"""Policy bundles: the thresholds and rules that turn check results into decisions.

A bundle is one YAML file, or a folder of ``*.yaml`` files read as one, with a declared
``version``; its content hash is computed (the SHA-256 of the file, or of the folder's
manifest), so a finding can say exactly which text it was decided under. Loading validates
the whole bundle and reports every problem with its file and line: a bundle is used whole
or not at all.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from licensing_pipeline.contract.errors import ContractError
from licensing_pipeline.contract.schemas import ACTIONS, CHECKS, SEVERITIES
from licensing_pipeline.contract.yaml_lines import LocatedYaml, located_yaml_from_text

NO_CONTRACT = "none"  # the enforcement condition for findings with no contract in force
ENFORCEMENT_VALUES = ("hard", "soft", NO_CONTRACT)
FALLBACK_RULE_ID = "fallback"
BUNDLE_SUFFIXES = (".yaml", ".yml")
RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")

TOP_LEVEL = ("version", "description", "thresholds", "anomaly", "defaults", "fallback", "rules")
SETTINGS = ("version", "thresholds", "anomaly", "defaults", "fallback")
CONDITIONS = ("check", "enforcement", "segment", "jurisdiction", "ratio", "consecutive_periods")
OUTCOME = ("severity", "action", "grace_periods", "escalate_every", "escalate_up_to")
RULE_FIELDS = ("id", "description", "priority", *CONDITIONS, *OUTCOME)
RANGE_FIELDS = ("at_least", "below")


@dataclass(frozen=True)
class AnomalyRule:
    """The usage_anomaly thresholds; the defaults are the backtest's choice (docs/data-quality.md)."""

    ratio: float = 5.0
    noise_sigmas: float = 4.5
    baseline_days: int = 28
    min_history_days: int = 28
    seasonal_weeks: int = 8
    novelty: float = 2.0
    spread_sigmas: float = 2.0
    min_active_days: int = 3
    explained_days: int = 7
    episode_gap_days: int = 1


# Each anomaly setting with its lowest valid value and whether it counts days or weeks.
ANOMALY_FIELDS: tuple[tuple[str, float, bool], ...] = (
    ("ratio", 1, False),
    ("noise_sigmas", 0, False),
    ("baseline_days", 1, True),
    ("min_history_days", 1, True),
    ("seasonal_weeks", 0, True),
    ("novelty", 0, False),
    ("spread_sigmas", 0, False),
    ("min_active_days", 1, True),
    ("explained_days", 0, True),
    ("episode_gap_days", 0, True),
)


@dataclass(frozen=True)
class Range:
    """``at_least <= x < below``; a missing bound is open."""

    at_least: float | None = None
    below: float | None = None

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
            parts.append(f">= {_num(self.at_least)}")
        if self.below is not None:
            parts.append(f"< {_num(self.below)}")
        return " and ".join(parts)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class Rule:
    """One rule: conditions (None matches anything), an outcome, and where it was written."""

    id: str
    checks: tuple[str, ...]
    severity: str
    action: str
    enforcement: tuple[str, ...] | None = None
    segments: tuple[str, ...] | None = None
    jurisdictions: tuple[str, ...] | None = None
    ratio: Range | None = None
    consecutive_periods: Range | None = None
    priority: int = 0
    grace_periods: int = 0
    escalate_every: int = 0
    escalate_up_to: str = "suspend"
    description: str = ""
    file: str = ""
    line: int | None = None

    @property
    def check(self) -> str:
        """The first check the rule decides (most rules decide one)."""
        return self.checks[0]

    @property
    def where(self) -> str:
        return f"{self.file}, line {self.line}" if self.line is not None else self.file

    def conditions(self) -> list[tuple[str, str]]:
        """(condition, human text), in the order a reader checks them."""
        out = [("check", " or ".join(self.checks))]
        if self.enforcement is not None:
            out.append(("enforcement", " or ".join(self.enforcement)))
        if self.segments is not None:
            out.append(("segment", " or ".join(self.segments)))
        if self.jurisdictions is not None:
            out.append(("jurisdiction", " or ".join(self.jurisdictions)))
        if self.ratio is not None:
            out.append(("ratio", self.ratio.describe()))
        if self.consecutive_periods is not None:
            out.append(("consecutive_periods", self.consecutive_periods.describe()))
        return out

    def failed_conditions(self, facts: Facts) -> list[str]:
        """The conditions ``facts`` do not meet (empty: the rule matches)."""
        failed = []
        if facts.check not in self.checks:
            failed.append("check")
        enforcement = facts.enforcement or NO_CONTRACT
        if self.enforcement is not None and enforcement not in self.enforcement:
            failed.append("enforcement")
        segment = (facts.segment or "").lower()
        if self.segments is not None and segment not in self.segments:
            failed.append("segment")
        jurisdiction = (facts.jurisdiction or "").upper()
        if self.jurisdictions is not None and jurisdiction not in self.jurisdictions:
            failed.append("jurisdiction")
        if self.ratio is not None and not self.ratio.contains(facts.ratio):
            failed.append("ratio")
        if self.consecutive_periods is not None and not self.consecutive_periods.contains(
            float(facts.consecutive_periods)
        ):
            failed.append("consecutive_periods")
        return failed

    def matches(self, facts: Facts) -> bool:
        return not self.failed_conditions(facts)


@dataclass(frozen=True)
class Facts:
    """What the conditions of a rule look at, for one finding."""

    check: str
    enforcement: str | None = None
    segment: str | None = None
    jurisdiction: str | None = None
    ratio: float = math.nan
    consecutive_periods: int = 1


@dataclass(frozen=True)
class PolicyBundle:
    version: str
    content_hash: str
    near_limit_ratio: float
    billing_tolerance: float
    anomaly: AnomalyRule
    rules: tuple[Rule, ...]
    fallback: Rule
    path: str = ""
    description: str = ""
    # (file name, text) of every file, so the repository can keep the bundle whole.
    files: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def short_hash(self) -> str:
        return self.content_hash[:12]

    @property
    def label(self) -> str:
        return f"{self.version} ({self.short_hash})"

    def rule(self, rule_id: str) -> Rule:
        if rule_id == FALLBACK_RULE_ID:
            return self.fallback
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(f"policy {self.version} has no rule '{rule_id}'")

    def decide_facts(self, facts: Facts) -> Rule:
        """The rule that fires for one finding: the matching rule of highest priority."""
        matching = [r for r in self.rules if r.matches(facts)]
        if not matching:
            return self.fallback
        return max(matching, key=lambda r: r.priority)  # max keeps the first of equals

    def decide(
        self,
        check: str,
        enforcement: str | None,
        *,
        segment: str | None = None,
        jurisdiction: str | None = None,
        ratio: float = math.nan,
        consecutive_periods: int = 1,
    ) -> Rule:
        return self.decide_facts(
            Facts(check, enforcement, segment, jurisdiction, ratio, consecutive_periods)
        )

    def uncovered_checks(self) -> list[str]:
        """Checks no rule names: their findings get the fallback."""
        named = {c for r in self.rules for c in r.checks}
        return [c for c in CHECKS if c not in named]


class PolicyValidationError(ContractError):
    """Every problem found in a bundle; the first one's file and line are the error's own."""

    def __init__(self, errors: Sequence[ContractError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.message, file=first.file, line=first.line, field=first.field)

    def __str__(self) -> str:
        if len(getattr(self, "errors", [])) <= 1:
            return super().__str__()
        lines = [f"{len(self.errors)} problems in the policy bundle:"]
        lines.extend(f"  {ContractError.__str__(e)}" for e in self.errors)
        return "\n".join(lines)


# --- reading files ------------------------------------------------------------------------


def bundle_files(path: Path) -> list[tuple[Path, bytes]]:
    """The file, or the folder's ``*.yaml``/``*.yml`` files in name order."""
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.is_file() and p.suffix.lower() in BUNDLE_SUFFIXES
        )
        if not files:
            raise ContractError("the policy folder holds no *.yaml files", file=path)
        return [(p, p.read_bytes()) for p in files]
    if not path.is_file():
        raise ContractError(
            "policy bundle not found; point LICENSING_POLICY_PATH at a YAML file or a folder "
            "of them",
            file=path,
        )
    return [(path, path.read_bytes())]


def content_hash(files: Sequence[tuple[str, bytes]], *, folder: bool) -> str:
    """SHA-256 of a single file's bytes; for a folder, of its manifest (name + file hash)."""
    if not folder:
        return hashlib.sha256(files[0][1]).hexdigest()
    manifest = "".join(
        f"{name}\0{hashlib.sha256(raw).hexdigest()}\n" for name, raw in sorted(files)
    )
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def bundle_content_hash(path: Path) -> str:
    """The hash of what the path holds now, without validating it (the sensor's question)."""
    files = bundle_files(path)
    return content_hash([(p.name, raw) for p, raw in files], folder=path.is_dir())


def load_policy(path: Path) -> PolicyBundle:
    path = Path(path)
    files = bundle_files(path)
    texts = []
    for file, raw in files:
        try:
            texts.append((str(file), raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise ContractError(f"not UTF-8 text ({exc.reason})", file=file) from None
    return parse_policy_texts(
        texts,
        content_hash=content_hash([(p.name, raw) for p, raw in files], folder=path.is_dir()),
        source=str(path),
    )


# --- validation ---------------------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.errors: list[ContractError] = []

    def add(self, doc: LocatedYaml, message: str, *path: str | int) -> None:
        self.errors.append(doc.error(message, *path))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(
    doc: LocatedYaml,
    problems: _Problems,
    value: Any,
    default: float,
    low: float,
    high: float | None,
    *path: str,
    integer: bool = False,
) -> float:
    if value is None:
        return default
    kind = "whole number" if integer else "number"
    if not (_is_int(value) if integer else _is_number(value)):
        problems.add(doc, f"must be a {kind}, got {value!r}", *path)
        return default
    if value < low or (high is not None and value > high):
        bound = f"between {_num(low)} and {_num(high)}" if high is not None else f"at least {low:g}"
        problems.add(doc, f"must be {bound}, got {value}", *path)
        return default
    return float(value)


def _mapping(
    doc: LocatedYaml, problems: _Problems, value: Any, allowed: Iterable[str], *path: str | int
) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(doc, "must be a mapping", *path)
        return {}
    allowed = tuple(allowed)
    for key in value:
        if key not in allowed:
            problems.add(
                doc, f"unknown field '{key}' (known: {', '.join(allowed)})", *path, str(key)
            )
    return value


def _choice(
    doc: LocatedYaml,
    problems: _Problems,
    value: Any,
    allowed: Sequence[str],
    what: str,
    *path: str | int,
) -> str | None:
    if value not in allowed:
        problems.add(doc, f"{what} must be one of {', '.join(allowed)}, got {value!r}", *path)
        return None
    return str(value)


def _values(
    doc: LocatedYaml,
    problems: _Problems,
    value: Any,
    *path: str | int,
    allowed: Sequence[str] | None = None,
    what: str = "",
) -> tuple[str, ...] | None:
    """One value or a list of them (None: the condition is absent)."""
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in items):
        problems.add(doc, "must be a name or a non-empty list of names", *path)
        return None
    out = []
    for index, item in enumerate(items):
        text = str(item).strip()
        where = (*path, index) if isinstance(value, list) else path
        if allowed is not None and text not in allowed:
            problems.add(doc, f"{what} must be one of {', '.join(allowed)}, got {text!r}", *where)
            continue
        out.append(text)
    return tuple(dict.fromkeys(out)) if out else None


def _range(
    doc: LocatedYaml, problems: _Problems, value: Any, *path: str | int, integer: bool, low: float
) -> Range | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.add(doc, "must be a mapping like {at_least: 1.5, below: 2}", *path)
        return None
    raw = _mapping(doc, problems, value, RANGE_FIELDS, *path)
    if not raw:
        problems.add(doc, "give at_least and/or below", *path)
        return None
    bounds: dict[str, float | None] = {}
    for key in RANGE_FIELDS:
        bound = raw.get(key)
        if bound is None:
            bounds[key] = None
            continue
        ok = _is_int(bound) if integer else _is_number(bound)
        if not ok:
            kind = "whole number" if integer else "number"
            problems.add(doc, f"must be a {kind}, got {bound!r}", *path, key)
            return None
        if bound < low:
            problems.add(doc, f"must be at least {_num(low)}, got {bound}", *path, key)
            return None
        bounds[key] = float(bound)
    at_least, below = bounds.get("at_least"), bounds.get("below")
    if at_least is not None and below is not None and below <= at_least:
        problems.add(doc, f"below ({_num(below)}) must be above at_least ({_num(at_least)})", *path)
        return None
    return Range(at_least=at_least, below=below)


@dataclass
class _Defaults:
    grace_periods: int = 0
    escalate_every: int = 0
    escalate_up_to: str = "suspend"


def _outcome_modifiers(
    doc: LocatedYaml,
    problems: _Problems,
    raw: dict[str, Any],
    base: _Defaults,
    *path: str | int,
) -> _Defaults:
    out = _Defaults(base.grace_periods, base.escalate_every, base.escalate_up_to)
    for key in ("grace_periods", "escalate_every"):
        if raw.get(key) is not None:
            value = raw[key]
            if not _is_int(value) or value < 0:
                problems.add(doc, f"{key} must be a whole number >= 0, got {value!r}", *path, key)
            else:
                setattr(out, key, int(value))
    if raw.get("escalate_up_to") is not None:
        cap = _choice(
            doc, problems, raw["escalate_up_to"], ACTIONS, "escalate_up_to", *path, "escalate_up_to"
        )
        if cap is not None:
            out.escalate_up_to = cap
    return out


def _parse_rule(
    doc: LocatedYaml, problems: _Problems, raw: Any, index: int, defaults: _Defaults
) -> Rule | None:
    path: tuple[str | int, ...] = ("rules", index)
    if not isinstance(raw, dict):
        problems.add(doc, "each rule is a mapping", *path)
        return None
    before = len(problems.errors)
    _mapping(doc, problems, raw, RULE_FIELDS, *path)
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
        problems.add(
            doc,
            "every rule needs an id: letters, digits, '-', '_', '.', ':' (at most 64), "
            f"got {rule_id!r}",
            *path,
            "id",
        )
    if "check" not in raw:
        problems.add(doc, "a rule must name its check(s)", *path)
    checks = _values(doc, problems, raw.get("check"), *path, "check", allowed=CHECKS, what="check")
    enforcement = _values(
        doc,
        problems,
        raw.get("enforcement"),
        *path,
        "enforcement",
        allowed=ENFORCEMENT_VALUES,
        what="enforcement",
    )
    segments = _values(doc, problems, raw.get("segment"), *path, "segment")
    jurisdictions = _values(doc, problems, raw.get("jurisdiction"), *path, "jurisdiction")
    ratio = _range(doc, problems, raw.get("ratio"), *path, "ratio", integer=False, low=0)
    streak = _range(
        doc,
        problems,
        raw.get("consecutive_periods"),
        *path,
        "consecutive_periods",
        integer=True,
        low=1,
    )
    severity = _choice(
        doc, problems, raw.get("severity"), SEVERITIES, "severity", *path, "severity"
    )
    action = _choice(doc, problems, raw.get("action"), ACTIONS, "action", *path, "action")
    priority = raw.get("priority", 0)
    if not _is_int(priority):
        problems.add(doc, f"priority must be a whole number, got {priority!r}", *path, "priority")
        priority = 0
    description = raw.get("description") or ""
    if not isinstance(description, str):
        problems.add(doc, "description must be text", *path, "description")
        description = ""
    modifiers = _outcome_modifiers(doc, problems, raw, defaults, *path)
    if action is not None and ACTIONS.index(modifiers.escalate_up_to) < ACTIONS.index(action):
        problems.add(
            doc,
            f"escalate_up_to ({modifiers.escalate_up_to}) is below the rule's action ({action})",
            *path,
            "escalate_up_to" if "escalate_up_to" in raw else "action",
        )
    if len(problems.errors) > before or not checks or severity is None or action is None:
        return None
    return Rule(
        id=str(rule_id),
        checks=checks,
        severity=severity,
        action=action,
        enforcement=enforcement,
        segments=tuple(s.lower() for s in segments) if segments else None,
        jurisdictions=tuple(j.upper() for j in jurisdictions) if jurisdictions else None,
        ratio=ratio,
        consecutive_periods=streak,
        priority=int(priority),
        grace_periods=modifiers.grace_periods,
        escalate_every=modifiers.escalate_every,
        escalate_up_to=modifiers.escalate_up_to,
        description=description.strip(),
        file=str(doc.file),
        line=doc.line(*path),
    )


def _sets_overlap(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> bool:
    return a is None or b is None or bool(set(a) & set(b))


def overlap(a: Rule, b: Rule) -> str | None:
    """A description of findings both rules match, or None when no finding can match both."""
    if not set(a.checks) & set(b.checks):
        return None
    if not (
        _sets_overlap(a.enforcement, b.enforcement)
        and _sets_overlap(a.segments, b.segments)
        and _sets_overlap(a.jurisdictions, b.jurisdictions)
    ):
        return None
    for left, right in ((a.ratio, b.ratio), (a.consecutive_periods, b.consecutive_periods)):
        if left is not None and right is not None and not left.overlaps(right):
            return None
    shared = [c for c in a.checks if c in b.checks]
    parts = [f"check {' or '.join(shared)}"]
    for name, left_set, right_set in (
        ("enforcement", a.enforcement, b.enforcement),
        ("segment", a.segments, b.segments),
        ("jurisdiction", a.jurisdictions, b.jurisdictions),
    ):
        if left_set is not None or right_set is not None:
            both = set(left_set or right_set or ()) & set(right_set or left_set or ())
            parts.append(f"{name} {' or '.join(sorted(both))}")
    return ", ".join(parts)


def _check_rules(rules: list[tuple[Rule, LocatedYaml, int]], problems: _Problems) -> None:
    seen: dict[str, Rule] = {}
    for rule, doc, index in rules:
        if rule.id in seen or rule.id == FALLBACK_RULE_ID:
            first = seen.get(rule.id)
            where = f" (first at {first.where})" if first else " (reserved for the fallback)"
            problems.add(doc, f"duplicate rule id '{rule.id}'{where}", "rules", index, "id")
        seen.setdefault(rule.id, rule)
    for j, (later, doc, index) in enumerate(rules):
        for earlier, _, _ in rules[:j]:
            if earlier.priority != later.priority:
                continue
            both = overlap(earlier, later)
            if both is not None:
                problems.add(
                    doc,
                    f"rule '{later.id}' and rule '{earlier.id}' ({earlier.where}) both match "
                    f"findings with {both}, at the same priority ({later.priority}); give the one "
                    "that should win a higher `priority`, or make their conditions exclusive",
                    "rules",
                    index,
                )


def parse_policy_texts(
    texts: Sequence[tuple[str, str]], *, content_hash: str, source: str
) -> PolicyBundle:
    """Validate and build a bundle from (file name, text) pairs; every problem is reported."""
    problems = _Problems()
    docs = [located_yaml_from_text(text, Path(name)) for name, text in texts]
    settings_doc: LocatedYaml | None = None
    for doc in docs:
        if not isinstance(doc.data, dict):
            problems.add(doc, "a policy file is a mapping (version, thresholds, rules, ...)")
            continue
        _mapping(doc, problems, doc.data, TOP_LEVEL)
        if "version" in doc.data:
            if settings_doc is not None:
                problems.add(
                    doc,
                    f"version is already declared in {settings_doc.file}; declare it (and the "
                    "thresholds, anomaly, defaults and fallback) in one file of the folder",
                    "version",
                )
            else:
                settings_doc = doc
    if problems.errors:
        raise PolicyValidationError(problems.errors)
    if settings_doc is None:
        raise PolicyValidationError(
            [docs[0].error("a policy bundle declares its 'version' (e.g. version: \"2026.11.0\")")]
        )
    data = settings_doc.data
    for doc in docs:
        if doc is not settings_doc:
            for key in SETTINGS:
                if key in doc.data:
                    problems.add(
                        doc, f"'{key}' belongs in {settings_doc.file}, with the version", key
                    )
    version = data.get("version")
    if not isinstance(version, str | int | float) or isinstance(version, bool) or not str(version):
        problems.add(settings_doc, 'version must be text like "2026.11.0"', "version")
    thresholds = _mapping(
        settings_doc,
        problems,
        data.get("thresholds"),
        ("near_limit_ratio", "billing_tolerance"),
        "thresholds",
    )
    anomaly = _mapping(
        settings_doc,
        problems,
        data.get("anomaly"),
        tuple(name for name, _, _ in ANOMALY_FIELDS),
        "anomaly",
    )
    raw_defaults = _mapping(
        settings_doc,
        problems,
        data.get("defaults"),
        ("grace_periods", "escalate_every", "escalate_up_to"),
        "defaults",
    )
    defaults = _outcome_modifiers(settings_doc, problems, raw_defaults, _Defaults(), "defaults")
    raw_fallback = _mapping(
        settings_doc, problems, data.get("fallback"), ("severity", "action"), "fallback"
    )
    if not raw_fallback and "fallback" not in data:
        problems.add(
            settings_doc,
            "a bundle needs a fallback: {severity: ..., action: ...} for findings no rule matches",
        )
    fallback_severity = _choice(
        settings_doc,
        problems,
        raw_fallback.get("severity", "warning"),
        SEVERITIES,
        "severity",
        "fallback",
        "severity",
    )
    fallback_action = _choice(
        settings_doc,
        problems,
        raw_fallback.get("action", "notify"),
        ACTIONS,
        "action",
        "fallback",
        "action",
    )
    parsed: list[tuple[Rule, LocatedYaml, int]] = []
    for doc in docs:
        raw_rules = doc.data.get("rules")
        if raw_rules is None:
            continue
        if not isinstance(raw_rules, list):
            problems.add(doc, "rules must be a list", "rules")
            continue
        for index, raw in enumerate(raw_rules):
            rule = _parse_rule(doc, problems, raw, index, defaults)
            if rule is not None:
                parsed.append((rule, doc, index))
    _check_rules(parsed, problems)
    near_limit = _number(
        settings_doc,
        problems,
        thresholds.get("near_limit_ratio"),
        0.8,
        0,
        1,
        "thresholds",
        "near_limit_ratio",
    )
    tolerance = _number(
        settings_doc,
        problems,
        thresholds.get("billing_tolerance"),
        0.01,
        0,
        None,
        "thresholds",
        "billing_tolerance",
    )
    anomaly_values: dict[str, Any] = {
        name: (int if integer else float)(
            _number(
                settings_doc,
                problems,
                anomaly.get(name),
                getattr(AnomalyRule, name),
                low,
                None,
                "anomaly",
                name,
                integer=integer,
            )
        )
        for name, low, integer in ANOMALY_FIELDS
    }
    anomaly_rule = AnomalyRule(**anomaly_values)
    description = data.get("description") or ""
    if problems.errors:
        raise PolicyValidationError(problems.errors)
    fallback = Rule(
        id=FALLBACK_RULE_ID,
        checks=CHECKS,
        severity=fallback_severity or "warning",
        action=fallback_action or "notify",
        priority=-(10**9),
        grace_periods=0,
        escalate_every=0,
        escalate_up_to=fallback_action or "notify",
        description="No rule matched: the bundle's fallback decides.",
        file=str(settings_doc.file),
        line=settings_doc.line("fallback"),
    )
    return PolicyBundle(
        version=str(version),
        content_hash=content_hash,
        near_limit_ratio=near_limit,
        billing_tolerance=tolerance,
        anomaly=anomaly_rule,
        rules=tuple(rule for rule, _, _ in parsed),
        fallback=fallback,
        path=source,
        description=str(description).strip(),
        files=tuple((Path(name).name, text) for name, text in texts),
    )


# --- the bundle in force ------------------------------------------------------------------


@dataclass(frozen=True)
class BundleResolution:
    """The bundle a run decides under, and why."""

    bundle: PolicyBundle
    configured_hash: str | None  # what LICENSING_POLICY_PATH holds now (None: unreadable)
    error: ContractError | None = None  # set when the configured bundle failed validation

    @property
    def fallback(self) -> bool:
        return self.error is not None


def resolve_bundle(path: Path, database_url: str | None) -> BundleResolution:
    """The configured bundle when it is valid, else the last good one the repository kept.

    With no last good bundle (or no repository) the configured bundle's error is raised:
    nothing is decided under a bundle that did not validate.
    """
    try:
        bundle = load_policy(path)
        return BundleResolution(bundle=bundle, configured_hash=bundle.content_hash)
    except ContractError as exc:
        if not database_url:
            raise
        from licensing_pipeline.policy.store import last_good_bundle
        from licensing_pipeline.repository.resources import checked_engine

        previous = last_good_bundle(checked_engine(database_url))
        if previous is None:
            raise
        try:
            configured: str | None = bundle_content_hash(path)
        except (ContractError, OSError):
            configured = None
        return BundleResolution(bundle=previous, configured_hash=configured, error=exc)


# One resolution per (run, path, repository): every step of a run decides under the same
# bundle, even if the file changes while the run is going.
_PINNED: dict[tuple[str, str, str], BundleResolution] = {}
_PINNED_RUNS = 16


class PolicyResource(dg.ConfigurableResource):
    """Where the policy bundle lives (``LICENSING_POLICY_PATH``: a file or a folder of YAML).

    Read afresh by every run (no redeploy for a new bundle). With ``database_url`` set, a
    bundle that fails validation leaves the last good one in force instead of failing the run.
    """

    path: str
    database_url: str = ""
    _run_id: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_id = context.run_id

    def resolve(self) -> BundleResolution:
        key = (self._run_id, self.path, self.database_url) if self._run_id else None
        if key is not None and key in _PINNED:
            return _PINNED[key]
        resolution = resolve_bundle(Path(self.path), self.database_url or None)
        if key is not None:
            while len(_PINNED) >= _PINNED_RUNS:
                _PINNED.pop(next(iter(_PINNED)))
            _PINNED[key] = resolution
        return resolution

    def load(self) -> PolicyBundle:
        return self.resolve().bundle

    def configured_hash(self) -> str:
        """The hash of the configured bundle's content, valid or not."""
        return bundle_content_hash(Path(self.path))
