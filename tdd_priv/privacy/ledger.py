"""The privacy ledger: which mechanisms touched private data, and the ε they add up to.

Each `MechanismRecord` is a Poisson-subsampled Gaussian mechanism applied `steps` times:
noise multiplier σ (noise std over L2 sensitivity), sample rate q (q = 1: the whole private set,
no subsampling), and the number of releases. A one-shot Gaussian release is (σ, q = 1, steps = 1).
That triple is exactly an entry of an opacus accountant's `history`, so ε is composed by opacus
(RDP by default, PRV as a cross-check), never by a private copy of the formulas, and anyone can
recompute it from the report with opacus alone.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from opacus.accountants import PRVAccountant, RDPAccountant

from tdd_priv.errors import TddPrivError

__all__ = [
    "AccountingError",
    "MechanismRecord",
    "PrivacyLedger",
    "PrivacyReport",
    "compute_epsilon",
    "epsilon_summary",
    "privacy_report",
]

Accountant = Literal["rdp", "prv"]
ACCOUNTANTS: tuple[Accountant, ...] = ("rdp", "prv")

# Above this RDP ε the PRV accountant's discretisation grid grows to gigabytes (measured: ε ≈ 3000
# asks for > 3 GB) and the cross-check says nothing useful anyway, so it is skipped with a note.
PRV_MAX_RDP_EPSILON = 64.0

_RECORD_KEYS = ("name", "noise_multiplier", "sample_rate", "steps")


class AccountingError(TddPrivError, RuntimeError):
    """The accountant could not compute ε for these mechanisms."""


@dataclass(frozen=True)
class MechanismRecord:
    """One Gaussian mechanism, applied `steps` times with Poisson sampling rate `sample_rate`.

    `noise_multiplier` σ: noise standard deviation divided by the L2 sensitivity (dimensionless).
    `sample_rate` q in [0, 1]: probability that a record is in each step's batch (1: everyone).
    `steps`: number of releases (>= 0). `name` says what was released (e.g. "dm.class_sums").
    """

    name: str
    noise_multiplier: float
    sample_rate: float
    steps: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a mechanism needs a non-empty name, got {self.name!r}")
        sigma, q = float(self.noise_multiplier), float(self.sample_rate)
        if not math.isfinite(sigma) or sigma < 0:
            raise ValueError(
                f"mechanism {self.name!r}: noise_multiplier must be finite and >= 0, got {sigma}"
            )
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"mechanism {self.name!r}: sample_rate must lie in [0, 1], got {q}")
        if isinstance(self.steps, bool) or int(self.steps) != self.steps or self.steps < 0:
            raise ValueError(
                f"mechanism {self.name!r}: steps must be an integer >= 0, got {self.steps!r}"
            )
        object.__setattr__(self, "noise_multiplier", sigma)
        object.__setattr__(self, "sample_rate", q)
        object.__setattr__(self, "steps", int(self.steps))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
        }

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> MechanismRecord:
        """Read a record written by `to_json` (e.g. one entry of report.json's mechanisms[])."""
        missing = [key for key in _RECORD_KEYS if key not in entry]
        if missing:
            raise ValueError(
                f"mechanism entry {dict(entry)!r} lacks {missing}; each entry needs "
                f"{', '.join(_RECORD_KEYS)}"
            )
        return cls(
            name=str(entry["name"]),
            noise_multiplier=entry["noise_multiplier"],
            sample_rate=entry["sample_rate"],
            steps=entry["steps"],
        )

    @property
    def history_entry(self) -> tuple[float, float, int]:
        """This record as an entry of an opacus accountant's history: (σ, q, steps)."""
        return (self.noise_multiplier, self.sample_rate, self.steps)


def _as_record(mechanism: MechanismRecord | Mapping[str, Any]) -> MechanismRecord:
    if isinstance(mechanism, MechanismRecord):
        return mechanism
    if isinstance(mechanism, Mapping):
        return MechanismRecord.from_json(mechanism)
    raise TypeError(f"expected a MechanismRecord or a mapping, got {type(mechanism).__name__}")


def _check_delta(delta: float) -> None:
    if not 0.0 < delta < 1.0:
        raise ValueError(f"δ must lie in (0, 1), got {delta}")


def _history(records: Iterable[MechanismRecord]) -> list[tuple[float, float, int]]:
    """The opacus history for these records: no-op records dropped, equal (σ, q) merged.

    A record with steps = 0 or q = 0 releases nothing about anyone and is left out. Records with
    the same (σ, q) are merged by adding their steps; both accountants compose a history entry as
    `steps` self-compositions, so merging changes nothing but the running time.
    """
    steps: dict[tuple[float, float], int] = {}
    for record in records:
        if record.steps > 0 and record.sample_rate > 0:
            key = (record.noise_multiplier, record.sample_rate)
            steps[key] = steps.get(key, 0) + record.steps
    return [(sigma, q, n) for (sigma, q), n in steps.items()]


def compute_epsilon(
    mechanisms: Sequence[MechanismRecord | Mapping[str, Any]],
    *,
    delta: float,
    accountant: Accountant = "rdp",
) -> float:
    """ε of all `mechanisms` composed, at δ, by a fresh opacus accountant ("rdp" or "prv").

    Mechanisms may be records or their JSON form ({name, noise_multiplier, sample_rate, steps}).
    No mechanism (or only no-op ones) gives ε = 0; a mechanism with σ = 0 that releases anything
    gives ε = inf. Raises `AccountingError` when the accountant fails (PRV can, at large ε).
    """
    _check_delta(delta)
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"unknown accountant {accountant!r}; valid accountants: rdp, prv")
    history = _history(_as_record(m) for m in mechanisms)
    if not history:
        return 0.0
    if any(sigma == 0 for sigma, _, _ in history):
        return math.inf
    engine = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    engine.history = history
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # opacus warns when the best RDP order lies at the edge of its default grid (very small
            # or very large ε): the bound is still valid, only looser than a wider grid would give.
            # We keep opacus's default grid so that the number is reproducible with opacus alone.
            warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
            # PRV's discretisation takes log(0) at the edges of its grid (harmless, masked out).
            warnings.filterwarnings("ignore", category=RuntimeWarning)
            epsilon = float(engine.get_epsilon(delta=delta))
    except (ArithmeticError, MemoryError, ValueError) as error:
        raise AccountingError(
            f"the {accountant.upper()} accountant failed on {len(history)} mechanism(s) "
            f"{history} at δ = {delta:g}: {type(error).__name__}: {error}"
        ) from error
    if math.isnan(epsilon):
        raise AccountingError(f"the {accountant.upper()} accountant returned NaN for {history}")
    return epsilon


