"""The mechanisms through which private data is accessed: pure functions of tensors.

Every private statistic a run releases is computed here: per-example clipping to an L2 norm C,
a sum of clipped rows plus Gaussian noise of standard deviation σ·C (the sum of clipped rows has
L2 sensitivity C under add/remove adjacency), Poisson sampling with rate q, noisy class
counts (sensitivity 1), and per-class nearest-neighbour vote histograms over public candidates
(each record's vote vector has L2 norm 1, so sensitivity 1). Randomness comes only from the
explicit `torch.Generator` passed in.

Oracles: σ = 0 adds no noise (and draws nothing from the generator); C = ∞ leaves every row
unchanged, bit for bit. Together they reproduce the plain, non-private computation exactly.

Which (σ, q, steps) each call spends is recorded by the caller in a `PrivacyLedger`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import overload

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

__all__ = [
    "clip_per_example",
    "clip_per_example_grads",
    "gaussian_class_sums",
    "gaussian_sum",
    "gaussian_vote_histogram",
    "nearest_candidates",
    "noisy_counts",
    "per_example_grads",
    "per_example_norms",
    "poisson_sample",
]

# The clip factor is shrunk by this many machine epsilons of the row's dtype, so that rounding in
# the scaling multiply can never leave a clipped row's norm above C.
_CLIP_MARGIN_ULPS = 64


def _check_norm_bound(max_norm: float) -> None:
    if math.isnan(max_norm) or max_norm <= 0:
        raise ValueError(f"max_norm (the clip norm C) must be > 0 or math.inf, got {max_norm}")


def _check_noise_multiplier(noise_multiplier: float) -> None:
    if not math.isfinite(noise_multiplier) or noise_multiplier < 0:
        raise ValueError(f"noise_multiplier σ must be finite and >= 0, got {noise_multiplier}")


def _rows(per_example: Tensor) -> Tensor:
    if per_example.ndim < 1:
        raise ValueError("per-example values need a leading example dimension: shape (n, ...)")
    if not per_example.is_floating_point():
        raise ValueError(f"per-example values must be floating point, got {per_example.dtype}")
    # Not reshape(n, -1): that fails for an empty batch (n = 0), which must still release.
    return per_example.reshape(per_example.shape[0], math.prod(per_example.shape[1:]))


def per_example_norms(*per_example: Tensor) -> Tensor:
    """(n,) float64 L2 norm of each example over all given tensors (each (n, ...)) together.

    Squares are summed in float64: for float32 and narrower inputs no square can overflow or
    underflow there; float64 rows are first divided by their largest entry (across all
    tensors). Non-finite entries raise `ValueError`.
    """
    if not per_example:
        raise ValueError("per_example_norms needs at least one tensor")
    rows = [_rows(t) for t in per_example]
    n = rows[0].shape[0]
    if any(r.shape[0] != n for r in rows):
        raise ValueError(f"tensors disagree on the number of examples: {[len(r) for r in rows]}")
    rows = [r.detach() for r in rows if r.shape[1] > 0]
    if not rows:
        return torch.zeros(n, dtype=torch.float64)
    # The largest |entry| per row is NaN or inf exactly when the row holds a NaN or an inf.
    scale = torch.stack(
        [torch.linalg.vector_norm(r, ord=math.inf, dim=1).to(torch.float64) for r in rows]
    ).amax(0)
    if not bool(torch.isfinite(scale).all()):
        raise ValueError("per-example values contain NaN or infinity; clipping needs finite rows")
    if all(torch.finfo(r.dtype).bits <= 32 for r in rows):
        squares = sum(torch.linalg.vector_norm(r, dim=1, dtype=torch.float64) ** 2 for r in rows)
        return torch.as_tensor(squares).sqrt()
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    squares = sum(
        torch.linalg.vector_norm(r / safe.to(r.dtype)[:, None], dim=1, dtype=torch.float64) ** 2
        for r in rows
    )
    return torch.as_tensor(squares).sqrt() * scale


def _clip_factors(norms: Tensor, max_norm: float, dtype: torch.dtype) -> Tensor:
    """(n,) float64 factors in [0, 1]: 1 where the row is within C (always when C = ∞)."""
    if math.isinf(max_norm):
        return torch.ones_like(norms)
    shrink = 1.0 - _CLIP_MARGIN_ULPS * torch.finfo(dtype).eps
    with torch.no_grad():
        ratio = torch.where(norms > 0, max_norm / norms, torch.full_like(norms, math.inf))
    return torch.where(norms > max_norm * shrink, ratio * shrink, torch.ones_like(norms))


def _scale_rows(per_example: Tensor, factors: Tensor) -> Tensor:
    """Row i times factors[i] (float64), rounded once into the input's dtype."""
    shape = (per_example.shape[0],) + (1,) * (per_example.ndim - 1)
    dtype = per_example.dtype
    if bool((factors >= torch.finfo(dtype).tiny).all()):
        return per_example * factors.to(dtype).reshape(shape)
    # A factor below the dtype's smallest normal number (a huge row clipped to a small C) would
    # lose its precision or vanish when cast: multiply in float64 and round only the product.
    return (per_example.to(torch.float64) * factors.reshape(shape)).to(dtype)


