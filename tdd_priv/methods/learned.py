"""What the learned methods (dm, dc, mtt, kip) share: options, the learnable set, the loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import torch
from tqdm.auto import tqdm

from tdd_priv.config import validate_settings
from tdd_priv.errors import ConfigError
from tdd_priv.methods.access import PrivateAccess
from tdd_priv.methods.base import SyntheticSet

__all__ = ["InitMode", "LearnedSet", "initial_set", "parse_options", "training_steps"]

InitMode = Literal["real", "noise"]
C = TypeVar("C")


def parse_options(config_type: type[C], options: Mapping[str, Any], *, method: str) -> C:
    """The method's config dataclass from `method_options`: unknown keys list the known ones,
    and each value is checked against its annotation (strictly: `iterations: "500"` or `2.5`
    is refused), so a bad option fails when the config is read, not mid-run."""
    known = {field.name for field in dataclasses.fields(config_type)}  # type: ignore[arg-type]
    unknown = sorted(str(name) for name in set(options) - known)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for method '{method}'; "
            f"known: {', '.join(sorted(known))}."
        )
    return validate_settings(
        config_type, options, where=f"method '{method}' options", prefix="method_options."
    )


@dataclass
class LearnedSet:
    """The learnable synthetic set: x (m, d); labels (m,) int64; label_logits (m, C) or None."""

    x: torch.Tensor
    labels: torch.Tensor
    label_logits: torch.Tensor | None

    def parameters(self) -> list[torch.Tensor]:
        return [self.x] if self.label_logits is None else [self.x, self.label_logits]

    def targets(self, num_classes: int) -> torch.Tensor:
        """(m, C) training targets: softmax of the learned logits, else one-hot."""
        if self.label_logits is not None:
            return torch.softmax(self.label_logits, dim=1)
        return torch.nn.functional.one_hot(self.labels, num_classes).float()

    def of_class(self, label: int) -> torch.Tensor:
        return self.x[self.labels == label]

    def result(self, *, method: str, config: Any, loss_history: list[float]) -> SyntheticSet:
        soft = None
        if self.label_logits is not None:
            soft = torch.softmax(self.label_logits.detach(), dim=1).cpu().numpy()
        return SyntheticSet(
            embeddings=self.x.detach().cpu().numpy().copy(),
            labels=self.labels.cpu().numpy().copy(),
            soft_labels=soft,
            method=method,
            config=dataclasses.asdict(config),
            loss_history=tuple(loss_history),
        )


def initial_set(
    access: PrivateAccess,
    *,
    per_class: int,
    init: InitMode,
    soft_labels: bool,
    label_scale: float = 3.0,
    generator: torch.Generator,
    across_groups: bool = False,
) -> LearnedSet:
    """k examples per class, from random real examples or from unit-norm Gaussian noise, on the
    gateway's device (`generator` must be there too).

    Learned soft labels start as scaled one-hot logits (softmax ≈ the class). `across_groups`
    (group-balanced matching): real examples are spread evenly over each class's groups.
    """
    classes = access.num_classes
    device = access.device
    if init == "real":
        x = torch.cat(
            [
                access.sample_examples(
                    label=c, count=per_class, generator=generator, across_groups=across_groups
                )
                for c in range(classes)
            ]
        )
    elif init == "noise":
        x = torch.randn(classes * per_class, access.dim, generator=generator, device=device)
        x = x / x.norm(dim=1, keepdim=True)
    else:
        raise ConfigError(f"unknown init {init!r}; valid: real, noise")
    labels = torch.arange(classes, device=device).repeat_interleave(per_class)
    logits = None
    if soft_labels:
        logits = (
            label_scale * torch.nn.functional.one_hot(labels, classes).float()
        ).requires_grad_(True)
    return LearnedSet(x.clone().requires_grad_(True), labels, logits)


def training_steps(iterations: int, *, desc: str, progress: bool) -> Iterator[tuple[int, Any]]:
    """(step, bar) pairs; call `bar.set_postfix(loss=...)` to show the matching loss."""
    bar = tqdm(range(iterations), desc=desc, unit="step", disable=not progress, leave=False)
    for step in bar:
        yield step, bar
