"""in-toto Statement v1: which files (by SHA-256) an attestation is about, and what it says.

{"_type": "https://in-toto.io/Statement/v1",
 "subject": [{"name": "report.json", "digest": {"sha256": "<64 hex>"}}, ...],
 "predicateType": "<URI>", "predicate": {...}}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["STATEMENT_TYPE", "Statement", "StatementError", "make_statement", "parse_statement"]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class StatementError(ValueError):
    """The payload is not an in-toto Statement v1 of the expected shape."""


@dataclass(frozen=True)
class Statement:
    """A parsed Statement: subject name -> sha256 hex, the predicate type and the predicate."""

    subjects: dict[str, str]
    predicate_type: str
    predicate: dict[str, Any]


def make_statement(
    subjects: Mapping[str, str], *, predicate_type: str, predicate: Mapping[str, Any]
) -> dict[str, Any]:
    """A Statement over `subjects` (name -> sha256 hex), listed in name order."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {"sha256": digest}}
            for name, digest in sorted(subjects.items())
        ],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


def parse_statement(payload: bytes) -> Statement:
    """Parse and check a Statement v1 whose subjects all carry a sha256 digest."""
    try:
        statement = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StatementError(f"payload is not JSON: {error}") from error
    if not isinstance(statement, dict):
        raise StatementError("payload is not a JSON object")
    if statement.get("_type") != STATEMENT_TYPE:
        raise StatementError(f"_type is {statement.get('_type')!r}, expected {STATEMENT_TYPE!r}")
    predicate_type, predicate = statement.get("predicateType"), statement.get("predicate")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise StatementError("predicateType is missing")
    if not isinstance(predicate, dict):
        raise StatementError("predicate is missing or not an object")
    entries = statement.get("subject")
    if not isinstance(entries, list) or not entries:
        raise StatementError("subject must be a non-empty list")
    subjects: dict[str, str] = {}
    for number, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        digest = entry.get("digest") if isinstance(entry, dict) else None
        sha256 = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(name, str) or not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise StatementError(f"subject {number} needs a name and a lowercase hex sha256")
        if name in subjects:
            raise StatementError(f"subject {name!r} is listed twice")
        subjects[name] = sha256
    return Statement(subjects, predicate_type, predicate)
