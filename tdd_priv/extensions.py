"""Implementations the library uses but does not own, passed in by the caller.

The library never imports `audits/` (an auditor must not share code paths with what it audits).
Instead it defines the small protocols below; `flows/` (or the CLI, through flows) builds
`Extensions` from the `audits` package and hands it to `tdd_priv.pipeline.execute`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = [
    "NO_EXTENSIONS",
    "Auditor",
    "CanaryDraw",
    "CanaryMaker",
    "CanarySizing",
    "Extensions",
    "ToxicityScorer",
]


class ToxicityScorer(Protocol):
    """Texts -> toxicity scores in [0, 1], one column per label the scorer knows."""

    name: str
    version: str
    labels: tuple[str, ...]

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """(n, len(labels)) float scores in [0, 1]."""
        ...


class Auditor(Protocol):
    """Given what a run produced (arrays, texts, callables), return one report section."""

    name: str

    def __call__(self, context: Any) -> Mapping[str, Any]: ...


class CanaryDraw(Protocol):
    """Canary records: texts, labels (m,) int, and included (m,) bool (to insert or not)."""

    @property
    def texts(self) -> Sequence[str]: ...
    @property
    def labels(self) -> np.ndarray: ...
    @property
    def included(self) -> np.ndarray: ...


class CanarySizing(Protocol):
    """How many canaries a claim of ε needs: `count` (0: none, when no affordable count could
    show ε, or nothing is claimed), the `ceiling` (the bound a perfect attack on them would give)
    and the `reason`, one sentence for the report."""

    @property
    def count(self) -> int: ...
    @property
    def ceiling(self) -> float: ...
    @property
    def reason(self) -> str: ...


class CanaryMaker(Protocol):
    """Public texts -> `count` canaries with labels in [0, num_classes), each marked for
    insertion (probability 1/2), seeded; and `size`: how many canaries a run that claims
    (ε, δ)-DP over `members` private records needs for its canary audit to be able to fail."""

    def __call__(
        self, public_texts: Sequence[str], *, num_classes: int, count: int, seed: int
    ) -> CanaryDraw: ...

    def size(self, *, epsilon: float | None, delta: float, members: int) -> CanarySizing: ...


@dataclass(frozen=True)
class Extensions:
    toxicity_scorers: Mapping[str, ToxicityScorer] = field(default_factory=dict)
    auditors: Sequence[Auditor] = ()
    canary_maker: CanaryMaker | None = None


NO_EXTENSIONS = Extensions()
