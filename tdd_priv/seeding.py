"""One seed fixes everything: named, independent sub-seeds and explicit generators."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

__all__ = ["derive_seed", "numpy_rng", "torch_generator"]


def derive_seed(seed: int, *stream: str | int) -> int:
    """A 63-bit seed for the named stream of `seed`; stable across processes and versions.

    Hash-derived rather than `seed + i` so that nearby run seeds never share streams.
    """
    key = ":".join([str(seed), *map(str, stream)]).encode("utf-8")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


def numpy_rng(seed: int, *stream: str | int) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *stream))


def torch_generator(
    seed: int, *stream: str | int, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A generator for the named stream of `seed`, on `device` (it must be the device of the
    tensors it draws). The stream's seed is the same on every device; the draws are not (CPU
    and CUDA generators are different algorithms), see tdd_priv.device."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, *stream))
