"""The DP-SGD baseline: the evaluation heads trained directly on the private embeddings.

Every DP synthetic set is compared with this: the same head architectures (`tdd_priv.heads`),
trained on the real private training set by opacus (Poisson sampling at rate q, per-example
clipping to C, Gaussian noise σ·C on each step's sum), with σ calibrated so that the whole
training run (epochs × steps per epoch releases) spends at most the target (ε, δ) under RDP.
Each trained model is one (ε, δ)-DP release on its own; the baseline models are not released,
only their test accuracies (which, like all utility numbers, are outside the guarantee).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.grad_sample.gsm_base import (
    AbstractGradSampleModule,
)
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from tdd_priv.evaluate import HeadScores, ModelScore, Utility, score_predictions
from tdd_priv.heads import LabeledArrays, build_head, predict
from tdd_priv.privacy.calibration import PlannedMechanism, calibrate_noise, check_delta
from tdd_priv.privacy.ledger import AccountingError, MechanismRecord, compute_epsilon
from tdd_priv.seeding import derive_seed, torch_generator

__all__ = [
    "DEFAULT_DPSGD",
    "DPSGDResult",
    "DPSGDTraining",
    "dpsgd_plan",
    "dpsgd_trajectory",
    "dpsgd_utility",
    "train_dpsgd",
]

MECHANISM_NAME = "dp_sgd"


@dataclass(frozen=True)
class DPSGDTraining:
    """DP-SGD settings (public hyperparameters; choosing them costs no privacy here).

    `batch_size`: expected batch size B; the Poisson sample rate is q = 1 / ceil(n / B), as opacus
    derives it. `epochs`: passes of ceil(n / B) steps each. `max_grad_norm`: clip norm C (the head
    inputs are unit-norm embeddings, so C = 1 clips little). `optimizer`: Adam or SGD with
    momentum, `learning_rate` for it. `grad_sample_mode`: how opacus gets per-example gradient
    norms: "ghost" (ghost clipping: norms without materialising per-example gradients, ~30x
    faster for the MLP head) or "hooks" (materialised per-example gradients); same result.
    """

    epochs: int = 20
    batch_size: int = 1024
    max_grad_norm: float = 1.0
    learning_rate: float = 1e-2
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.9
    grad_sample_mode: Literal["ghost", "hooks"] = "ghost"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self}")
        if not self.max_grad_norm > 0 or math.isinf(self.max_grad_norm):
            raise ValueError(f"max_grad_norm must be finite and > 0, got {self.max_grad_norm}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid optimizers: adam, sgd")
        if self.grad_sample_mode not in ("ghost", "hooks"):
            raise ValueError(
                f"unknown grad_sample_mode {self.grad_sample_mode!r}; valid modes: ghost, hooks"
            )


DEFAULT_DPSGD = DPSGDTraining()


@dataclass(frozen=True)
class DPSGDResult:
    """A head trained with DP-SGD and the mechanism it spent (σ, q, steps)."""

    model: nn.Module
    record: MechanismRecord
    delta: float

    @property
    def epsilon(self) -> float:
        """ε of this training run by the RDP accountant (<= the target it was calibrated to)."""
        return compute_epsilon([self.record], delta=self.delta)


class _Rows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(x, y) rows whose batches are gathered with one index operation, not row by row.

    `__getitems__` returns the batch already stacked, so the loader's collate is the identity;
    an empty index list gives (0, d) and (0,) tensors, which the loop below handles.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        return [self.x[index], self.y[index]]


def _stacked(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    return batch


@lru_cache(maxsize=64)
def _noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """σ for `steps` DP-SGD steps at rate q; cached because every baseline model shares it."""
    plan = [PlannedMechanism(MECHANISM_NAME, sample_rate, steps)]
    return calibrate_noise(target_epsilon=epsilon, delta=delta, plan=plan)


def _optimizer(model: nn.Module, training: DPSGDTraining) -> torch.optim.Optimizer:
    if training.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=training.learning_rate)
    return torch.optim.SGD(
        model.parameters(), lr=training.learning_rate, momentum=training.momentum
    )


def _private_engine() -> PrivacyEngine:
    with warnings.catch_warnings():
        # opacus warns that secure_mode is off. It must be: secure mode draws from /dev/urandom and
        # refuses a seeded generator, and a seed must fix the whole run (DESIGN, convention 4).
        warnings.filterwarnings("ignore", message="Secure RNG turned off", category=UserWarning)
        return PrivacyEngine(accountant="rdp", secure_mode=False)


def _private_fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    noise_multiplier: float,
    max_grad_norm: float,
    batch_size: int,
    epochs: int,
    grad_sample_mode: str,
    seed: int,
    on_epoch: Callable[[nn.Module], None] | None = None,
) -> tuple[nn.Module, MechanismRecord]:
    """Train `model` in place with opacus DP-SGD; returns the plain module and what it spent.

    Poisson batches at q = 1 / ceil(n / B), clipping to C, noise σ·C, `epochs` × ceil(n / B)
    steps; `on_epoch(model)` sees the model after every epoch (trajectory matching stores it).
    """
    loader = DataLoader(
        _Rows(x, y),
        batch_size=min(batch_size, len(x)),
        collate_fn=_stacked,
        generator=torch_generator(seed, "dp_sgd", "poisson"),
    )
    sample_rate = 1.0 / len(loader)
    steps = epochs * len(loader)
    engine = _private_engine()
    criterion = nn.CrossEntropyLoss()
    with warnings.catch_warnings():
        # opacus's per-sample hooks are full backward hooks; torch warns that they fire with
        # respect to module outputs when the inputs (the embeddings) need no gradient. That is
        # what opacus relies on: activations come from the forward hook and output gradients
        # from this one, so the warning carries no information here.
        warnings.filterwarnings(
            "ignore", message="Full backward hook is firing", category=UserWarning
        )
        private = engine.make_private(
            module=model,
            optimizer=optimizer,
            criterion=criterion,
            data_loader=loader,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            poisson_sampling=True,
            noise_generator=torch_generator(seed, "dp_sgd", "noise"),
            grad_sample_mode=grad_sample_mode,
        )
        if grad_sample_mode == "ghost":
            private_model, private_optimizer, private_criterion, private_loader = private
        else:
            private_model, private_optimizer, private_loader = private
            private_criterion = criterion
        private_model.train()
        for _ in range(epochs):
            for batch_x, batch_y in private_loader:
                private_optimizer.zero_grad(set_to_none=True)
                logits = private_model(batch_x)
                # An empty Poisson batch still takes a (noise-only) step, so the number of steps
                # never depends on who is in the data; its zero loss keeps the graph connected.
                empty = len(batch_y) == 0
                loss = logits.sum() * 0.0 if empty else private_criterion(logits, batch_y)
                loss.backward()
                private_optimizer.step()
            if on_epoch is not None:
                on_epoch(model)
    record = MechanismRecord(MECHANISM_NAME, noise_multiplier, sample_rate, steps)
    spent = engine.accountant.history
    if spent != [record.history_entry]:
        raise AccountingError(f"opacus accounted {spent}, but the plan was {record.history_entry}")
    if not isinstance(private_model, AbstractGradSampleModule):
        raise TypeError(f"opacus returned {type(private_model).__name__}, not a GradSampleModule")
    trained = private_model.to_standard_module()
    trained.eval()
    return trained, record


def dpsgd_plan(
    n: int, *, batch_size: int, epochs: int, name: str = MECHANISM_NAME
) -> PlannedMechanism:
    """The mechanism `_private_fit` will spend on n rows (opacus's q = 1 / ceil(n / B))."""
    steps_per_epoch = math.ceil(n / min(batch_size, n))
    return PlannedMechanism(name, 1.0 / steps_per_epoch, epochs * steps_per_epoch)


def train_dpsgd(
    head: str,
    data: LabeledArrays,
    *,
    epsilon: float,
    delta: float,
    seed: int,
    training: DPSGDTraining = DEFAULT_DPSGD,
) -> DPSGDResult:
    """Train a fresh `head` on `data` (real private embeddings, hard labels) with DP-SGD.

    σ is calibrated so that all epochs × steps together spend at most (ε, δ) by RDP;
    `epsilon = math.inf` trains with clipping but no noise. Deterministic given `seed`: the head
    init, the Poisson batches and the noise each come from their own seeded generator.
    """
    n = len(data.x)
    check_delta(delta, n)
    x = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32))
    y = torch.from_numpy(data.labels)
    model = build_head(
        head,
        dim=x.shape[1],
        classes=data.num_classes,
        generator=torch_generator(seed, "head", head),
    )
    plan = dpsgd_plan(n, batch_size=training.batch_size, epochs=training.epochs)
    noise_multiplier = _noise_multiplier(float(epsilon), float(delta), plan.sample_rate, plan.steps)
    trained, record = _private_fit(
        model,
        _optimizer(model, training),
        x,
        y,
        noise_multiplier=noise_multiplier,
        max_grad_norm=training.max_grad_norm,
        batch_size=training.batch_size,
        epochs=training.epochs,
        grad_sample_mode=training.grad_sample_mode,
        seed=seed,
    )
    return DPSGDResult(trained, record, delta)


