"""A privacy budget ledger across runs: every DP run on the same data spends budget again.

One ledger per dataset, a JSON-lines file in the user's state folder (`tdd_priv.state`), named
by the dataset's keyed fingerprint or by a name the user gives (`--budget-ledger`, for data that
changes between runs, such as a scheduled job's). Each DP run appends one entry with every
mechanism it will apply, *before* it applies any, so a run that fails halfway still counts (a
noisy release may have been computed and cached). The cumulative ε of the ledger is opacus's RDP
composition of all entries' mechanisms at the new run's δ — the same accountant a single run
uses. `spend` holds an exclusive lock (fcntl.flock) on the ledger file from reading it to
appending, so concurrent runs never lose an entry and never both pass a limit that only one fits.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tdd_priv.errors import ConfigError
from tdd_priv.privacy.ledger import MechanismRecord, compute_epsilon
from tdd_priv.state import keyed_digest, state_dir

__all__ = ["Budget", "BudgetExceeded", "BudgetLedger", "ledger_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class BudgetExceeded(ConfigError):
    """The run would take the ledger's composed ε above the configured limit."""


@dataclass(frozen=True)
class Budget:
    """A ledger's state once a run has been entered: `runs` entries (this one included), their
    composed `epsilon` at `delta`, and the `limit` it was checked against (None: no limit)."""

    ledger: str
    runs: int
    epsilon: float
    delta: float
    limit: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "ledger": self.ledger,
            "runs": self.runs,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "accountant": "rdp",
            "limit": self.limit,
        }


def ledger_name(*, dataset_fingerprint: str, configured: str | None) -> str:
    """The ledger's name: the configured one, else the dataset's keyed fingerprint (the plain
    fingerprint of private data must not even reach a file name)."""
    if configured is None:
        return "dataset-" + keyed_digest("budget-ledger", dataset_fingerprint)[:32]
    if not _NAME.fullmatch(configured):
        raise ConfigError(
            f"--budget-ledger {configured!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return configured


class BudgetLedger:
    """The ledger file `<folder>/<name>.jsonl` (folder: <state>/budget)."""

    def __init__(self, name: str, folder: Path | None = None) -> None:
        self.name = name
        self.path = (folder or state_dir() / "budget") / f"{name}.jsonl"

    def entries(self) -> list[dict[str, Any]]:
        """Every entry so far (an empty list when the ledger does not exist)."""
        if not self.path.is_file():
            return []
        with self.path.open("r", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            return _parse(handle.read(), self.path)

    def composed(self, delta: float, extra: Sequence[MechanismRecord] = ()) -> float:
        """ε of every entry's mechanisms (and `extra`) composed at `delta`."""
        return _compose(self.entries(), extra, delta)

    def spend(
        self,
        mechanisms: Sequence[MechanismRecord],
        *,
        epsilon: float,
        delta: float,
        limit: float | None,
        run: str,
    ) -> Budget:
        """Enter a run that will apply `mechanisms` ((ε, δ) on its own); refuse it with
        BudgetExceeded, entering nothing, when the composed ε would exceed `limit`."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.path.open("a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            entries = _parse(handle.read(), self.path)
            total = _compose(entries, mechanisms, delta)
            if limit is not None and total > limit * (1 + 1e-9):
                spent = _compose(entries, (), delta)
                raise BudgetExceeded(
                    f"privacy budget: this run (ε = {epsilon:.3g}) would take the ledger "
                    f"{self.name!r} ({len(entries)} earlier run(s), ε = {spent:.3g} at δ = "
                    f"{delta:.1e}) to ε = {total:.3g}, above --budget-limit {limit:g}. Lower "
                    "--epsilon, raise the limit, or use fresh data."
                )
            entry = {
                "run": run,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "epsilon": epsilon,
                "delta": delta,
                "mechanisms": [m.to_json() for m in mechanisms],
            }
            handle.write(json.dumps(entry, allow_nan=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return Budget(self.name, len(entries) + 1, total, delta, limit)


def _parse(text: str, path: Path) -> list[dict[str, Any]]:
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            entry["mechanisms"] = [MechanismRecord.from_json(m) for m in entry["mechanisms"]]
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                f"{path}, line {number}: not a budget ledger entry ({error}). The ledger is "
                "damaged; repair or move it (runs then start a new ledger)."
            ) from error
        entries.append(entry)
    return entries


def _compose(
    entries: Sequence[dict[str, Any]], extra: Sequence[MechanismRecord], delta: float
) -> float:
    records = [m for entry in entries for m in entry["mechanisms"]] + list(extra)
    epsilon = compute_epsilon(records, delta=delta) if records else 0.0
    return epsilon if math.isfinite(epsilon) else math.inf
