"""Group-balanced matching (`--fairness balanced`, FairDD-style) for `dm` and `dc`.

Plain matching pulls each synthetic class towards the mean of a statistic over the real examples
of that class, so a group (a value of the data's group column(s)) weighs in proportion to its
size and a minority group barely shapes the set. Balanced matching splits every class into
(class, group) cells and matches the *equal-weight average of the cell means* instead: each group
present in a class counts as much as any other.

A cell with fewer than `min_cell_size` rows (its noisy count under DP, so the choice is
post-processing) would make a noisy, unrepresentative mean; it stands in with the class mean
instead, and the report lists it. The class mean is recovered from the cells themselves (their
size-weighted average), so balancing needs no release beyond the per-cell ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tdd_priv.errors import ConfigError
from tdd_priv.methods.access import MeanGradient, PrivateAccess

__all__ = [
    "DEFAULT_MIN_CELL_SIZE",
    "GROUP_SEPARATOR",
    "CellWeights",
    "GroupBalance",
    "cell_weights",
]

DEFAULT_MIN_CELL_SIZE = 20  # as the fairness audit's smallest group it computes gaps for
GROUP_SEPARATOR = " | "  # joins the values of several group columns, as audits/fairness.py does


@dataclass(frozen=True)
class GroupBalance:
    """Which group each private row belongs to, for group-balanced matching.

    ids: (n,) int64 in [0, len(names)): the group of each row of the private set, the
    intersection of `columns` (their values joined by " | "). names: every group value of the
    whole labeled dataset, sorted; like the label names, this domain is treated as public.
    """

    ids: np.ndarray
    names: tuple[str, ...]
    columns: tuple[str, ...]
    min_cell_size: int = DEFAULT_MIN_CELL_SIZE

    def __post_init__(self) -> None:
        if self.min_cell_size < 1:
            raise ConfigError(f"min_cell_size must be at least 1, got {self.min_cell_size}.")
        if self.ids.size and (self.ids.min() < 0 or self.ids.max() >= len(self.names)):
            raise ValueError(f"group ids must lie in [0, {len(self.names)})")

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, Sequence[str]],
        rows: np.ndarray,
        *,
        min_cell_size: int = DEFAULT_MIN_CELL_SIZE,
    ) -> GroupBalance:
        """From the group columns of the whole dataset ({name: a value per row}) and the rows
        (indices into them) that form the private set."""
        if not columns:
            raise ConfigError(
                "--fairness balanced needs the data's group column(s): pass --group-column C "
                "(repeat for several) naming the sensitive-group column, or use --fairness none."
            )
        values = [np.asarray(list(v), dtype=str) for v in columns.values()]
        joined = values[0] if len(values) == 1 else _join(values)
        names, ids = np.unique(joined, return_inverse=True)
        return cls(
            ids=ids.astype(np.int64)[np.asarray(rows, dtype=np.int64)],
            names=tuple(str(name) for name in names),
            columns=tuple(columns),
            min_cell_size=min_cell_size,
        )


def _join(values: list[np.ndarray]) -> np.ndarray:
    return np.array([GROUP_SEPARATOR.join(parts) for parts in zip(*values, strict=True)])


@dataclass(frozen=True)
class CellWeights:
    """How per-(class, group) cell statistics combine into one target per class.

    sizes: (C, G) rows per cell (exact, or the noisy counts under DP); use: (C, G) bool, the cells
    with at least `balance.min_cell_size` rows, which stand for their group (the others stand in
    with their class's mean).
    """

    sizes: torch.Tensor
    use: torch.Tensor
    balance: GroupBalance

    @classmethod
    def of(cls, sizes: torch.Tensor, balance: GroupBalance) -> CellWeights:
        sizes = sizes.to(torch.float64)
        return cls(sizes, sizes >= balance.min_cell_size, balance)

    def combine(self, cells: torch.Tensor) -> torch.Tensor:
        """(C, G, ...) cell means -> (C, ...): per class, the equal-weight mean over its groups
        of the cell mean, or of the class mean (size-weighted over the cells) for a cell too
        small. With one group this is the class mean itself."""
        classes, groups = self.sizes.shape
        flat = cells.reshape(classes, groups, -1)
        weights = self.sizes.clamp_min(0).to(flat.dtype)
        total = weights.sum(dim=1, keepdim=True).clamp_min(torch.finfo(flat.dtype).tiny)
        class_mean = (weights[:, :, None] * flat).sum(dim=1) / total
        chosen = torch.where(self.use[:, :, None], flat, class_mean[:, None, :])
        return chosen.mean(dim=1).reshape(classes, *cells.shape[2:])

    def combine_gradients(self, cells: Sequence[Sequence[MeanGradient]]) -> list[MeanGradient]:
        """Per class, the balanced combination (`combine`) of its cells' mean gradients."""
        names = list(cells[0][0].gradients)
        stacked = {
            name: torch.stack([torch.stack([g.gradients[name] for g in row]) for row in cells])
            for name in names
        }
        combined = {name: self.combine(value) for name, value in stacked.items()}
        return [
            MeanGradient({name: combined[name][c] for name in names}, loss=None)
            for c in range(len(cells))
        ]

    def report(self) -> dict[str, Any]:
        """report.json's `method.fairness` for a balanced run: the groups, the cells that fell
        back to their class mean, and every cell's size (the released noisy count under DP)."""
        balance = self.balance
        sizes = self.sizes.round().to(torch.int64).tolist()
        fallback = [
            {"label": c, "group": balance.names[g], "size": sizes[c][g]}
            for c, g in torch.nonzero(~self.use).tolist()
        ]
        return {
            "mode": "balanced",
            "group_columns": list(balance.columns),
            "groups": list(balance.names),
            "min_cell_size": balance.min_cell_size,
            "cells": int(self.use.numel()),
            "fallback_cells": len(fallback),
            "fallback": fallback,
            "cell_sizes": sizes,
        }


def cell_weights(access: PrivateAccess, balance: GroupBalance | None) -> CellWeights | None:
    """The cell weights of a balanced run (reads the cell sizes: a release under DP), else None."""
    if balance is None:
        return None
    if access.num_groups != len(balance.names):
        raise ValueError(
            f"the gateway has {access.num_groups} group(s), the balance {len(balance.names)}"
        )
    return CellWeights.of(access.cell_sizes(), balance)
