"""Distribution matching (DM; Zhao & Bilen 2023) in embedding space.

Per class, the mean of random feature maps of the synthetic examples is pulled towards the mean
of the same maps over real examples. Each step draws a fresh randomly initialised MLP embedder,
so the set matches the class distribution under many views rather than one.

With `--fairness balanced` (`DistillInput.balance`), the real target of each class is the
equal-weight average over its groups of the per-(class, group) cell means instead of the class
mean (`tdd_priv.methods.balance`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from tdd_priv.errors import ConfigError
from tdd_priv.methods.access import Statistic
from tdd_priv.methods.balance import cell_weights
from tdd_priv.methods.base import DistillInput, SyntheticSet
from tdd_priv.methods.learned import InitMode, initial_set, parse_options, training_steps
from tdd_priv.privacy.calibration import PlannedMechanism
from tdd_priv.seeding import torch_generator

__all__ = ["DMConfig", "distribution_matching", "dm_privacy_plan", "random_embedder"]


@dataclass(frozen=True)
class DMConfig:
    """`release`: "per-step" draws a fresh embedder and real batches every step (under DP each
    step is a noisy release of Poisson-batch class means, composed over `iterations`);
    "one-shot" releases, once, the class means of a fixed bank of `feature_maps` embedders plus
    the embedding itself (DP-MERF / NDPDC style: the DP default, one release whatever the
    number of steps). `unit_features` scales each per-step embedder's rows to unit norm, so
    that clipping them to C = 1 under DP changes nothing (the DP default)."""

    iterations: int = 300
    learning_rate: float = 0.003  # Adam; embedding coordinates are ~1/sqrt(d) ≈ 0.05
    batch_size: int = 256  # real examples per class and step (per-step release)
    hidden: int = 256
    features: int = 128
    release: Literal["per-step", "one-shot"] = "per-step"
    feature_maps: int = 32  # embedders in the one-shot bank
    clip_norm: float = 1.0  # released rows are unit-norm already
    init: InitMode = "real"
    unit_features: bool = False


def random_embedder(
    dim: int, *, hidden: int, features: int, generator: torch.Generator
) -> nn.Module:
    """A freshly initialised MLP (d -> hidden -> features) with a ReLU, drawn from `generator`,
    on its device."""
    device = generator.device
    layers = (nn.Linear(dim, hidden, device=device), nn.Linear(hidden, features, device=device))
    for layer in layers:
        nn.init.normal_(layer.weight, std=(1.0 / layer.in_features) ** 0.5, generator=generator)
        nn.init.normal_(layer.bias, std=0.1, generator=generator)
    net = nn.Sequential(layers[0], nn.ReLU(), layers[1])
    net.requires_grad_(False)
    return net


def _feature_bank(dim: int, config: DMConfig, generator: torch.Generator) -> Statistic:
    """x (n, d) -> (n, p) unit-norm rows: [x, φ_1(x), ..., φ_M(x)] for M fixed embedders.

    Rows are normalised, so clipping them to C = 1 changes nothing and the mean stays unbiased.
    """
    bank = [
        random_embedder(dim, hidden=config.hidden, features=config.features, generator=generator)
        for _ in range(config.feature_maps)
    ]

    def features(x: torch.Tensor) -> torch.Tensor:
        mapped = [x] + [embed(x) / config.feature_maps**0.5 for embed in bank]
        return torch.nn.functional.normalize(torch.cat(mapped, dim=1), dim=1)

    return features


def _unit_rows(statistic: Statistic) -> Statistic:
    return lambda x: torch.nn.functional.normalize(statistic(x), dim=1)


def dm_privacy_plan(
    config: DMConfig, n: int, classes: int, *, balanced: bool = False
) -> list[PlannedMechanism]:
    """One-shot: one release of the class sums of the feature bank, one of the class counts;
    balanced: the same per (class, group) cell (a record lies in one cell: the same
    sensitivity). Per-step: the class counts and, every step, class sums over a Poisson batch
    at q = batch_size·C / n."""
    unit = "cell" if balanced else "class"
    if config.release == "one-shot":
        return [
            PlannedMechanism(f"{unit}_statistic_sums", 1.0, 1),
            PlannedMechanism(f"{unit}_counts", 1.0, 1),
        ]
    if balanced:
        raise ConfigError(
            "--fairness balanced with DP needs dm's one-shot release (release=one-shot)"
        )
    rate = min(1.0, config.batch_size * classes / n)
    return [
        PlannedMechanism("class_counts", 1.0, 1),
        PlannedMechanism("class_statistic_sums", rate, config.iterations),
    ]


def distribution_matching(inputs: DistillInput) -> SyntheticSet:
    config = parse_options(DMConfig, inputs.options, method="dm")
    generator = torch_generator(inputs.seed, "dm", device=inputs.device)
    access = inputs.access()
    classes = access.num_classes
    cells = cell_weights(access, inputs.balance)

    # Each step matches the synthetic class means of a statistic to the real targets: a fresh
    # random embedder and real batches per step, or one release of a fixed feature bank. The
    # target of a class is its mean, or (balanced) the equal-weight mean of its cells' means.
    if config.release == "one-shot":
        bank = _feature_bank(access.dim, config, generator)
        # the only access to private data (with the cell sizes, when balanced)
        released = (
            access.class_means(bank) if cells is None else cells.combine(access.cell_means(bank))
        )

        def step_targets() -> tuple[Statistic, torch.Tensor]:
            return bank, released
    else:

        def step_targets() -> tuple[Statistic, torch.Tensor]:
            embed: Statistic = random_embedder(
                access.dim, hidden=config.hidden, features=config.features, generator=generator
            )
            if config.unit_features:
                embed = _unit_rows(embed)
            if cells is not None:
                means = access.cell_batch_means(
                    embed, batch_size=config.batch_size, generator=generator
                )
                return embed, cells.combine(means)
            return embed, access.class_batch_means(
                embed, batch_size=config.batch_size, generator=generator
            )

    learned = initial_set(
        access,
        per_class=inputs.per_class,
        init=config.init,
        soft_labels=False,
        generator=generator,
        across_groups=cells is not None,
    )
    optimizer = torch.optim.Adam([learned.x], lr=config.learning_rate)
    history: list[float] = []
    for _, bar in training_steps(config.iterations, desc="dm", progress=inputs.progress):
        statistic, real = step_targets()
        loss = learned.x.new_zeros(())
        for c in range(classes):
            loss = loss + (statistic(learned.of_class(c)).mean(dim=0) - real[c]).square().sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(loss.item())
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    result = learned.result(method="dm", config=config, loss_history=history)
    return result if cells is None else replace(result, fairness=cells.report())