def dpsgd_trajectory(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    noise_multiplier: float,
    max_grad_norm: float,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> tuple[list[torch.Tensor], MechanismRecord]:
    """An expert for trajectory matching, trained with plain DP-SGD (no momentum) at a given σ:
    its flat parameters at the start and after every epoch, and the mechanism it spent."""

    def flat(module: nn.Module) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).clone()

    trajectory = [flat(model)]
    _, record = _private_fit(
        model,
        torch.optim.SGD(model.parameters(), lr=learning_rate),
        x,
        y,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        batch_size=batch_size,
        epochs=epochs,
        grad_sample_mode="hooks",
        seed=seed,
        on_epoch=lambda module: trajectory.append(flat(module)),
    )
    return trajectory, record


def dpsgd_utility(
    train: LabeledArrays,
    test: LabeledArrays,
    *,
    heads: Sequence[str],
    seeds: int,
    seed: int,
    epsilon: float,
    delta: float,
    training: DPSGDTraining = DEFAULT_DPSGD,
    label: str = "dp-sgd",
    progress: bool = True,
) -> Utility:
    """Like `tdd_priv.evaluate.evaluate`, with each model trained by DP-SGD on `train` at (ε, δ).

    Same heads, same per-model seeds (`derive_seed(seed, "model", i)`), same test metrics, so
    `utility.dp_sgd` lines up with `utility.synthetic` model for model.
    """
    test_labels = test.labels
    jobs = [(head, i) for head in heads for i in range(seeds)]
    scores: dict[str, list[ModelScore]] = {head: [] for head in heads}
    for head, i in tqdm(jobs, desc=label, unit="model", disable=not progress, leave=False):
        model_seed = derive_seed(seed, "model", i)
        result = train_dpsgd(
            head, train, epsilon=epsilon, delta=delta, seed=model_seed, training=training
        )
        predicted = predict(result.model, test.x)
        scores[head].append(score_predictions(test_labels, predicted, test.num_classes))
    return Utility(tuple(HeadScores(head, tuple(scores[head])) for head in heads))
