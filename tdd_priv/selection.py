"""Greedy selection of labeled public texts by the kernel-ridge (KIP) objective.

Picks (candidate, label) pairs one at a time so that kernel ridge regression fitted on the
chosen pairs best predicts the labels of real examples: the released *texts* are what is
optimised, not vectors that texts are later fitted to. Each step scores every remaining
(candidate, label) pair exactly, with the block-inverse update of the ridge solution:

    adding t with label y_t changes the residuals E (n, C) to E − u_t g_tᵀ, where
    u_t = K(X, t) − K(X, S) A⁻¹ K(S, t),  s_t = k(t, t) + λ − K(t, S) A⁻¹ K(S, t),
    g_t = (y_t − αᵀ K(S, t)) / s_t,        A = K(S, S) + λI,  α = A⁻¹ Y_S,
so ‖E'‖² = ‖E‖² − 2 (Eᵀu_t)·g_t + ‖u_t‖² ‖g_t‖² for all pairs at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from tdd_priv.methods.allocation import class_sizes
from tdd_priv.methods.kip import KERNELS

__all__ = ["Selection", "greedy_kernel_selection"]


@dataclass(frozen=True)
class Selection:
    rows: torch.Tensor  # (m,) int64 indices into the candidates, in the order chosen
    labels: torch.Tensor  # (m,) int64
    losses: tuple[float, ...]  # mean squared residual on the real batch after each pick


def greedy_kernel_selection(
    real_x: torch.Tensor,
    real_y: torch.Tensor,
    candidates: torch.Tensor,
    *,
    per_class: int | Sequence[int] | np.ndarray,
    num_classes: int,
    kernel: str = "ntk",
    regularization: float = 1e-3,
    progress: bool = False,
) -> Selection:
    """Choose `per_class` candidates per class minimising the ridge loss on (real_x, real_y).

    real_x: (n, d) reference embeddings, real_y: (n, C) reference targets (one-hot or soft);
    candidates: (N, d) public embeddings. All three on one device, where the selection runs.
    `per_class`: one count for every class, or (C,) counts, one per class (a class may get 0).
    """
    sizes = torch.from_numpy(class_sizes(per_class, num_classes))
    total = int(sizes.sum())
    if len(candidates) < total:
        raise ValueError(
            f"only {len(candidates)} candidate texts for {total} slots; "
            "use a larger public pool or a smaller --per-class"
        )
    k = KERNELS[kernel]
    x, cand = real_x.double(), candidates.double()
    targets = real_y.double()  # (n, C)
    k_xc = k(x, cand)  # (n, N), fixed for the whole selection
    k_cc_diag = torch.cat([k(part, part).diagonal() for part in cand.split(1024)])
    # λ scales with the kernel's typical diagonal, as in KIP's krr_predict.
    ridge = regularization * k_cc_diag.mean()
    device = cand.device
    eye = torch.eye(num_classes, dtype=torch.float64, device=device)
    remaining = sizes.clone().to(device)
    used = torch.zeros(len(cand), dtype=torch.bool, device=device)
    rows: list[int] = []
    labels: list[int] = []
    losses: list[float] = []
    residual = targets.clone()
    for _ in tqdm(range(total), desc="public-match", disable=not progress, leave=False):
        if rows:
            chosen = torch.tensor(rows, device=device)
            k_sc = k(cand[chosen], cand)  # (m, N)
            a = k_sc[:, chosen] + ridge * torch.eye(len(rows), dtype=torch.float64, device=device)
            y_s = eye[torch.tensor(labels, device=device)]
            alpha = torch.linalg.solve(a, y_s)  # (m, C)
            a_inv_k = torch.linalg.solve(a, k_sc)  # (m, N)
            u = k_xc - k_xc[:, chosen] @ a_inv_k  # (n, N)
            schur = k_cc_diag + ridge - (k_sc * a_inv_k).sum(dim=0)  # (N,)
            predicted_for_candidates = alpha.T @ k_sc  # (C, N)
        else:
            u = k_xc
            schur = k_cc_diag + ridge
            predicted_for_candidates = torch.zeros(
                num_classes, len(cand), dtype=torch.float64, device=device
            )
        e_u = residual.T @ u  # (C, N)
        u_norm = u.square().sum(dim=0)  # (N,)
        # g for label c: (e_c − predicted) / s, shape (C_label, C, N)
        g = (eye[:, :, None] - predicted_for_candidates[None]) / schur.clamp_min(1e-12)
        gain = 2 * (e_u[None] * g).sum(dim=1) - u_norm[None] * g.square().sum(dim=1)  # (C, N)
        gain[:, used] = -torch.inf
        gain[remaining == 0] = -torch.inf
        best = int(torch.argmax(gain))
        label, row = divmod(best, len(cand))
        rows.append(row)
        labels.append(label)
        used[row] = True
        remaining[label] -= 1
        residual = residual - u[:, row : row + 1] * g[label, :, row][None]
        losses.append(float(residual.square().sum(dim=1).mean()))
    return Selection(
        torch.tensor(rows, device="cpu"), torch.tensor(labels, device="cpu"), tuple(losses)
    )
