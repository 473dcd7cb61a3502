"""What the library hands an auditor: a run's artifacts as arrays, texts and callables.

The auditors live in `audits/` and never import the library. They read an `AuditContext`
(documented below; `audits.context.RunArtifacts` is the same shape as a structural type) and
return one report section each. The callables let an auditor train and re-run things without
knowing how the library does it:

- `fit_predict(train_x (n, d), train_targets (n, C), eval_x (k, d), seed) -> (k, C)` class
  probabilities of a fresh linear head (the evaluation's head, same training settings) trained on
  the first set and evaluated on the second; `eval_x` may be a tuple of arrays, evaluated by the
  one head part by part and stacked (so members and non-members need no joined copy);
- `shadow_release(in_mask, seed) -> (x (m, d), targets (m, C))`: the whole distill step re-run,
  under the run's own method and privacy settings, on the records `in_mask` selects from
  members followed by non-members (for LiRA/RMIA shadow models); None unless `--audit full`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from tdd_priv.encode import EmbeddingRows
from tdd_priv.heads import DEFAULT_TRAINING, HeadTraining, LabeledArrays, train_head

__all__ = [
    "AuditContext",
    "AuditRecords",
    "CanaryPlan",
    "CanaryRecords",
    "EvalX",
    "FitPredict",
    "ReleaseSource",
    "ReleasedSet",
    "ShadowRelease",
    "fit_predict_proba",
    "records",
]

EvalX = np.ndarray | tuple[np.ndarray, ...]
FitPredict = Callable[[np.ndarray, np.ndarray, EvalX, int], np.ndarray]
ShadowRelease = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
AuditLevel = Literal["basic", "full"]
# Where the released texts come from: "public", an external public pool; "internal-pool", rows of
# the user's own labeled data used as a pool (an explicit opt-in, unprotected); "private", member
# records (a coreset); "external", a release made outside tdd-priv and audited here.
ReleaseSource = Literal["public", "internal-pool", "private", "external"]


@dataclass(frozen=True)
class AuditRecords:
    """Rows of one split. ids (n,): row indices in the labeled data (for the auditors' own
    bookkeeping: a row id points at a private row and never enters a report); embeddings (n, d)
    float32, L2-normalised; labels (n,) int64; groups: group column -> (n,) group names."""

    ids: np.ndarray
    texts: tuple[str, ...]
    embeddings: np.ndarray
    labels: np.ndarray
    groups: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ReleasedSet:
    """What the run released: texts, labels (m,) and text embeddings (m, d); and the synthetic
    vectors (m', d) with their training targets (m', C): one-hot or soft labels. source: where
    the texts come from (see ReleaseSource); epsilon: the accountant's ε of the release, None
    when it is not differentially private."""

    texts: tuple[str, ...]
    labels: np.ndarray
    text_embeddings: np.ndarray
    vectors: np.ndarray
    targets: np.ndarray
    source: ReleaseSource
    epsilon: float | None = None

    @property
    def may_contain_private_rows(self) -> bool:
        """Whether a released text may be a private row: everything but a DP release whose texts
        come from an external public pool."""
        return not (self.epsilon is not None and self.source == "public")


@dataclass(frozen=True)
class CanaryRecords:
    """Every canary record of the run, inserted or not: texts, labels (m,), embeddings (m, d),
    included (m,) bool: inserted into the private training data."""

    texts: tuple[str, ...]
    labels: np.ndarray
    embeddings: np.ndarray
    included: np.ndarray


@dataclass(frozen=True)
class CanaryPlan:
    """How the run chose its number of canaries: `requested`, an explicit count (None: sized
    from the claimed ε by the canary maker); `epsilon`, the claimed ε (None without DP); `delta`
    and `members`, the δ and the member count (canaries excluded) the sizing used."""

    requested: int | None
    epsilon: float | None
    delta: float
    members: int


@dataclass(frozen=True)
class AuditContext:
    """Everything an auditor may look at (see the module docstring for the callables).

    members: private training records, canaries excluded; nonmembers: the held-out audit split;
    test: the test split; pool: the labeled rows used as an internal public pool (None when the
    pool is external). epsilon: the accountant's ε (None when the run is not private); delta:
    the δ empirical bounds use (the run's δ, else 1 / (10·n)). shadows: how many shadow re-runs
    a membership audit may make. canary_plan: how the canaries were counted (None when the run
    has no canary audit).
    """

    level: AuditLevel
    seed: int
    label_names: tuple[str, ...]
    members: AuditRecords
    nonmembers: AuditRecords
    test: AuditRecords
    release: ReleasedSet
    canaries: CanaryRecords | None
    epsilon: float | None
    delta: float
    shadows: int
    fit_predict: FitPredict
    shadow_release: ShadowRelease | None
    pool: AuditRecords | None = None
    canary_plan: CanaryPlan | None = None


def fit_predict_proba(
    train_x: np.ndarray,
    train_targets: np.ndarray,
    eval_x: EvalX,
    seed: int,
    *,
    head: str = "linear",
    training: HeadTraining = DEFAULT_TRAINING,
) -> np.ndarray:
    """(k, C) softmax probabilities on `eval_x` (an array, or a tuple of arrays whose rows are
    stacked) of a fresh `head` trained on the given set."""
    model = train_head(
        head,
        LabeledArrays(
            np.asarray(train_x, dtype=np.float32), np.asarray(train_targets, dtype=np.float32)
        ),
        seed=seed,
        training=training,
    )
    chunks = []
    for part in eval_x if isinstance(eval_x, tuple) else (eval_x,):
        tensor = torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32))
        with torch.inference_mode():
            chunks += [
                torch.softmax(model(tensor[i : i + 8192]), dim=1)
                for i in range(0, len(tensor), 8192)
            ]
    if not chunks:
        return np.zeros((0, train_targets.shape[1]), dtype=np.float64)
    return torch.cat(chunks).double().numpy()


def records(
    ids: np.ndarray,
    texts: Sequence[str],
    embeddings: np.ndarray | EmbeddingRows,
    labels: np.ndarray,
    groups: Mapping[str, Sequence[str]],
) -> AuditRecords:
    """AuditRecords for the rows `ids` of the labeled data (texts, embeddings, labels, groups
    are the whole data's; this picks the rows)."""
    ids = np.asarray(ids, dtype=np.int64)
    return AuditRecords(
        ids=ids,
        texts=tuple(texts[i] for i in ids),
        embeddings=embeddings[ids],
        labels=labels[ids],
        groups={name: np.asarray(values)[ids].astype(str) for name, values in groups.items()},
    )
