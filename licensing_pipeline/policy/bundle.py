"""Policy bundles: the thresholds and rules that turn check results into decisions.

A bundle is a YAML file with a declared ``version``; its content hash is computed, so a
finding can say exactly which text it was decided under.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from licensing_pipeline.contract.schemas import ACTIONS, CHECKS, ENFORCEMENTS, SEVERITIES
from licensing_pipeline.contract.yaml_lines import LocatedYaml, load_located_yaml


@dataclass(frozen=True)
class AnomalyRule:
    ratio: float = 5.0
    noise_sigmas: float = 6.0
    baseline_days: int = 28
    min_history_days: int = 14


@dataclass(frozen=True)
class Rule:
    check: str
    severity: str
    action: str
    enforcement: str | None = None
    line: int | None = None

    def matches(self, check: str, enforcement: str | None) -> bool:
        return self.check == check and (self.enforcement is None or self.enforcement == enforcement)


@dataclass(frozen=True)
class PolicyBundle:
    version: str
    content_hash: str
    near_limit_ratio: float
    billing_tolerance: float
    anomaly: AnomalyRule
    rules: tuple[Rule, ...]
    path: str = ""

    def decide(self, check: str, enforcement: str | None) -> Rule:
        for rule in self.rules:
            if rule.matches(check, enforcement):
                return rule
        raise KeyError(f"no rule in policy {self.version} decides check '{check}'")


def _number(doc: LocatedYaml, value: Any, low: float, high: float | None, *path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise doc.error(f"must be a number, got {value!r}", *path)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise doc.error(f"must be {bound}, got {value}", *path)
    return float(value)


def parse_policy(doc: LocatedYaml, content: bytes) -> PolicyBundle:
    data = doc.data
    if not isinstance(data, dict) or "version" not in data:
        raise doc.error("a policy bundle is a mapping with a 'version'")
    thresholds = data.get("thresholds") or {}
    anomaly = data.get("anomaly") or {}
    rules: list[Rule] = []
    for index, raw in enumerate(data.get("rules") or []):
        if not isinstance(raw, dict):
            raise doc.error("each rule is a mapping", "rules", index)
        unknown = set(raw) - {"check", "enforcement", "severity", "action", "description"}
        if unknown:
            raise doc.error(f"unknown field '{sorted(unknown)[0]}'", "rules", index)
        for key, allowed in (
            ("check", CHECKS),
            ("severity", SEVERITIES),
            ("action", ACTIONS),
        ):
            if raw.get(key) not in allowed:
                raise doc.error(
                    f"{key} must be one of {', '.join(allowed)}, got {raw.get(key)!r}",
                    "rules",
                    index,
                    key,
                )
        if raw.get("enforcement") is not None and raw["enforcement"] not in ENFORCEMENTS:
            raise doc.error("enforcement must be hard or soft", "rules", index, "enforcement")
        rules.append(
            Rule(
                check=raw["check"],
                severity=raw["severity"],
                action=raw["action"],
                enforcement=raw.get("enforcement"),
                line=doc.line("rules", index),
            )
        )
    undecided = [c for c in CHECKS if not any(r.check == c for r in rules)]
    if undecided:
        raise doc.error(f"no rule decides check(s): {', '.join(undecided)}", "rules")
    return PolicyBundle(
        version=str(data["version"]),
        content_hash=hashlib.sha256(content).hexdigest()[:16],
        near_limit_ratio=_number(
            doc, thresholds.get("near_limit_ratio", 0.8), 0, 1, "thresholds", "near_limit_ratio"
        ),
        billing_tolerance=_number(
            doc,
            thresholds.get("billing_tolerance", 0.01),
            0,
            None,
            "thresholds",
            "billing_tolerance",
        ),
        anomaly=AnomalyRule(
            ratio=_number(doc, anomaly.get("ratio", 5.0), 1, None, "anomaly", "ratio"),
            noise_sigmas=_number(
                doc, anomaly.get("noise_sigmas", 6.0), 0, None, "anomaly", "noise_sigmas"
            ),
            baseline_days=int(
                _number(doc, anomaly.get("baseline_days", 28), 1, None, "anomaly", "baseline_days")
            ),
            min_history_days=int(
                _number(
                    doc, anomaly.get("min_history_days", 14), 1, None, "anomaly", "min_history_days"
                )
            ),
        ),
        rules=tuple(rules),
        path=str(doc.file),
    )


def load_policy(path: Path) -> PolicyBundle:
    return parse_policy(load_located_yaml(path), path.read_bytes())


class PolicyResource(dg.ConfigurableResource):
    """Where the policy bundle lives (``LICENSING_POLICY_PATH``); read afresh by every run."""

    path: str

    def load(self) -> PolicyBundle:
        return load_policy(Path(self.path))
