"""Trajectory matching (MTT; Cazenavette et al. 2022) in embedding space.

Experts are classifiers trained on the real data; their parameters are stored after every
epoch. A student starts from an expert checkpoint, takes a few gradient steps on the synthetic
set with a learnable learning rate, and the set is optimised so that the student lands near the
expert's checkpoint a few epochs later (distance normalised by how far the expert moved).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from tdd_priv.errors import ConfigError
from tdd_priv.methods.access import ExpertTraining
from tdd_priv.methods.base import DistillInput, SyntheticSet
from tdd_priv.methods.experts import ExpertTrajectories
from tdd_priv.methods.learned import InitMode, initial_set, parse_options, training_steps
from tdd_priv.methods.nets import build_net, cross_entropy, net_params, unflatten
from tdd_priv.privacy.calibration import PlannedMechanism
from tdd_priv.privacy.dpsgd import dpsgd_plan
from tdd_priv.seeding import torch_generator

__all__ = ["MTTConfig", "mtt_privacy_plan", "train_experts", "trajectory_matching"]


@dataclass(frozen=True)
class MTTConfig:
    experts: int = 4
    expert_epochs: int = 8
    expert_learning_rate: float = 0.1
    expert_batch_size: int = 128
    max_start_epoch: int = 4  # student starts at an expert checkpoint in [0, this]
    expert_span: int = 2  # ... and aims at the checkpoint this many epochs later
    student_steps: int = 20  # gradient steps of the student on the synthetic set
    initial_student_lr: float = 0.1
    hidden: int = (
        0  # linear experts: MLP experts gave sets that fail fresh heads on SST-2/HateCheck
    )
    iterations: int = 300
    learning_rate: float = 0.003
    lr_learning_rate: float = 1e-3
    soft_labels: bool = False
    clip_norm: float = 1.0  # per-example gradient clip of the DP-SGD experts
    init: InitMode = "real"


def _config(inputs: DistillInput) -> MTTConfig:
    config = parse_options(MTTConfig, inputs.options, method="mtt")
    if config.max_start_epoch + config.expert_span > config.expert_epochs:
        raise ValueError("mtt needs max_start_epoch + expert_span <= expert_epochs")
    return config


def train_experts(inputs: DistillInput) -> ExpertTrajectories:
    """Train the experts on the private set (through its gateway: DP-SGD under DP).

    They draw from their own seeded stream, so experts trained here and reused later give the
    same synthetic set as experts trained inside `trajectory_matching`.
    """
    config = _config(inputs)
    generator = torch_generator(inputs.seed, "mtt-experts", device=inputs.device)
    access = inputs.access()
    training = ExpertTraining(
        config.expert_epochs, config.expert_learning_rate, config.expert_batch_size
    )
    trajectories = []
    for _ in range(config.experts):
        expert = build_net(
            access.dim, access.num_classes, hidden=config.hidden, generator=generator
        )
        trajectory = access.expert_trajectory(expert, training=training, generator=generator)
        trajectories.append(torch.stack(trajectory))
    return ExpertTrajectories(torch.stack(trajectories))


def trajectory_matching(inputs: DistillInput) -> SyntheticSet:
    config = _config(inputs)
    experts = inputs.experts if inputs.experts is not None else train_experts(inputs)
    generator = torch_generator(inputs.seed, "mtt", device=inputs.device)
    access = inputs.access()
    classes = access.num_classes
    net = build_net(access.dim, classes, hidden=config.hidden, generator=generator)
    template = net_params(net)
    size = sum(p.numel() for p in template.values())
    if experts.checkpoints.shape[1:] != (config.expert_epochs + 1, size):
        raise ConfigError(
            f"the expert trajectories have shape {tuple(experts.checkpoints.shape)}, but mtt with "
            f"these options needs (experts, {config.expert_epochs + 1}, {size})"
        )
    trajectories = experts.checkpoints.to(inputs.device)

    learned = initial_set(
        access,
        per_class=inputs.per_class,
        init=config.init,
        soft_labels=config.soft_labels,
        generator=generator,
    )
    log_lr = (
        torch.tensor(float(config.initial_student_lr), device=inputs.device)
        .log()
        .requires_grad_(True)
    )
    optimizer = torch.optim.Adam(learned.parameters(), lr=config.learning_rate)
    lr_optimizer = torch.optim.Adam([log_lr], lr=config.lr_learning_rate)
    loss_of = partial(cross_entropy, net)
    history: list[float] = []
    for _, bar in training_steps(config.iterations, desc="mtt", progress=inputs.progress):
        draw = torch.randint(len(trajectories), (1,), generator=generator, device=generator.device)
        trajectory = trajectories[int(draw)]
        start = int(
            torch.randint(
                config.max_start_epoch + 1, (1,), generator=generator, device=generator.device
            )
        )
        begin, target = trajectory[start], trajectory[start + config.expert_span]
        student = begin.clone().requires_grad_(True)
        targets = learned.targets(classes)
        lr = log_lr.exp()
        for _ in range(config.student_steps):
            step_loss = loss_of(unflatten(student, template), learned.x, targets).mean()
            (grad,) = torch.autograd.grad(step_loss, student, create_graph=True)
            student = student - lr * grad
        loss = (student - target).square().sum() / (begin - target).square().sum()
        optimizer.zero_grad(set_to_none=True)
        lr_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lr_optimizer.step()
        history.append(loss.item())
        bar.set_postfix(loss=f"{history[-1]:.4f}", lr=f"{lr.item():.3f}")
    result = learned.result(method="mtt", config=config, loss_history=history)
    result.config["learned_student_lr"] = log_lr.exp().item()
    return result


def mtt_privacy_plan(config: MTTConfig, n: int, classes: int) -> list[PlannedMechanism]:
    """Every expert is a full DP-SGD run over the private data; the experts compose."""
    one = dpsgd_plan(n, batch_size=config.expert_batch_size, epochs=config.expert_epochs)
    return [PlannedMechanism(one.name, one.sample_rate, one.steps * config.experts)]