def _bounded(clipped: Sequence[Tensor], max_norm: float) -> list[Tensor]:
    """Zero any row that rounding into its dtype left above C (only possible when C·(row's share)
    falls into the subnormal range). Any map into the C-ball keeps the sensitivity C."""
    over = per_example_norms(*clipped) > max_norm
    if not bool(over.any()):
        return list(clipped)
    return [_scale_rows(t, (~over).to(torch.float64)) for t in clipped]


def clip_per_example(per_example: Tensor, *, max_norm: float) -> Tensor:
    """Scale each example's row (n, ...) to L2 norm <= `max_norm` (C); rows within C are kept.

    Returns a tensor of the input's shape and dtype. C = math.inf returns the values unchanged.
    """
    _check_norm_bound(max_norm)
    if math.isinf(max_norm):
        _rows(per_example)
        return per_example.clone()
    factors = _clip_factors(per_example_norms(per_example), max_norm, per_example.dtype)
    return _bounded([_scale_rows(per_example, factors)], max_norm)[0]


@overload
def clip_per_example_grads(
    grads: Mapping[str, Tensor], *, max_norm: float
) -> dict[str, Tensor]: ...
@overload
def clip_per_example_grads(grads: Sequence[Tensor], *, max_norm: float) -> list[Tensor]: ...
def clip_per_example_grads(
    grads: Mapping[str, Tensor] | Sequence[Tensor], *, max_norm: float
) -> dict[str, Tensor] | list[Tensor]:
    """Clip per-example gradients given per parameter ({name: (n, *shape)} or [(n, *shape)]).

    The norm of example i is taken over all parameters together ("flat" clipping, as opacus
    does), and every parameter's row i is scaled by the same factor. Returns the same container
    type (a dict for a mapping, a list for a sequence).
    """
    _check_norm_bound(max_norm)
    tensors = list(grads.values()) if isinstance(grads, Mapping) else list(grads)
    if not tensors:
        raise ValueError("no per-example gradients to clip")
    if math.isinf(max_norm):
        per_example_norms(*tensors)  # validates shapes and finiteness
        clipped = [t.clone() for t in tensors]
    else:
        dtype = min((t.dtype for t in tensors), key=lambda d: torch.finfo(d).bits)
        factors = _clip_factors(per_example_norms(*tensors), max_norm, dtype)
        clipped = _bounded([_scale_rows(t, factors) for t in tensors], max_norm)
    if isinstance(grads, Mapping):
        return dict(zip(grads.keys(), clipped, strict=True))
    return clipped


