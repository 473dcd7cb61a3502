"""Classifier heads trained on sentence embeddings, with hard or soft labels.

A head is a small torch module mapping (n, d) embeddings to (n, C) logits. Heads are built from a
registry and initialised from an explicit generator, so a seed fixes the whole model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tdd_priv.seeding import torch_generator

__all__ = [
    "DEFAULT_TRAINING",
    "HEADS",
    "HeadTraining",
    "LabeledArrays",
    "build_head",
    "model_device",
    "predict",
    "train_head",
]


@dataclass(frozen=True)
class LabeledArrays:
    """Embeddings with targets. `targets` is (n, C) float32: one-hot rows or soft labels."""

    x: np.ndarray
    targets: np.ndarray

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.targets.ndim != 2 or len(self.x) != len(self.targets):
            raise ValueError(
                f"expected x (n, d) and targets (n, C), got {self.x.shape} and {self.targets.shape}"
            )

    @classmethod
    def from_labels(cls, x: np.ndarray, labels: np.ndarray, num_classes: int) -> LabeledArrays:
        targets = np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]
        return cls(np.asarray(x, dtype=np.float32), targets)

    @property
    def labels(self) -> np.ndarray:
        """(n,) int64 hard labels (argmax of the targets)."""
        return self.targets.argmax(axis=1).astype(np.int64)

    @property
    def num_classes(self) -> int:
        return int(self.targets.shape[1])


def _linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    # torch's default Linear init, but drawn from our generator instead of the global RNG, on
    # the generator's device.
    layer = nn.Linear(n_in, n_out, device=generator.device)
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(n_in)
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


def _linear_head(dim: int, classes: int, generator: torch.Generator) -> nn.Module:
    return _linear(dim, classes, generator)


def _mlp_head(dim: int, classes: int, generator: torch.Generator, hidden: int = 256) -> nn.Module:
    return nn.Sequential(
        _linear(dim, hidden, generator), nn.ReLU(), _linear(hidden, classes, generator)
    )


HEADS: dict[str, Callable[[int, int, torch.Generator], nn.Module]] = {
    "linear": _linear_head,
    "mlp": _mlp_head,
}


def build_head(name: str, *, dim: int, classes: int, generator: torch.Generator) -> nn.Module:
    """A freshly initialised head from the registry, on the generator's device."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; valid heads: {', '.join(sorted(HEADS))}")
    return HEADS[name](dim, classes, generator)


@dataclass(frozen=True)
class HeadTraining:
    """Optimiser settings. A fixed number of steps keeps cost independent of the set size."""

    steps: int = 300
    batch_size: int = 256
    learning_rate: float = 1e-2
    weight_decay: float = 1e-4


DEFAULT_TRAINING = HeadTraining()


def train_head(
    name: str,
    data: LabeledArrays,
    *,
    seed: int,
    training: HeadTraining = DEFAULT_TRAINING,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """Train a fresh head on `data` (full batch when it fits, else sampled minibatches) on
    `device`; the model stays there."""
    generator = torch_generator(seed, "head", name, device=device)
    x = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32)).to(device)
    targets = torch.from_numpy(np.ascontiguousarray(data.targets, dtype=np.float32)).to(device)
    model = build_head(name, dim=x.shape[1], classes=targets.shape[1], generator=generator)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay
    )
    full_batch = len(x) <= training.batch_size
    model.train()
    for _ in range(training.steps):
        if full_batch:
            batch_x, batch_t = x, targets
        else:
            index = torch.randint(
                len(x), (training.batch_size,), generator=generator, device=generator.device
            )
            batch_x, batch_t = x[index], targets[index]
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(batch_x), batch_t).backward()
        optimizer.step()
    model.eval()
    return model


@torch.inference_mode()
def predict(model: nn.Module, x: np.ndarray, *, batch_size: int = 8192) -> np.ndarray:
    """(n,) int64 predicted classes, computed on the model's device."""
    device = model_device(model)
    tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    chunks = [
        model(tensor[i : i + batch_size].to(device)).argmax(dim=1).cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(chunks).numpy().astype(np.int64) if chunks else np.zeros(0, np.int64)


def model_device(model: nn.Module) -> torch.device:
    """The device a model's parameters are on (the CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))
