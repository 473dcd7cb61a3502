"""What every distillation method consumes and returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

from tdd_priv.errors import ConfigError
from tdd_priv.heads import LabeledArrays
from tdd_priv.methods.access import ExactAccess, PrivateAccess
from tdd_priv.methods.allocation import Allocation, ClassProfile, ClassSizes
from tdd_priv.methods.balance import GroupBalance
from tdd_priv.methods.experts import ExpertTrajectories

__all__ = ["DistillInput", "FitTarget", "MemberArrays", "SyntheticSet"]

# What released texts were fitted to, so a report can say who made them. "method": the method
# chose these very texts or records through its own mechanism (dpsgd-teacher: its teacher's
# outputs; pe-vote: the records' votes; coresets: the class's records); "release": a realizer
# fitted them to the method's released vectors and labels, so they change with the method;
# "private-data": selected against the private records directly, whatever the method released
# (public-coreset, never private).
FitTarget = Literal["method", "release", "private-data"]


@dataclass(frozen=True)
class MemberArrays:
    """The private members themselves: embeddings (n, d) float32, rows L2-normalised; labels
    (n,) int64 in [0, num_classes)."""

    embeddings: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class DistillInput:
    """The private training set in embedding space: the only real data a method may touch.

    Coresets select rows of it directly (`exact()`); learned methods go through `access()`.
    A differentially private input (`through(gateway)`) carries no member rows at all, only the
    noisy gateway and public facts, so a method cannot read the data around the gateway.

    embeddings: (n, d) float32, rows L2-normalised; labels: (n,) int64 in [0, num_classes);
    both None under DP.
    """

    embeddings: np.ndarray | None
    labels: np.ndarray | None
    num_classes: int
    per_class: int
    seed: int
    options: Mapping[str, Any] = field(default_factory=dict)
    progress: bool = False
    gateway: PrivateAccess | None = None  # a DP gateway; None: exact access (non-private)
    experts: ExpertTrajectories | None = None  # trained beforehand (mtt), else trained inline
    # --fairness balanced: each row's group; the methods that support it (dm, dc) match per
    # (class, group) cell with equal weight. None: plain per-class matching.
    balance: GroupBalance | None = None
    # (N, d) embeddings of the public pool (public: reading it costs no privacy), for methods
    # that select public texts themselves (dpsgd-teacher, pe-vote); None when not given.
    public_embeddings: np.ndarray | None = None
    # Where the method's tensors and generators live (tdd_priv.device); results come back as
    # numpy arrays on the CPU whatever the device.
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # How many texts each class gets (--allocation): equal `per_class` by default. Methods
    # that honour it (MethodInfo.class_sizes) call `class_sizes`; the others refuse it.
    allocation: Allocation = field(default_factory=Allocation)

    @property
    def size(self) -> int:
        """n, the number of private members (treated as public, as the accounting does)."""
        if self.labels is not None:
            return len(self.labels)
        if self.gateway is None:
            raise ValueError("a DistillInput needs the member arrays or a gateway")
        return self.gateway.size

    def exact(self) -> MemberArrays:
        """The member rows; refused for a differentially private input, which has none."""
        if self.embeddings is None or self.labels is None:
            raise ConfigError(
                "this method reads private records directly, which a differentially private "
                "run never allows; run it with --no-dp"
            )
        return MemberArrays(self.embeddings, self.labels)

    def through(self, gateway: PrivateAccess, *, options: Mapping[str, Any]) -> DistillInput:
        """This input for a DP run: the member rows and group ids replaced by `gateway`."""
        balance = self.balance
        public_balance = (
            replace(balance, ids=np.zeros(0, dtype=np.int64)) if balance is not None else None
        )
        return replace(
            self,
            embeddings=None,
            labels=None,
            balance=public_balance,
            gateway=gateway,
            options=options,
        )

    def access(self) -> PrivateAccess:
        """The gateway through which learned methods see the private set."""
        if self.gateway is not None:
            return self.gateway
        data = self.exact()
        if self.balance is None:
            return ExactAccess(data.embeddings, data.labels, self.num_classes, device=self.device)
        return ExactAccess(
            data.embeddings,
            data.labels,
            self.num_classes,
            groups=self.balance.ids,
            num_groups=len(self.balance.names),
            device=self.device,
        )

    def class_sizes(
        self, profile: ClassProfile | None = None, *, capacity: np.ndarray | None = None
    ) -> ClassSizes:
        """(C,) texts per class under the run's allocation; `profile` is the method's estimate
        of each class's frequency and difficulty (needed unless the allocation is equal; under
        DP it must come from the method's own noisy release), `capacity` (C,) caps each."""
        return self.allocation.sizes(
            per_class=self.per_class,
            num_classes=self.num_classes,
            profile=profile,
            capacity=capacity,
        )

    def class_rows(self, label: int) -> np.ndarray:
        """(n_c,) int64 row indices of one class, ascending."""
        return np.flatnonzero(self.exact().labels == label)


@dataclass(frozen=True)
class SyntheticSet:
    """A distilled set of examples per class in embedding space (`per_class` each, or the sizes
    in `allocation`).

    embeddings: (m, d) float32; labels: (m,) int64; soft_labels: (m, C) float32 or None.
    `private_rows` holds the indices into the private training set when the examples *are*
    private records (coresets), so the report can say that nothing about them is private.
    """

    embeddings: np.ndarray
    labels: np.ndarray
    soft_labels: np.ndarray | None
    method: str
    config: dict[str, Any] = field(default_factory=dict)
    loss_history: tuple[float, ...] = ()
    private_rows: np.ndarray | None = None
    privacy: Mapping[str, Any] | None = None  # the privacy report when made under DP
    fairness: Mapping[str, Any] | None = None  # the group-balancing report (--fairness balanced)
    allocation: ClassSizes | None = None  # texts per class and how they were decided
    # When the vectors are public texts the method chose itself: what it fitted them to.
    texts_fitted_to: FitTarget = "method"

    def training_arrays(self, num_classes: int) -> LabeledArrays:
        """The set as a training set for heads: soft labels when learned, else one-hot."""
        if self.soft_labels is not None:
            return LabeledArrays(self.embeddings.astype(np.float32), self.soft_labels)
        return LabeledArrays.from_labels(self.embeddings, self.labels, num_classes)
