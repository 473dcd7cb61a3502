"""report.json's JSON Schema (draft 2020-12), one file per major version.

`report.schema.json` is the current major version. A report declares its `schema_version`
("MAJOR.MINOR.PATCH"); it is validated against the schema of its major version, so reports
written by older releases stay readable. Minor versions only add optional fields.
When the major version is bumped, copy the current file to `report-v<old major>.schema.json`,
add it to `SCHEMA_FILES`, and edit `report.schema.json`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

__all__ = [
    "SCHEMA_FILES",
    "SCHEMA_VERSION",
    "ReportSchemaError",
    "load_report",
    "report_schema",
    "schema_errors",
    "validate_report",
]

# 2.0.0: the release holds only covered or declared-public facts; 2.1.0: the no-claim status and
# the `release` section of a release made outside tdd-priv (`tdd-priv audit`); 2.2.0: utility
# metrics beyond accuracy with the headline and floor, environment.device, synthetic.texts_fitted_to
# and allocation, model notes
SCHEMA_VERSION = "2.2.0"

# major version -> schema file in this package.
SCHEMA_FILES = {
    0: "report-v0.schema.json",
    1: "report-v1.schema.json",
    2: "report.schema.json",
}


class ReportSchemaError(ValueError):
    """A report does not follow the schema of the version it declares (lists every problem)."""

    def __init__(self, where: str, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{where} does not follow its report schema:\n{listed}")


def _major(version: Any) -> int:
    if not isinstance(version, str) or not version.split(".")[0].isdigit():
        raise ReportSchemaError(
            "the report", [f"schema_version must be 'MAJOR.MINOR.PATCH', got {version!r}"]
        )
    major = int(version.split(".")[0])
    if major not in SCHEMA_FILES:
        known = ", ".join(f"{m}.x" for m in sorted(SCHEMA_FILES))
        raise ReportSchemaError(
            "the report",
            [
                f"schema_version {version} is unknown to this tdd-priv (it reads {known}); "
                "upgrade tdd-priv to read it"
            ],
        )
    return major


@cache
def report_schema(major: int = int(SCHEMA_VERSION.split(".")[0])) -> dict[str, Any]:
    """The JSON Schema for reports of `major` version (default: the current one)."""
    text = resources.files(__name__).joinpath(SCHEMA_FILES[major]).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_errors(report: Mapping[str, Any]) -> list[str]:
    """Every way `report` breaks the schema of the version it declares ([] when it is valid)."""
    try:
        major = _major(report.get("schema_version"))
    except ReportSchemaError as error:
        return error.problems
    validator = Draft202012Validator(report_schema(major))
    return [
        f"{error.json_path}: {error.message}"
        for error in sorted(validator.iter_errors(report), key=lambda e: e.json_path)
    ]


def validate_report(report: Mapping[str, Any], *, where: str = "report.json") -> None:
    """Raise ReportSchemaError listing every problem unless `report` follows its schema."""
    problems = schema_errors(report)
    if problems:
        raise ReportSchemaError(where, problems)


def load_report(path: Path) -> dict[str, Any]:
    """Read a report.json of any known schema version, validated against that version."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportSchemaError(str(path), [f"cannot be read as JSON: {error}"]) from error
    if not isinstance(report, dict):
        raise ReportSchemaError(str(path), ["is not a JSON object"])
    validate_report(report, where=str(path))
    return report
