"""Kernel inducing points (KIP; Nguyen et al. 2021): the meta-model family.

Kernel ridge regression with a neural kernel, fitted on the synthetic set S with labels Y_S,
predicts the real examples: loss = mean_i ‖y_i − K(x_i, S)(K(S, S) + λI)⁻¹ Y_S‖². The set and
(optionally) its soft labels follow the gradient of that loss, computed over real batches
through the access gateway (DP-KIP clips and noises exactly these per-example gradients).
Learned soft labels are released calibrated (`tdd_priv.methods.soft_labels`, from the released
set alone): each example's own class leads its soft label, so no class becomes unpredictable.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch

from tdd_priv.errors import ConfigError
from tdd_priv.methods.base import DistillInput, SyntheticSet
from tdd_priv.methods.learned import InitMode, initial_set, parse_options, training_steps
from tdd_priv.methods.soft_labels import (
    SOFT_LABEL_CALIBRATIONS,
    SoftLabelCalibration,
    calibrate_soft_labels,
)
from tdd_priv.privacy.calibration import PlannedMechanism
from tdd_priv.seeding import torch_generator

__all__ = ["KERNELS", "KIPConfig", "kernel_inducing_points", "kip_privacy_plan", "krr_predict"]

Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _relu_arccos(
    a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input kernel Σ0 = a·b, and the ReLU layer's NNGP Σ1 and derivative kernel Σ̇1."""
    sigma0 = a @ b.T
    norms = a.norm(dim=1, keepdim=True) * b.norm(dim=1, keepdim=True).T
    cos = (sigma0 / norms.clamp_min(1e-12)).clamp(-1 + 1e-6, 1 - 1e-6)
    theta = torch.arccos(cos)
    sigma1 = norms * (torch.sin(theta) + (math.pi - theta) * cos) / (2 * math.pi)
    derivative = (math.pi - theta) / (2 * math.pi)
    return sigma0, sigma1, derivative


def ntk_relu(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, m) NTK of an infinitely wide one-hidden-layer ReLU network."""
    sigma0, sigma1, derivative = _relu_arccos(a, b)
    return sigma1 + sigma0 * derivative


def nngp_relu(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, m) NNGP kernel of the same network (only the readout trained)."""
    return _relu_arccos(a, b)[1]


def linear_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a @ b.T


KERNELS: dict[str, Kernel] = {"ntk": ntk_relu, "nngp": nngp_relu, "linear": linear_kernel}


@dataclass(frozen=True)
class KIPConfig:
    kernel: Literal["ntk", "nngp", "linear"] = "ntk"
    regularization: float = 1e-3  # λ relative to the mean diagonal of K(S, S)
    iterations: int = 300
    learning_rate: float = 0.003
    batch_size: int = 1024  # real examples per step, all classes together
    soft_labels: bool = True
    clip_norm: float = 1.0  # per-example gradient clip under DP (DP-KIP)
    init: InitMode = "real"
    # learned soft labels as released: "balanced" (once a class is starved, each class's mass
    # equal to its number of examples, each example's own class ahead;
    # tdd_priv.methods.soft_labels) or "none"
    calibration: SoftLabelCalibration = "balanced"

    def __post_init__(self) -> None:
        if self.calibration not in SOFT_LABEL_CALIBRATIONS:
            raise ConfigError(
                f"unknown calibration {self.calibration!r}; "
                f"valid: {', '.join(SOFT_LABEL_CALIBRATIONS)}"
            )


def krr_predict(
    kernel: Kernel,
    x: torch.Tensor,
    support: torch.Tensor,
    targets: torch.Tensor,
    regularization: float,
) -> torch.Tensor:
    """(n, C) kernel ridge regression predictions at x from the support set (m, d), (m, C)."""
    k_ss = kernel(support, support)
    eye = torch.eye(len(support), dtype=k_ss.dtype, device=k_ss.device)
    ridge = regularization * k_ss.diagonal().mean() * eye
    return kernel(x, support) @ torch.linalg.solve(k_ss + ridge, targets)


def _per_example_loss(
    kernel: Kernel,
    regularization: float,
    classes: int,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
) -> torch.Tensor:
    targets = (
        torch.softmax(params["label_logits"], dim=1)
        if "label_logits" in params
        else params["targets"]
    )
    predicted = krr_predict(kernel, x, params["support"], targets, regularization)
    labels = torch.arange(classes, device=y.device)
    real_targets = (y.unsqueeze(-1) == labels).float()  # one-hot; vmap-safe
    return (predicted - real_targets).square().sum(dim=1)


def kernel_inducing_points(inputs: DistillInput) -> SyntheticSet:
    config = parse_options(KIPConfig, inputs.options, method="kip")
    if config.kernel not in KERNELS:
        raise ValueError(f"unknown kernel {config.kernel!r}; valid: {', '.join(KERNELS)}")
    generator = torch_generator(inputs.seed, "kip", device=inputs.device)
    access = inputs.access()
    classes = access.num_classes
    learned = initial_set(
        access,
        per_class=inputs.per_class,
        init=config.init,
        soft_labels=config.soft_labels,
        generator=generator,
    )
    optimizer = torch.optim.Adam(learned.parameters(), lr=config.learning_rate)
    loss = partial(_per_example_loss, KERNELS[config.kernel], config.regularization, classes)
    history: list[float] = []
    for _, bar in training_steps(config.iterations, desc="kip", progress=inputs.progress):
        params = {"support": learned.x}
        if learned.label_logits is not None:
            params["label_logits"] = learned.label_logits
        else:
            params["targets"] = learned.targets(classes)
        step = access.mean_gradient(loss, params, batch_size=config.batch_size, generator=generator)
        learned.x.grad = step.gradients["support"]
        if learned.label_logits is not None:
            learned.label_logits.grad = step.gradients["label_logits"]
        optimizer.step()
        history.append(math.nan if step.loss is None else step.loss)
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    result = learned.result(method="kip", config=config, loss_history=history)
    if result.soft_labels is None or config.calibration == "none":
        return result
    # post-processing of the released set: its own soft labels and classes, nothing else
    soft = calibrate_soft_labels(result.soft_labels, result.labels)
    return dataclasses.replace(result, soft_labels=soft)


def kip_privacy_plan(config: KIPConfig, n: int, classes: int) -> list[PlannedMechanism]:
    """Per step, one release of the clipped per-example gradient sum at q = batch_size / n."""
    return [PlannedMechanism("gradient_sums", min(1.0, config.batch_size / n), config.iterations)]
