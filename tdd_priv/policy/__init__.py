"""The policy a run is judged by, and the verdicts: PASS / FAIL / INCONCLUSIVE / SKIPPED per check.

A policy is a YAML file of checks (see `default.yaml`, shipped with the package, for the format
and the default thresholds). Each check compares one value of report.json with a threshold, so
anyone can recompute the verdicts from report.json and the policy alone; `judge` does it when
the report is built. Every verdict carries what it rests on: the value, the threshold, the
value's interval where the report has one, and whether the test could have failed at all
(`can_fail`), with a note. A test that could not have failed says INCONCLUSIVE, never PASS.

Every report path a check names must be a field of report.json's schema: a misspelled path is
an error when the policy is loaded, not a check that is silently SKIPPED forever. The policy is
public (it is no private data), and the report names the policy it was judged by and its SHA-256.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from tdd_priv.errors import ConfigError

__all__ = [
    "DEFAULT_POLICY",
    "STATUSES",
    "Check",
    "Policy",
    "judge",
    "load_policy",
    "report_number",
    "report_value",
    "schema_has_path",
]

DEFAULT_POLICY = "default.yaml"
STATUSES = ("PASS", "FAIL", "INCONCLUSIVE", "SKIPPED")
Status = Literal["PASS", "FAIL", "INCONCLUSIVE", "SKIPPED"]

# Check keys that name a report path (all validated against the report schema on load).
_PATH_KEYS = (
    "value",
    "minus",
    "divide_by",
    "max_from",
    "interval",
    "ceiling",
    "floor",
    "applies_if",
    "measurable_if",
)
_CHECK_KEYS = {"description", "max", "min", "if_missing", *_PATH_KEYS}


@dataclass(frozen=True)
class Check:
    """One policy check: `value` (dotted report path, optionally minus `minus` and divided by
    `divide_by`) must be <= `max` (or the report value at `max_from`), or >= `min`.

    What the verdict also rests on (all report paths): `interval`, a [low, high] pair around the
    value; `ceiling` (max checks), the largest value the measurement can reach, and `floor` (min
    checks), the smallest: a check that cannot cross its threshold is INCONCLUSIVE;
    `applies_if`, a boolean: false makes the check SKIPPED (not applicable); `measurable_if`, a
    boolean: false means the sample is too small to measure the quantity and the value is only a
    lower estimate of it, which can settle a FAIL of a max check (a PASS of a min check) but
    nothing else: the rest is INCONCLUSIVE.
    """

    name: str
    value: str
    description: str = ""
    minus: str | None = None
    divide_by: str | None = None
    max: float | None = None
    min: float | None = None
    max_from: str | None = None
    if_missing: Literal["skip", "fail"] = "skip"
    interval: str | None = None
    ceiling: str | None = None
    floor: str | None = None
    applies_if: str | None = None
    measurable_if: str | None = None

    @property
    def is_max(self) -> bool:
        return self.min is None

    def paths(self) -> Iterator[tuple[str, str]]:
        """(key, report path) for every path the check names."""
        for key in _PATH_KEYS:
            path = getattr(self, key)
            if path is not None:
                yield key, path


@dataclass(frozen=True)
class Policy:
    name: str
    source: str  # "default" or the file it was read from
    sha256: str
    checks: tuple[Check, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "sha256": self.sha256}


# --- report paths and the schema -------------------------------------------------------------


def _resolve(node: Any, parts: Sequence[str]) -> tuple[bool, Any]:
    """(found, value) at `parts` below `node`. A key may itself contain dots
    ("tpr_at_0.1pct_fpr"): the longest key that matches is tried first."""
    if not parts:
        return True, node
    if not isinstance(node, Mapping):
        return False, None
    for cut in range(len(parts), 0, -1):
        key = ".".join(parts[:cut])
        if key in node:
            found, value = _resolve(node[key], parts[cut:])
            if found:
                return True, value
    return False, None


def report_value(report: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted `path` of a report ("utility.realized.accuracy_mean"), or None
    where the report does not hold it. Keys containing dots ("tpr_at_0.1pct_fpr") resolve."""
    return _resolve(report, path.split("."))[1]


def report_number(report: Mapping[str, Any], path: str) -> float | None:
    """The finite number at a dotted `path` of a report, or None (absent, null, not a number)."""
    value = report_value(report, path)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _schema_branches(node: Mapping[str, Any], root: Mapping[str, Any]) -> Iterator[Mapping]:
    """`node` and every subschema it is combined with ($ref, allOf/anyOf/oneOf, if/then/else)."""
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        yield from _schema_branches(target, root)
    yield node
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in node.get(key, ()):
            yield from _schema_branches(sub, root)
    for key in ("then", "else"):
        if isinstance(node.get(key), Mapping):
            yield from _schema_branches(node[key], root)