def _gaussian_noise(
    shape: torch.Size, *, std: float, like: Tensor, generator: torch.Generator
) -> Tensor:
    noise = torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)
    return noise * std


def gaussian_sum(
    per_example: Tensor, *, noise_multiplier: float, max_norm: float, generator: torch.Generator
) -> Tensor:
    """Sum over examples of the clipped rows of `per_example` (n, ...), plus N(0, (σ·C)²) noise.

    Returns shape `per_example.shape[1:]`, same dtype. One call is one Gaussian mechanism with
    L2 sensitivity C (add/remove one example changes the clipped sum by at most C). σ = 0 returns
    the exact sum of clipped rows and draws nothing from `generator`; σ > 0 needs a finite C.
    """
    _check_noise_multiplier(noise_multiplier)
    if noise_multiplier > 0 and math.isinf(max_norm):
        raise ValueError("noise σ·C is infinite: a noisy sum needs a finite clip norm max_norm")
    total = clip_per_example(per_example, max_norm=max_norm).sum(dim=0)
    if noise_multiplier == 0:
        return total
    std = noise_multiplier * max_norm
    return total + _gaussian_noise(total.shape, std=std, like=total, generator=generator)


def gaussian_class_sums(
    per_example: Tensor,
    labels: Tensor,
    num_classes: int,
    *,
    noise_multiplier: float,
    max_norm: float,
    generator: torch.Generator,
) -> Tensor:
    """Per-class sums of clipped rows, (num_classes, ...), each entry plus N(0, (σ·C)²) noise.

    `per_example` (n, ...), `labels` (n,) int64 in [0, num_classes). Each example lands in one
    class only, so all class sums together still have L2 sensitivity C: the whole table is ONE
    Gaussian mechanism, recorded once. σ = 0 gives the exact per-class sums of clipped rows.
    """
    _check_noise_multiplier(noise_multiplier)
    if noise_multiplier > 0 and math.isinf(max_norm):
        raise ValueError("noise σ·C is infinite: noisy class sums need a finite clip norm max_norm")
    labels = _check_labels(labels, num_classes, len(per_example))
    clipped = clip_per_example(per_example, max_norm=max_norm)
    sums = torch.zeros(
        (num_classes, *per_example.shape[1:]), dtype=per_example.dtype, device=per_example.device
    )
    sums.index_add_(0, labels, clipped)
    if noise_multiplier == 0:
        return sums
    std = noise_multiplier * max_norm
    return sums + _gaussian_noise(sums.shape, std=std, like=sums, generator=generator)


def _check_labels(labels: Tensor, num_classes: int, n: int) -> Tensor:
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class ids, got {labels.dtype}")
    labels = labels.to(torch.int64)
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]"
        )
    return labels