class PrivacyLedger:
    """The history of mechanisms applied to private data during a run, in order.

    `append` merges a record into the previous one when both have the same name, σ and q (as an
    opacus accountant merges repeated steps), so a loop of identical releases stays one line.
    """

    def __init__(self, records: Iterable[MechanismRecord | Mapping[str, Any]] = ()) -> None:
        self._records: list[MechanismRecord] = []
        self.extend(records)

    def append(self, record: MechanismRecord | Mapping[str, Any]) -> None:
        record = _as_record(record)
        if self._records:
            last = self._records[-1]
            same = (last.name, last.noise_multiplier, last.sample_rate) == (
                record.name,
                record.noise_multiplier,
                record.sample_rate,
            )
            if same:
                self._records[-1] = MechanismRecord(
                    last.name, last.noise_multiplier, last.sample_rate, last.steps + record.steps
                )
                return
        self._records.append(record)

    def extend(self, records: Iterable[MechanismRecord | Mapping[str, Any]]) -> None:
        for record in records:
            self.append(record)

    def spend(
        self, name: str, *, noise_multiplier: float, sample_rate: float, steps: int = 1
    ) -> MechanismRecord:
        """Record `steps` releases of mechanism `name`; returns the record appended."""
        record = MechanismRecord(name, noise_multiplier, sample_rate, steps)
        self.append(record)
        return record

    @property
    def records(self) -> tuple[MechanismRecord, ...]:
        return tuple(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[MechanismRecord]:
        return iter(self._records)

    def epsilon(self, *, delta: float, accountant: Accountant = "rdp") -> float:
        return compute_epsilon(self._records, delta=delta, accountant=accountant)

    def to_json(self) -> list[dict[str, Any]]:
        return [record.to_json() for record in self._records]

    def __repr__(self) -> str:
        return f"PrivacyLedger({list(self._records)!r})"


@dataclass(frozen=True)
class PrivacyReport:
    """ε of a ledger by RDP (the stated value) with the PRV cross-check alongside.

    `prv_epsilon` is None when PRV was skipped or failed; `prv_note` then says why.
    """

    epsilon: float
    delta: float
    prv_epsilon: float | None
    prv_note: str | None
    mechanisms: tuple[MechanismRecord, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": "dp",
            "epsilon": self.epsilon,
            "delta": self.delta,
            "accountant": "rdp",
            "prv_epsilon": self.prv_epsilon,
            "prv_note": self.prv_note,
            "mechanisms": [m.to_json() for m in self.mechanisms],
        }


def privacy_report(
    mechanisms: PrivacyLedger | Sequence[MechanismRecord | Mapping[str, Any]], *, delta: float
) -> PrivacyReport:
    """Compose with RDP (stated) and PRV (cross-check; skipped or failed → None and a note)."""
    given = mechanisms.records if isinstance(mechanisms, PrivacyLedger) else mechanisms
    records = tuple(_as_record(m) for m in given)
    epsilon = compute_epsilon(records, delta=delta, accountant="rdp")
    prv_epsilon: float | None = None
    note: str | None = None
    if not math.isfinite(epsilon):
        note = "PRV not computed: ε is infinite (a mechanism adds no noise)"
    elif epsilon > PRV_MAX_RDP_EPSILON:
        note = (
            f"PRV not computed: RDP ε = {epsilon:.3g} > {PRV_MAX_RDP_EPSILON:g}, where the PRV "
            "accountant's grid becomes too large; ε is the RDP bound"
        )
    else:
        try:
            prv_epsilon = compute_epsilon(records, delta=delta, accountant="prv")
        except AccountingError as error:
            note = f"PRV failed, ε is the RDP bound: {error}"
    return PrivacyReport(epsilon, delta, prv_epsilon, note, records)


def epsilon_summary(
    ledger: PrivacyLedger | Sequence[MechanismRecord | Mapping[str, Any]], *, delta: float
) -> dict[str, Any]:
    """The report's `privacy` section: {mode, epsilon, delta, accountant, prv_epsilon, prv_note,
    mechanisms}. ε is the RDP bound; PRV (usually tighter) is the cross-check."""
    return privacy_report(ledger, delta=delta).to_json()
