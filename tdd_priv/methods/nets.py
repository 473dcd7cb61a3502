"""Small classifier networks used inside the matching objectives, in functional form."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

__all__ = ["Params", "build_net", "cross_entropy", "net_params", "unflatten"]

Params = Mapping[str, torch.Tensor]


def build_net(dim: int, classes: int, *, hidden: int, generator: torch.Generator) -> nn.Module:
    """An MLP (d -> hidden -> C, ReLU) or, with hidden = 0, a linear model; seeded init, on the
    generator's device."""
    sizes = [dim, hidden, classes] if hidden else [dim, classes]
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        layer = nn.Linear(n_in, n_out, device=generator.device)
        nn.init.kaiming_uniform_(layer.weight, a=5**0.5, generator=generator)
        nn.init.uniform_(layer.bias, -(n_in**-0.5), n_in**-0.5, generator=generator)
        layers += [layer, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def net_params(net: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in net.named_parameters()}


def cross_entropy(net: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(n,) per-example cross-entropy of the net with `params`; y is (n,) ids or (n, C) probs."""
    return F.cross_entropy(functional_call(net, dict(params), (x,)), y, reduction="none")


def unflatten(flat: torch.Tensor, like: Params) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for name, p in like.items():
        out[name] = flat[start : start + p.numel()].view_as(p)
        start += p.numel()
    return out
