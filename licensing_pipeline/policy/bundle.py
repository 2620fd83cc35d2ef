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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from licensing_pipeline.contract.errors import ContractError
from licensing_pipeline.contract.schemas import ACTIONS, CHECKS
from licensing_pipeline.contract.yaml_lines import LocatedYaml, located_yaml_from_text
from licensing_pipeline.policy.schema import (
    NO_CONTRACT,
    SETTINGS,
    AnomalyRule,
    Defaults,
    PeriodRange,
    PolicyFile,
    RatioRange,
    RuleSpec,
    valid_fields,
    valid_part,
    validate_file,
)

FALLBACK_RULE_ID = "fallback"
BUNDLE_SUFFIXES = (".yaml", ".yml")


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
    ratio: RatioRange | None = None
    consecutive_periods: PeriodRange | None = None
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


# --- validating the bundle as a whole ---------------------------------------------------


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


def _rule_conflicts(rules: list[tuple[Rule, LocatedYaml, int]]) -> list[ContractError]:
    """Duplicate ids, and rules that can match the same finding at the same priority."""
    problems = []
    seen: dict[str, Rule] = {}
    for rule, doc, index in rules:
        if rule.id in seen or rule.id == FALLBACK_RULE_ID:
            first = seen.get(rule.id)
            where = f" (first at {first.where})" if first else " (reserved for the fallback)"
            problems.append(
                doc.error(f"duplicate rule id '{rule.id}'{where}", "rules", index, "id")
            )
        seen.setdefault(rule.id, rule)
    for j, (later, doc, index) in enumerate(rules):
        for earlier, _, _ in rules[:j]:
            if earlier.priority != later.priority:
                continue
            both = overlap(earlier, later)
            if both is not None:
                problems.append(
                    doc.error(
                        f"rule '{later.id}' and rule '{earlier.id}' ({earlier.where}) both match "
                        f"findings with {both}, at the same priority ({later.priority}); give the "
                        "one that should win a higher `priority`, or make their conditions "
                        "exclusive",
                        "rules",
                        index,
                    )
                )
    return problems


def _settings_file(docs: Sequence[LocatedYaml], problems: list[ContractError]) -> int | None:
    """The one file that declares the version; the bundle's settings live there too."""
    declaring = [
        i for i, doc in enumerate(docs) if isinstance(doc.data, dict) and "version" in doc.data
    ]
    if not declaring:
        if all(isinstance(doc.data, dict) for doc in docs):  # else it may be in the broken one
            problems.append(
                docs[0].error(
                    "a policy bundle declares its 'version' (e.g. version: \"2026.11.0\")"
                )
            )
        return None
    home = docs[declaring[0]]
    for i in declaring[1:]:
        problems.append(
            docs[i].error(
                f"version is already declared in {home.file}; declare it (and the thresholds, "
                "anomaly, defaults and fallback) in one file of the folder",
                "version",
            )
        )
    for doc in docs:
        if doc is not home and isinstance(doc.data, dict):
            problems.extend(
                doc.error(f"'{key}' belongs in {home.file}, with the version", key)
                for key in SETTINGS
                if key in doc.data
            )
    if "fallback" not in home.data:
        problems.append(
            home.error(
                "a bundle needs a fallback: {severity: ..., action: ...} for findings no rule "
                "matches"
            )
        )
    return declaring[0]


def _rule_specs(doc: LocatedYaml, spec: PolicyFile | None) -> list[tuple[int, RuleSpec]]:
    """The file's rules that validate, by their index in the file."""
    if spec is not None:
        return list(enumerate(spec.rules))
    raw = doc.data.get("rules") if isinstance(doc.data, dict) else None
    items = enumerate(raw) if isinstance(raw, list) else ()
    return [(i, rule) for i, item in items if (rule := valid_part(RuleSpec, item)) is not None]


