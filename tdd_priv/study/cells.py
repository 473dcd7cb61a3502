"""A study's cells on disk: which are finished (so a resumed study skips them), and how long
each took.

A cell's folder DIR/cells/<id>/ is an ordinary signed run folder, written by the pipeline's
staged rename, so it is either whole or absent (its private record: DIR/cells/<id>.private/).
It counts as finished when its report.json parses, names a schema version, and belongs to the
config it was written from (config.resolved.yaml, tied to the report by `config_sha256`), and
that config computes the same thing as the cell's: settings that only say how a run executes
are ignored.

Wall times live beside the cells (DIR/timings/<id>.json), never inside a signed run folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from tdd_priv.fingerprint import sha256_json
from tdd_priv.rundir import remove_stale
from tdd_priv.study.sweep import EXECUTION_SETTINGS, Cell

__all__ = [
    "CellOutcome",
    "CellStatus",
    "cell_is_complete",
    "read_report",
    "read_timing",
    "remove_partial_folders",
    "write_timing",
]

CellStatus = Literal["ran", "reused", "failed"]
TIMINGS_DIR = "timings"
# Settings that change where or how a run executes, not its results: those the study owns, and
# where caches and the signing key live.
_EXECUTION_ONLY = (*EXECUTION_SETTINGS, "private_out", "cache_dir", "signing_key")


@dataclass(frozen=True)
class CellOutcome:
    """What became of a cell in one invocation of a study: `ran` (computed now), `reused` (a
    finished folder was found), `failed` (with the error's message). wall_s: this invocation's
    time for it (None when reused)."""

    id: str
    status: CellStatus
    wall_s: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> CellOutcome:
        return cls(**payload)


def _comparable(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A released config (config.resolved.yaml's mapping) without what only says how a run
    executes."""
    return {key: value for key, value in settings.items() if key not in _EXECUTION_ONLY}


def _json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_report(folder: Path) -> dict[str, Any] | None:
    """report.json of a run folder, or None when it is missing or not a JSON object."""
    return _json_object(folder / "report.json")


def cell_is_complete(cell: Cell) -> bool:
    """True when the cell's folder holds a finished run of exactly this cell's config."""
    folder = cell.config.out
    report = read_report(folder)
    if report is None or "schema_version" not in report or "utility" not in report:
        return False
    try:
        resolved = yaml.safe_load((folder / "config.resolved.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return False
    if not isinstance(resolved, Mapping) or report.get("config_sha256") != sha256_json(resolved):
        return False  # the report was not written from this config file
    # config.resolved.yaml is the released config (local files named by their name only)
    return _comparable(resolved) == _comparable(cell.config.released_dict())


def remove_partial_folders(cell: Cell) -> list[Path]:
    """Remove the staging folders a killed run of this cell left behind (.<id>.partial-*, and
    those of its private folder), unless a live run of the cell holds its lock (see
    tdd_priv.rundir)."""
    removed: list[Path] = []
    for folder in (cell.config.out, cell.config.private_folder):
        removed += remove_stale(folder.parent, names=[folder.name])
    return removed


def _timing_file(cell: Cell) -> Path:
    return cell.config.out.parent.parent / TIMINGS_DIR / f"{cell.id}.json"


def write_timing(cell: Cell, *, wall_s: float, worker: str) -> None:
    """Record how long computing the cell took, and where (a host/process name)."""
    path = _timing_file(cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"wall_s": round(wall_s, 3), "worker": worker}), encoding="utf-8")


def read_timing(cell: Cell) -> dict[str, Any] | None:
    return _json_object(_timing_file(cell))
