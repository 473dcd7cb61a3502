"""The policy a run is judged by, and the verdicts: PASS / FAIL / SKIPPED per check.

A policy is a YAML file of checks (see `default.yaml`, shipped with the package, for the format
and the default thresholds). Each check compares one value of report.json with a threshold, so
anyone can recompute the verdicts from report.json and the policy alone; `judge` does it when
the report is built. The policy is public (it is no private data), and the report names the
policy it was judged by and its SHA-256.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from tdd_priv.errors import ConfigError

__all__ = [
    "DEFAULT_POLICY",
    "Check",
    "Policy",
    "judge",
    "load_policy",
    "report_number",
    "report_value",
]

DEFAULT_POLICY = "default.yaml"
_CHECK_KEYS = {
    "description",
    "value",
    "minus",
    "divide_by",
    "max",
    "min",
    "max_from",
    "if_missing",
}


@dataclass(frozen=True)
class Check:
    """One policy check: `value` (dotted report path, optionally minus `minus` and divided by
    `divide_by`) must be <= `max` (or the report value at `max_from`), or >= `min`."""

    name: str
    value: str
    description: str = ""
    minus: str | None = None
    divide_by: str | None = None
    max: float | None = None
    min: float | None = None
    max_from: str | None = None
    if_missing: Literal["skip", "fail"] = "skip"


@dataclass(frozen=True)
class Policy:
    name: str
    source: str  # "default" or the file it was read from
    sha256: str
    checks: tuple[Check, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "sha256": self.sha256}


def _check(name: str, spec: Any, where: str) -> Check:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: check {name!r} must be a mapping with at least 'value'.")
    unknown = sorted(set(spec) - _CHECK_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: check {name!r} has unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_CHECK_KEYS))}."
        )
    if not isinstance(spec.get("value"), str):
        raise ConfigError(f"{where}: check {name!r} needs 'value', a dotted report.json path.")
    bounds = [key for key in ("max", "min", "max_from") if spec.get(key) is not None]
    if len(bounds) != 1:
        raise ConfigError(
            f"{where}: check {name!r} needs exactly one of 'max', 'min', 'max_from' "
            f"(has {', '.join(bounds) or 'none'})."
        )
    for key in ("max", "min"):
        value = spec.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"{where}: check {name!r}: '{key}' must be a number, got {value!r}.")
    if spec.get("if_missing", "skip") not in ("skip", "fail"):
        raise ConfigError(f"{where}: check {name!r}: 'if_missing' must be 'skip' or 'fail'.")
    return Check(
        name=name,
        value=spec["value"],
        description=str(spec.get("description", "")),
        minus=spec.get("minus"),
        divide_by=spec.get("divide_by"),
        max=None if spec.get("max") is None else float(spec["max"]),
        min=None if spec.get("min") is None else float(spec["min"]),
        max_from=spec.get("max_from"),
        if_missing=spec.get("if_missing", "skip"),
    )


def load_policy(path: Path | None = None) -> Policy:
    """The policy in `path`, or the shipped default; errors name the file and the fix."""
    if path is None:
        text = resources.files(__name__).joinpath(DEFAULT_POLICY).read_text(encoding="utf-8")
        where, source = "the default policy", "default"
    else:
        if not path.is_file():
            raise ConfigError(f"policy file not found: {path}. Pass --policy with a YAML file.")
        text, where, source = path.read_text(encoding="utf-8"), str(path), str(path)
    try:
        payload = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{where} is not valid YAML: {error}") from error
    if not isinstance(payload, Mapping) or not isinstance(payload.get("checks"), Mapping):
        raise ConfigError(
            f"{where} must be a mapping with a 'checks' mapping (see tdd_priv/policy/"
            f"{DEFAULT_POLICY} for the format)."
        )
    checks = tuple(_check(str(name), spec, where) for name, spec in payload["checks"].items())
    return Policy(
        name=str(payload.get("name", source)),
        source=source,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        checks=checks,
    )


def report_value(report: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted `path` of a report ("utility.realized.accuracy_mean"), or None
    where the report does not hold it."""
    node: Any = report
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def report_number(report: Mapping[str, Any], path: str) -> float | None:
    """The finite number at a dotted `path` of a report, or None (absent, null, not a number)."""
    value = report_value(report, path)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _measure(report: Mapping[str, Any], check: Check) -> float | None:
    value = report_number(report, check.value)
    if value is None:
        return None
    if check.minus is not None:
        minus = report_number(report, check.minus)
        value = None if minus is None else value - minus
    if value is not None and check.divide_by is not None:
        divisor = report_number(report, check.divide_by)
        value = None if not divisor else value / divisor
    return value


def _verdict(report: Mapping[str, Any], check: Check) -> dict[str, Any]:
    value = _measure(report, check)
    threshold = check.max if check.max is not None else check.min
    if check.max_from is not None:
        threshold = report_number(report, check.max_from)
    if value is None:
        status = "FAIL" if check.if_missing == "fail" else "SKIPPED"
        note = f"{check.value} is not in the report"
        if check.if_missing == "fail":
            note += " (the policy requires it)"
        return {"status": status, "value": None, "threshold": threshold, "note": note}
    if threshold is None:
        return {
            "status": "SKIPPED",
            "value": value,
            "threshold": None,
            "note": f"no threshold: {check.max_from} is not in the report",
        }
    passed = value >= threshold if check.min is not None else value <= threshold
    verdict = {"status": "PASS" if passed else "FAIL", "value": value, "threshold": threshold}
    if check.description:
        verdict["note"] = check.description
    return verdict


def judge(policy: Policy, report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Check name -> {"status": PASS|FAIL|SKIPPED, "value", "threshold", "note"}, in policy
    order, for report.json's content."""
    return {check.name: _verdict(report, check) for check in policy.checks}