def poisson_sample(n: int, *, sample_rate: float, generator: torch.Generator) -> Tensor:
    """(m,) int64 sorted row indices: each of the n rows is kept independently with prob. q.

    The batch size m is random (mean q·n). Same rule as opacus's Poisson sampler: row i is kept
    when a uniform draw in [0, 1) is below q, so q = 1 keeps every row and q = 0 none.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= sample_rate <= 1.0:
        raise ValueError(f"sample_rate q must lie in [0, 1], got {sample_rate}")
    keep = torch.rand(n, generator=generator) < sample_rate
    return keep.nonzero(as_tuple=False).reshape(-1)


def noisy_counts(
    labels: Tensor, num_classes: int, *, noise_multiplier: float, generator: torch.Generator
) -> Tensor:
    """(num_classes,) float64 class counts plus N(0, σ²) noise each (L2 sensitivity 1).

    Adding or removing one record changes one count by 1, so σ is both the noise multiplier and
    the noise standard deviation. σ = 0 returns the exact counts. Counts may come out negative or
    fractional; clamping or rounding them afterwards is post-processing.
    """
    _check_noise_multiplier(noise_multiplier)
    labels = _check_labels(labels, num_classes, len(torch.as_tensor(labels)))
    counts = torch.bincount(labels, minlength=num_classes).to(torch.float64)
    if noise_multiplier == 0:
        return counts
    return counts + _gaussian_noise(
        counts.shape, std=noise_multiplier, like=counts, generator=generator
    )


def nearest_candidates(
    x: Tensor, candidates: Tensor, *, neighbors: int, block_rows: int = 1024
) -> Tensor:
    """(n, K) int64: for each row of `x` (n, d), its K = `neighbors` most similar rows of
    `candidates` (N, d) by float32 dot product (cosine for unit-norm rows), most similar first;
    equal similarities go to the lower candidate index. Releases nothing by itself: these are
    per-example votes for `gaussian_vote_histogram`. Similarities are computed `block_rows`
    rows at a time, so memory stays O(block_rows · N) for any n.
    """
    if x.ndim != 2 or candidates.ndim != 2 or x.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"x (n, d) and candidates (N, d) must share d, got {tuple(x.shape)} and "
            f"{tuple(candidates.shape)}"
        )
    if not 1 <= neighbors <= len(candidates):
        raise ValueError(
            f"neighbors K must lie in [1, {len(candidates)}] (the number of candidates), "
            f"got {neighbors}"
        )
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    pool = candidates.detach().to(torch.float32)
    blocks = [
        _top_similar(part.to(torch.float32) @ pool.T, neighbors) for part in x.split(block_rows)
    ]
    if not blocks:
        return torch.zeros((0, neighbors), dtype=torch.int64)
    return torch.cat(blocks)


def _top_similar(similarity: Tensor, k: int) -> Tensor:
    """(m, k) int64 column indices of the k largest entries per row, largest first, equal values
    in ascending index order (torch.topk alone leaves the order of ties unspecified)."""
    if k == similarity.shape[1]:
        return torch.argsort(similarity, dim=1, descending=True, stable=True)
    top = torch.topk(similarity, k + 1, dim=1)
    indices = top.indices[:, :k].clone()
    values = top.values
    # Rows with a tie anywhere among their top k + 1: sort those rows in full, stably.
    tied = (values[:, 1:] == values[:, :-1]).any(dim=1)
    if bool(tied.any()):
        rows = torch.argsort(similarity[tied], dim=1, descending=True, stable=True)
        indices[tied] = rows[:, :k]
    return indices.to(torch.int64)


def _check_votes(votes: Tensor, num_bins: int) -> Tensor:
    votes = torch.as_tensor(votes)
    if votes.ndim != 2 or votes.shape[1] < 1:
        raise ValueError(f"votes must have shape (n, K) with K >= 1, got {tuple(votes.shape)}")
    if votes.dtype.is_floating_point or votes.dtype == torch.bool:
        raise ValueError(f"votes must be integer bin ids, got {votes.dtype}")
    votes = votes.to(torch.int64)
    if len(votes) and (int(votes.min()) < 0 or int(votes.max()) >= num_bins):
        raise ValueError(f"votes must lie in [0, {num_bins}), got [{votes.min()}, {votes.max()}]")
    ordered = votes.sort(dim=1).values
    if bool((ordered[:, 1:] == ordered[:, :-1]).any()):
        # A repeated bin would put weight 2/√K there: the vote's norm would exceed 1.
        raise ValueError("each record must vote for K distinct bins (a row of votes repeats one)")
    return votes


def gaussian_vote_histogram(
    votes: Tensor,
    labels: Tensor,
    num_classes: int,
    num_bins: int,
    *,
    noise_multiplier: float,
    generator: torch.Generator,
) -> Tensor:
    """(num_classes, num_bins) float64 per-class vote histogram, each entry + N(0, σ²).

    `votes` (n, K) int64: the K distinct bins (public candidates) record i votes for, e.g. its K
    nearest (`nearest_candidates`); `labels` (n,) its class. Record i adds 1/√K to each of its
    K bins in its own class's row (Private Evolution's nearest-neighbour vote, with the votes of
    one record normalised to L2 norm 1 as in Aug-PE). Sensitivity: adding or removing one
    record changes one row of the table by its vote vector, of L2 norm exactly 1, and no other
    row, so the whole table is ONE Gaussian mechanism with L2 sensitivity 1 and noise
    multiplier σ (the noise standard deviation, as for `noisy_counts`). σ = 0 returns the exact
    histogram and draws nothing from `generator`. Noisy entries may be negative or fractional;
    ranking or clamping them afterwards is post-processing.
    """
    _check_noise_multiplier(noise_multiplier)
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    votes = _check_votes(votes, num_bins)
    labels = _check_labels(labels, num_classes, len(votes))
    histogram = torch.zeros(num_classes * num_bins, dtype=torch.float64)
    cells = labels[:, None] * num_bins + votes  # (n, K) flat (class, bin) cells
    weight = 1.0 / math.sqrt(votes.shape[1])
    histogram.index_add_(
        0, cells.reshape(-1), torch.full((cells.numel(),), weight, dtype=torch.float64)
    )
    histogram = histogram.view(num_classes, num_bins)
    if noise_multiplier == 0:
        return histogram
    return histogram + _gaussian_noise(
        histogram.shape, std=noise_multiplier, like=histogram, generator=generator
    )


def per_example_grads(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    *,
    params: Sequence[str] | None = None,
) -> dict[str, Tensor]:
    """Gradient of `loss_fn(model(x_i), y_i)` for every example i: {name: (n, *param.shape)}.

    `x` (n, ...) and `y` (n, ...) are split along the first dimension; each example is fed to the
    model as a batch of one, so `loss_fn(output (1, ...), target (1, ...))` must return a scalar.
    `params` names the parameters to differentiate (default: all with requires_grad); the others
    and the buffers are held fixed. Uses torch.func (functional_call + vmap + grad), so it works
    for any loss, including losses whose "model" holds a synthetic set as its parameters (DP-KIP).
    The model must not depend on batch statistics (no BatchNorm in training mode).
    """
    if len(x) != len(y):
        raise ValueError(f"x and y disagree on the number of examples: {len(x)} vs {len(y)}")
    named = dict(model.named_parameters())
    names = [n for n, p in named.items() if p.requires_grad] if params is None else list(params)
    unknown = [n for n in names if n not in named]
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; the model has {sorted(named)}")
    if not names:
        raise ValueError("no parameters to differentiate (none requires grad)")
    wrt = {n: named[n].detach() for n in names}
    fixed = {n: p.detach() for n, p in named.items() if n not in wrt}
    fixed.update(dict(model.named_buffers()))

    def example_loss(weights: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        output = functional_call(model, {**fixed, **weights}, (xi.unsqueeze(0),))
        return loss_fn(output, yi.unsqueeze(0))

    grads: dict[str, Tensor] = vmap(grad(example_loss), in_dims=(None, 0, 0))(wrt, x, y)
    return grads


def per_example_loss_grads(
    loss: Callable[[Mapping[str, Tensor], Tensor, Tensor], Tensor],
    params: Mapping[str, Tensor],
    x: Tensor,
    y: Tensor,
) -> dict[str, Tensor]:
    """{name: (n, *shape)} gradients of `loss(params, x_i[None], y_i[None]).sum()` per example i.

    `loss(params, x (b, ...), y (b, ...))` returns (b,) per-example losses of any functional
    model; used where the thing differentiated is not an nn.Module (DP-KIP's synthetic set, the
    functional classifier of DP gradient matching).
    """
    detached = {name: p.detach() for name, p in params.items()}

    def one(weights: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        return loss(weights, xi.unsqueeze(0), yi.unsqueeze(0)).sum()

    return dict(torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))(detached, x, y))
