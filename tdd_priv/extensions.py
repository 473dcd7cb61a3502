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

__all__ = ["NO_EXTENSIONS", "Auditor", "Extensions", "ToxicityScorer"]


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


@dataclass(frozen=True)
class Extensions:
    toxicity_scorers: Mapping[str, ToxicityScorer] = field(default_factory=dict)
    auditors: Sequence[Auditor] = ()


NO_EXTENSIONS = Extensions()