def _schema_children(
    node: Mapping[str, Any], root: Mapping[str, Any]
) -> tuple[dict[str, Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(declared properties, explicit additionalProperties schemas) of a schema node. The JSON
    Schema default (anything goes) does not count: a path must be declared to be valid."""
    named: dict[str, Mapping[str, Any]] = {}
    other: list[Mapping[str, Any]] = []
    for branch in _schema_branches(node, root):
        for key, sub in branch.get("properties", {}).items():
            named.setdefault(key, sub)
        extra = branch.get("additionalProperties")
        if isinstance(extra, Mapping):
            other.append(extra)
    return named, other


def _schema_walk(node: Mapping[str, Any], parts: Sequence[str], root: Mapping[str, Any]) -> bool:
    if not parts:
        return True
    named, other = _schema_children(node, root)
    for cut in range(len(parts), 0, -1):
        key = ".".join(parts[:cut])
        if key in named and _schema_walk(named[key], parts[cut:], root):
            return True
    return any(_schema_walk(extra, parts[1:], root) for extra in other)


def schema_has_path(path: str, schema: Mapping[str, Any] | None = None) -> bool:
    """Whether `path` is a declared field of report.json: every segment is under `properties`,
    or under an explicit `additionalProperties` schema (default: the current report schema)."""
    schema = _current_schema() if schema is None else schema
    return _schema_walk(schema, path.split("."), schema)


def _schema_paths(
    node: Mapping[str, Any], root: Mapping[str, Any], prefix: str = "", depth: int = 0
) -> Iterator[str]:
    """Every declared path below `node` (a free key shown as `<name>`), for suggestions."""
    if depth > 8:
        return
    named, other = _schema_children(node, root)
    for key, sub in named.items():
        path = f"{prefix}{key}"
        yield path
        yield from _schema_paths(sub, root, f"{path}.", depth + 1)
    for extra in other[:1]:
        path = f"{prefix}<name>"
        yield path
        yield from _schema_paths(extra, root, f"{path}.", depth + 1)


@functools.cache
def _current_schema() -> Mapping[str, Any]:
    """report.json's current schema. Read as a file, not through tdd_priv.report.schema: that
    package imports this module (to judge reports) and the renderers, which a policy check does
    not need. The current major version is always `report.schema.json` there."""
    schema = resources.files("tdd_priv").joinpath("report/schema/report.schema.json")
    loaded: Mapping[str, Any] = json.loads(schema.read_text(encoding="utf-8"))
    return loaded


def _check_paths(check: Check, where: str, schema: Mapping[str, Any]) -> None:
    for key, path in check.paths():
        if _schema_walk(schema, path.split("."), schema):
            continue
        nearest = difflib.get_close_matches(path, list(_schema_paths(schema, schema)), n=3)
        hint = f"nearest valid paths: {', '.join(nearest)}" if nearest else "no similar path"
        raise ConfigError(
            f"{where}: check {check.name!r}: {key} {path!r} is not a field of report.json "
            f"({hint}; the fields are declared in tdd_priv/report/schema/report.schema.json)."
        )


# --- loading -----------------------------------------------------------------------------------


def _path_setting(name: str, spec: Mapping[str, Any], key: str, where: str) -> str | None:
    value = spec.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(
            f"{where}: check {name!r}: '{key}' must be a dotted report.json path, got {value!r}."
        )
    return value


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
    paths = {key: _path_setting(name, spec, key, where) for key in _PATH_KEYS}
    if paths["ceiling"] is not None and spec.get("min") is not None:
        raise ConfigError(
            f"{where}: check {name!r}: 'ceiling' belongs to a max check (the largest value the "
            "measurement can reach); a min check takes 'floor', the smallest."
        )
    if paths["floor"] is not None and spec.get("min") is None:
        raise ConfigError(
            f"{where}: check {name!r}: 'floor' belongs to a min check (the smallest value the "
            "measurement can reach); a max check takes 'ceiling', the largest."
        )
    return Check(
        name=name,
        value=spec["value"],
        description=str(spec.get("description", "")).strip(),
        minus=paths["minus"],
        divide_by=paths["divide_by"],
        max=None if spec.get("max") is None else float(spec["max"]),
        min=None if spec.get("min") is None else float(spec["min"]),
        max_from=paths["max_from"],
        if_missing=spec.get("if_missing", "skip"),
        interval=paths["interval"],
        ceiling=paths["ceiling"],
        floor=paths["floor"],
        applies_if=paths["applies_if"],
        measurable_if=paths["measurable_if"],
    )


def load_policy(path: Path | None = None) -> Policy:
    """The policy in `path`, or the shipped default; errors name the file, the check and the fix
    (a report path that is not a field of report.json is one)."""
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
    schema = _current_schema()
    for check in checks:
        _check_paths(check, where, schema)
    return Policy(
        name=str(payload.get("name", source)),
        source=source,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        checks=checks,
    )


# --- verdicts ----------------------------------------------------------------------------------


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


def _interval(report: Mapping[str, Any], path: str | None) -> list[float] | None:
    pair = None if path is None else report_value(report, path)
    if (
        isinstance(pair, Sequence)
        and len(pair) == 2
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in pair)
    ):
        return [float(pair[0]), float(pair[1])]
    return None


def _number(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True)
class _Verdict:
    status: Status
    can_fail: bool | None
    reason: str


def _status(
    check: Check,
    report: Mapping[str, Any],
    value: float | None,
    threshold: float | None,
    limit: float | None,
) -> _Verdict:
    """The status, whether the test could fail, and why (see Check for the keys' meaning)."""
    if check.applies_if is not None and report_value(report, check.applies_if) is False:
        return _Verdict("SKIPPED", False, f"not applicable: {check.applies_if} is false")
    if threshold is None:
        return _Verdict("SKIPPED", False, f"no threshold: {check.max_from} is not in the report")
    bound = check.ceiling if check.is_max else check.floor
    if bound is not None and limit is not None:
        stuck = limit <= threshold if check.is_max else limit >= threshold
        if stuck:
            side = ("largest", "at or below") if check.is_max else ("smallest", "at or above")
            return _Verdict(
                "INCONCLUSIVE",
                False,
                f"cannot fail: the {side[0]} value this test can reach ({_number(limit)}, "
                f"{bound}) is {side[1]} the threshold",
            )
    if value is None:
        if check.if_missing == "fail":
            return _Verdict("FAIL", True, f"{check.value} is not in the report (required)")
        return _Verdict("SKIPPED", False, f"{check.value} is not in the report")
    can_fail: bool | None = True
    power = ""
    if bound is not None and limit is None:
        can_fail, power = None, f"; power unknown: {bound} is not in the report"
    passed = value <= threshold if check.is_max else value >= threshold
    if check.measurable_if is not None and report_value(report, check.measurable_if) is False:
        settled = not passed if check.is_max else passed
        if not settled:
            return _Verdict(
                "INCONCLUSIVE",
                can_fail,
                f"not measurable at this sample size ({check.measurable_if} is false): the value "
                "is only a lower estimate and cannot show a "
                + ("PASS" if check.is_max else "FAIL"),
            )
        power += f"; a lower estimate ({check.measurable_if} is false), which suffices here"
    return _Verdict("PASS" if passed else "FAIL", can_fail, power.removeprefix("; "))


def _verdict(report: Mapping[str, Any], check: Check) -> dict[str, Any]:
    value = _measure(report, check)
    threshold = check.max if check.is_max else check.min
    if check.max_from is not None:
        threshold = report_number(report, check.max_from)
    bound = check.ceiling if check.is_max else check.floor
    limit = None if bound is None else report_number(report, bound)
    interval = _interval(report, check.interval)
    outcome = _status(check, report, value, threshold, limit)
    notes = [outcome.reason] if outcome.reason else []
    if (
        interval is not None
        and threshold is not None
        and outcome.status in ("PASS", "FAIL")
        and interval[0] <= threshold <= interval[1]
    ):
        notes.append("the interval includes the threshold: the verdict rests on the point value")
    if check.description:
        notes.append(check.description)
    verdict: dict[str, Any] = {
        "status": outcome.status,
        "value": value,
        "threshold": threshold,
        "interval": interval,
        "can_fail": outcome.can_fail,
        "note": "; ".join(notes),
    }
    if bound is not None:
        verdict["ceiling" if check.is_max else "floor"] = limit
    return verdict


def judge(policy: Policy, report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Check name -> {"status": PASS|FAIL|INCONCLUSIVE|SKIPPED, "value", "threshold",
    "interval", "can_fail", "note"} (plus "ceiling" or "floor" where the check declares one),
    in policy order, for report.json's content."""
    return {check.name: _verdict(report, check) for check in policy.checks}
