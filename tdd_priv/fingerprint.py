"""Content fingerprints: stable SHA-256 digests of texts, columns and files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["fingerprint_strings", "sha256_file", "sha256_json"]


def fingerprint_strings(values: Iterable[str], *, salt: str = "") -> str:
    """SHA-256 over length-prefixed UTF-8 strings, so ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256(salt.encode("utf-8"))
    for value in values:
        raw = value.encode("utf-8")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.hexdigest()


def sha256_file(path: Path, *, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_json(value: Any) -> str:
    """Hex SHA-256 of `value` as canonical JSON (sorted keys; str() for what JSON cannot hold):
    the digest of a config or a recipe, the same wherever it is computed."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