def _rule(spec: RuleSpec, defaults: Defaults, doc: LocatedYaml, index: int) -> Rule:
    def default(value: int | None, fallback: int) -> int:
        return fallback if value is None else value

    return Rule(
        id=spec.id,
        checks=spec.check,
        severity=spec.severity,
        action=spec.action,
        enforcement=spec.enforcement,
        segments=tuple(s.lower() for s in spec.segment) if spec.segment else None,
        jurisdictions=tuple(j.upper() for j in spec.jurisdiction) if spec.jurisdiction else None,
        ratio=spec.ratio,
        consecutive_periods=spec.consecutive_periods,
        priority=spec.priority,
        grace_periods=default(spec.grace_periods, defaults.grace_periods),
        escalate_every=default(spec.escalate_every, defaults.escalate_every),
        escalate_up_to=spec.escalate_up_to or defaults.escalate_up_to,
        description=spec.description,
        file=str(doc.file),
        line=doc.line("rules", index),
    )


def parse_policy_texts(
    texts: Sequence[tuple[str, str]], *, content_hash: str, source: str
) -> PolicyBundle:
    """Validate and build a bundle from (file name, text) pairs; every problem is reported."""
    docs = [located_yaml_from_text(text, Path(name)) for name, text in texts]
    problems: list[ContractError] = []
    specs: list[PolicyFile | None] = []
    for doc in docs:
        spec, file_problems = validate_file(doc)
        specs.append(spec)
        problems.extend(file_problems)
    home = _settings_file(docs, problems)
    settings = specs[home] if home is not None else None
    raw_defaults = docs[home].data.get("defaults") if home is not None else None
    defaults = settings.defaults if settings else valid_fields(Defaults, raw_defaults)
    parsed: list[tuple[Rule, LocatedYaml, int]] = []
    for doc, spec in zip(docs, specs, strict=True):
        for index, rule_spec in _rule_specs(doc, spec):
            rule = _rule(rule_spec, defaults, doc, index)
            if ACTIONS.index(rule.escalate_up_to) >= ACTIONS.index(rule.action):
                parsed.append((rule, doc, index))
                continue
            capped = "escalate_up_to" in rule_spec.model_fields_set
            problems.append(
                doc.error(
                    f"escalate_up_to ({rule.escalate_up_to}) is below the rule's action "
                    f"({rule.action})",
                    "rules",
                    index,
                    "escalate_up_to" if capped else "action",
                )
            )
    problems.extend(_rule_conflicts(parsed))
    if problems or settings is None or home is None:
        raise PolicyValidationError(problems)
    fallback = Rule(
        id=FALLBACK_RULE_ID,
        checks=CHECKS,
        severity=settings.fallback.severity,
        action=settings.fallback.action,
        priority=-(10**9),
        escalate_up_to=settings.fallback.action,
        description="No rule matched: the bundle's fallback decides.",
        file=str(docs[home].file),
        line=docs[home].line("fallback"),
    )
    return PolicyBundle(
        version=str(settings.version),
        content_hash=content_hash,
        near_limit_ratio=settings.thresholds.near_limit_ratio,
        billing_tolerance=settings.thresholds.billing_tolerance,
        anomaly=settings.anomaly,
        rules=tuple(rule for rule, _, _ in parsed),
        fallback=fallback,
        path=source,
        description=settings.description,
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


class PolicyResource(dg.ConfigurableResource):
    """Where the policy bundle lives (``LICENSING_POLICY_PATH``: a file or a folder of YAML).

    Read afresh by every run (no redeploy for a new bundle), once: every step of a run decides
    under the same bundle, even if the files change while the run goes. With ``database_url``
    set, a bundle that fails validation leaves the last good one in force instead of failing
    the run.
    """

    path: str
    database_url: str = ""
    _in_run: bool = PrivateAttr(default=False)
    _resolution: BundleResolution | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._in_run = context.run_id is not None

    def resolve(self) -> BundleResolution:
        if self._resolution is not None:
            return self._resolution
        resolution = resolve_bundle(Path(self.path), self.database_url or None)
        if self._in_run:
            self._resolution = resolution
        return resolution

    def load(self) -> PolicyBundle:
        return self.resolve().bundle

    def configured_hash(self) -> str:
        """The hash of the configured bundle's content, valid or not."""
        return bundle_content_hash(Path(self.path))
