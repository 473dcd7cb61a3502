"""What an auditor reads: the shape of a run's artifacts, as structural types.

The auditors never import the library they audit. The library hands each auditor an object
with the attributes below (tdd_priv.audit_context.AuditContext is one); anything else with the
same attributes works too, which is how the tests drive the auditors on made-up runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

__all__ = [
    "Canaries",
    "CanaryPlan",
    "EvalX",
    "FitPredict",
    "Records",
    "Release",
    "RunArtifacts",
    "ShadowRelease",
]

# (train_x (n, d), train_targets (n, C) one-hot or soft, eval_x (k, d), seed) -> (k, C)
# class probabilities of a model trained on the first set, evaluated on the second; eval_x may be
# a tuple of arrays, evaluated by the one model part by part and stacked (no joined copy).
EvalX = np.ndarray | tuple[np.ndarray, ...]
FitPredict = Callable[[np.ndarray, np.ndarray, EvalX, int], np.ndarray]

# (in_mask (n_members + n_nonmembers,) bool over members then non-members, seed) ->
# (x (m, d), targets (m, C)): the release the pipeline would have made from the rows in_mask
# selects (the whole distill step re-run on them), as a training set.
ShadowRelease = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


class Records(Protocol):
    """Rows of one split. ids: (n,) row ids in the source data (never to be reported: they point
    at private rows); texts; embeddings (n, d) L2-normalised; labels (n,) int; groups: column ->
    (n,) group names."""

    @property
    def ids(self) -> np.ndarray: ...
    @property
    def texts(self) -> Sequence[str]: ...
    @property
    def embeddings(self) -> np.ndarray: ...
    @property
    def labels(self) -> np.ndarray: ...
    @property
    def groups(self) -> Mapping[str, np.ndarray]: ...


class Release(Protocol):
    """What the run released: texts with labels and their embeddings (m, d), and the synthetic
    vectors (m', d) with their training targets (m', C). source: where the texts come from,
    "public" (an external public pool), "internal-pool" (rows of the labeled data), "private"
    (member records) or "external" (made outside tdd-priv); may_contain_private_rows: False only
    for a DP release from an external public pool."""

    @property
    def texts(self) -> Sequence[str]: ...
    @property
    def labels(self) -> np.ndarray: ...
    @property
    def text_embeddings(self) -> np.ndarray: ...
    @property
    def vectors(self) -> np.ndarray: ...
    @property
    def targets(self) -> np.ndarray: ...
    @property
    def source(self) -> str: ...
    @property
    def may_contain_private_rows(self) -> bool: ...


class Canaries(Protocol):
    """Canary records (texts, labels (m,), embeddings (m, d)) and which were inserted (m,)."""

    @property
    def texts(self) -> Sequence[str]: ...
    @property
    def labels(self) -> np.ndarray: ...
    @property
    def embeddings(self) -> np.ndarray: ...
    @property
    def included(self) -> np.ndarray: ...


class CanaryPlan(Protocol):
    """How the canaries were counted: requested (an explicit count; None: sized from the claimed
    ε), epsilon (the claimed ε; None without DP), and the δ and member count the sizing used."""

    @property
    def requested(self) -> int | None: ...
    @property
    def epsilon(self) -> float | None: ...
    @property
    def delta(self) -> float: ...
    @property
    def members(self) -> int: ...


class RunArtifacts(Protocol):
    """Everything an auditor may look at.

    members: private training records (canaries excluded); nonmembers: the held-out audit
    split; test: the test split; pool: labeled rows used as an internal public pool (None for an
    external pool); release: the released set; canaries: None when none were inserted;
    canary_plan: how they were counted (None without a canary audit); delta: the δ empirical
    privacy bounds use; shadows: how many shadow re-runs a membership audit may make (0: none);
    shadow_release: None when shadow re-runs are off.
    """

    @property
    def seed(self) -> int: ...
    @property
    def label_names(self) -> Sequence[str]: ...
    @property
    def members(self) -> Records: ...
    @property
    def nonmembers(self) -> Records: ...
    @property
    def test(self) -> Records: ...
    @property
    def pool(self) -> Records | None: ...
    @property
    def release(self) -> Release: ...
    @property
    def canaries(self) -> Canaries | None: ...
    @property
    def canary_plan(self) -> CanaryPlan | None: ...
    @property
    def delta(self) -> float: ...
    @property
    def shadows(self) -> int: ...
    @property
    def fit_predict(self) -> FitPredict: ...
    @property
    def shadow_release(self) -> ShadowRelease | None: ...
