"""Teacher-selected public texts: DP-SGD trains a teacher, post-processing picks its examples.

The only access to private data is training one classifier (the *teacher*) on the members,
through the gateway's `expert_trajectory`: plain SGD when the run is not private, opacus DP-SGD
at the run's calibrated σ under DP (one mechanism, the whole (ε, δ)). Everything after that reads
only the teacher and the public pool, so it is post-processing:

1. the teacher scores every public text (logits); its argmax is the text's class (a class the
   teacher rarely predicts takes the texts it scores highest, so every class gets k);
2. `per_class` public texts per class are chosen greedily so that kernel ridge regression fitted
   on them, with the teacher's outputs as their targets, best reproduces the teacher's outputs on
   a sample of the public pool (`greedy_target_selection`);
3. the chosen texts are released with the teacher's tempered probabilities as soft labels,
   calibrated (`tdd_priv.methods.soft_labels`) so that each text's soft label points to the
   class it was chosen for and, once some class is starved, every class gets the mass its
   texts would give it.

The released vectors *are* public texts, so realizing them is exact: `public-nearest` and
`public-match` return these very texts with these soft labels.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from tdd_priv.errors import ConfigError
from tdd_priv.methods.access import ExpertTraining
from tdd_priv.methods.allocation import ClassSizes, class_sizes, profile_from_probabilities
from tdd_priv.methods.base import DistillInput, SyntheticSet
from tdd_priv.methods.kip import KERNELS
from tdd_priv.methods.learned import parse_options
from tdd_priv.methods.nets import build_net
from tdd_priv.methods.soft_labels import (
    DEFAULT_LABEL_SHARE,
    SOFT_LABEL_CALIBRATIONS,
    SoftLabelCalibration,
    calibrate_soft_labels,
)
from tdd_priv.privacy.calibration import PlannedMechanism
from tdd_priv.privacy.dpsgd import dpsgd_plan
from tdd_priv.seeding import numpy_rng, torch_generator

__all__ = [
    "TargetSelection",
    "TeacherConfig",
    "TeacherTexts",
    "balanced_classes",
    "greedy_target_selection",
    "select_for_teacher",
    "teacher_class_sizes",
    "teacher_privacy_plan",
    "teacher_selection",
]

SelectionTargets = Literal["probabilities", "logits"]


# learning rate × SGD steps of the teacher, chosen on Davidson's dev split (bench/tune.py) at two
# sizes: all members (280 steps: rate 1 best of 0.25, 1, 4, 16) and 2,452 of them (60 steps: rate
# 4 best, rate 1 collapsed to the majority class). A fixed rate fits one size only.
TEACHER_STEP_BUDGET = 280.0


@dataclass(frozen=True)
class TeacherConfig:
    """Teacher training (public hyperparameters) and the selection that follows it.

    The teacher is trained by plain SGD (DP-SGD under DP: Poisson batches of expected size
    `batch_size`, clipping to `clip_norm`); on unit-norm embeddings a large learning rate suits a
    linear teacher. `temperature` softens the released soft labels, softmax(logits / T): the
    argmax is unchanged, and a fresh head fits unsaturated targets more faithfully. Selection
    fits `selection_targets` (tempered probabilities or centred logits) by kernel ridge
    regression with `kernel` and ridge `regularization` (relative to the kernel's mean
    diagonal), measured on `reference` public texts (all of the pool when it is smaller).

    `calibration` of the released soft labels: "balanced" leaves them as they are unless a class
    is starved (most of its texts point elsewhere, or it holds under half its texts' mass);
    then every class gets as much soft-label mass as it has texts, and each text's own class
    at least `label_share` of its soft label, ahead of every other class (post-processing of
    the chosen set; see `tdd_priv.methods.soft_labels`); "none" releases the tempered
    probabilities as they are, which can leave a rare class that no head ever predicts.
    """

    epochs: int = 20
    # None: TEACHER_STEP_BUDGET / steps (`learning_rate_for`), so a dataset with few members
    # (few DP-SGD steps) takes larger steps; or a fixed rate.
    learning_rate: float | None = None
    batch_size: int = 1024
    clip_norm: float = 1.0
    hidden: int = 0  # 0: a linear teacher, like the default evaluation head
    temperature: float = 2.0
    # A linear kernel on centred logits: KRR on the chosen texts then projects the (linear)
    # teacher onto their span, which is what a linear head trained on them can learn. Against
    # NNGP on probabilities over the privacy-utility grid (3 DP runs per cell): SST-2 texts
    # +0.4 to +1.3 points, AG News −0.8 to +0.1 (still within its targets).
    kernel: str = "linear"
    regularization: float = 1e-3
    selection_targets: SelectionTargets = "logits"
    reference: int = 2000
    calibration: SoftLabelCalibration = "balanced"
    label_share: float = DEFAULT_LABEL_SHARE

    def learning_rate_for(self, members: int) -> float:
        """The teacher's SGD learning rate for `members` private records: the fixed one, or the
        step budget spread over the steps its epochs take (epochs × ⌈members / batch_size⌉)."""
        if self.learning_rate is not None:
            return self.learning_rate
        steps = dpsgd_plan(members, batch_size=self.batch_size, epochs=self.epochs).steps
        return TEACHER_STEP_BUDGET / steps

    def __post_init__(self) -> None:
        if self.learning_rate is not None and not 0 < self.learning_rate < math.inf:
            raise ConfigError(f"learning_rate must be finite and > 0, got {self.learning_rate}")
        if self.kernel not in KERNELS:
            raise ConfigError(f"unknown kernel {self.kernel!r}; valid: {', '.join(KERNELS)}")
        if self.selection_targets not in ("probabilities", "logits"):
            raise ConfigError(
                f"unknown selection_targets {self.selection_targets!r}; "
                "valid: probabilities, logits"
            )
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.calibration not in SOFT_LABEL_CALIBRATIONS:
            raise ConfigError(
                f"unknown calibration {self.calibration!r}; "
                f"valid: {', '.join(SOFT_LABEL_CALIBRATIONS)}"
            )
        if not 0.0 <= self.label_share < 1.0:
            raise ConfigError(f"label_share must lie in [0, 1), got {self.label_share}")


@dataclass(frozen=True)
class TargetSelection:
    rows: torch.Tensor  # (m,) int64 indices into the candidates, in the order chosen
    losses: tuple[float, ...]  # mean squared residual on the reference after each pick


def greedy_target_selection(
    reference_x: torch.Tensor,
    reference_targets: torch.Tensor,
    candidates: torch.Tensor,
    candidate_targets: torch.Tensor,
    candidate_classes: torch.Tensor,
    *,
    per_class: int | np.ndarray,
    kernel: str = "linear",
    regularization: float = 1e-3,
    progress: bool = False,
) -> TargetSelection:
    """`per_class` candidates of each class (one count, or (C,) counts) whose own targets,
    fitted by kernel ridge regression, best predict the reference targets.

    reference_x: (n, d), reference_targets: (n, C); candidates: (N, d) with their targets
    (N, C) and classes (N,) int64; all on one device, where the selection runs. Unlike
    `tdd_priv.selection.greedy_kernel_selection`, a candidate's target is fixed (the teacher's
    output for it), not chosen.

    Greedy forward selection with Gaussian-process style rank-one updates: with r(a, b) the
    kernel conditioned on the chosen set S (ridge λ on S), U = r(X, candidates) and residuals
    E = T_X − f_S(X), D = T_cand − f_S(cand), adding t changes E to E − u_t g_tᵀ with
    u_t = U[:, t], g_t = D_t / (r(t, t) + λ), so every candidate's gain is exact and the state
    is updated in O(n·N) per pick, never re-solving the ridge system.
    """
    classes = int(candidate_targets.shape[1])
    sizes = torch.from_numpy(class_sizes(per_class, classes))
    counts = torch.bincount(candidate_classes, minlength=classes)
    if bool((counts < sizes).any()):
        raise ValueError(
            f"the public pool has {counts.tolist()} texts per class by the teacher, fewer than "
            f"the {sizes.tolist()} to choose for some class; use a larger public pool or a "
            "smaller --per-class"
        )
    k = KERNELS[kernel]
    x, cand = reference_x.double(), candidates.double()
    residual = reference_targets.double().clone()  # E (n, C)
    cand_residual = candidate_targets.double().clone()  # D (N, C)
    u = k(x, cand)  # U (n, N), updated in place
    # ‖u_t‖², kept up to date; by column blocks, so no second (n, N) array is made (at 2000 x
    # 20k candidates, 0.3 GB; the same sums, bit for bit)
    u_norm = torch.cat([part.square().sum(dim=0) for part in u.split(4096, dim=1)])
    diag = torch.cat([k(part, part).diagonal() for part in cand.split(1024)])  # r(t, t)
    ridge = regularization * float(diag.mean())
    factors: list[torch.Tensor] = []  # columns l_j with r = K − Σ l_j l_jᵀ over candidates
    remaining = sizes.clone()  # counters, on the CPU
    allowed = torch.ones(len(cand), dtype=torch.bool, device=cand.device)
    allowed &= sizes.to(cand.device)[candidate_classes] > 0  # a class of size 0 takes nothing
    rows: list[int] = []
    losses: list[float] = []
    total = int(sizes.sum())
    for _ in tqdm(range(total), desc="teacher", disable=not progress, leave=False):
        schur = (diag + ridge).clamp_min(ridge)  # (N,)
        g = cand_residual / schur[:, None]  # (N, C)
        e_u = u.T @ residual  # (N, C)
        gain = 2 * (e_u * g).sum(dim=1) - u_norm * g.square().sum(dim=1)
        gain[~allowed] = -torch.inf
        best = int(torch.argmax(gain))
        rows.append(best)
        label = int(candidate_classes[best])
        remaining[label] -= 1
        allowed[best] = False
        if remaining[label] == 0:
            allowed &= candidate_classes != label
        # r(candidates, best) under the current conditioning.
        column = k(cand, cand[best : best + 1]).squeeze(1)
        for factor in factors:
            column -= factor * factor[best]
        u_best = u[:, best].clone()
        step = column / schur[best]  # (N,): u_t -= u_best · step_t
        u_norm += step.square() * u_best.square().sum() - 2 * step * (u_best @ u)
        u.addr_(u_best, step, alpha=-1.0)
        residual -= u_best[:, None] * g[best][None]
        cand_residual -= column[:, None] * g[best][None]
        factor = column / schur[best].sqrt()
        factors.append(factor)
        diag = diag - factor.square()
        losses.append(float(residual.square().sum(dim=1).mean()))
    return TargetSelection(torch.tensor(rows, device="cpu"), tuple(losses))


def balanced_classes(probabilities: torch.Tensor, per_class: int | np.ndarray) -> torch.Tensor:
    """(N,) int64 class of each public text: the teacher's argmax, except that a class with
    fewer texts than it needs (`per_class`: one count, or (C,) counts) takes those it scores
    highest from classes that can spare them (a weak or noisy teacher may predict some class
    rarely)."""
    count, classes = probabilities.shape
    need = class_sizes(per_class, classes).tolist()
    if count < sum(need):
        raise ValueError(
            f"the public pool has {count} texts, fewer than the {sum(need)} to choose "
            f"({need} for {classes} classes); use a larger public pool or a smaller --per-class"
        )
    assigned = probabilities.argmax(dim=1)
    counts = torch.bincount(assigned, minlength=classes).tolist()
    for label in range(classes):
        for row in torch.argsort(probabilities[:, label], descending=True).tolist():
            if counts[label] >= need[label]:
                break
            current = int(assigned[row])
            if current != label and counts[current] > need[current]:
                assigned[row] = label
                counts[current] -= 1
                counts[label] += 1
    return assigned


def teacher_privacy_plan(config: TeacherConfig, n: int, classes: int) -> list[PlannedMechanism]:
    """One DP-SGD run of the teacher over the private members: the whole budget."""
    return [dpsgd_plan(n, batch_size=config.batch_size, epochs=config.epochs)]


@dataclass(frozen=True)
class TeacherTexts:
    """Public texts chosen for a teacher, with its soft labels; rows index the pool."""

    rows: np.ndarray  # (m,) int64, grouped by label
    labels: np.ndarray  # (m,) int64
    soft_labels: np.ndarray  # (m, C) float32
    losses: tuple[float, ...]


def select_for_teacher(
    pool: torch.Tensor,
    logits: torch.Tensor,
    *,
    per_class: int | np.ndarray,
    config: TeacherConfig,
    seed: int,
    progress: bool = False,
) -> TeacherTexts:
    """`per_class` public texts per class (one count, or (C,) counts) that carry a teacher's
    outputs (`logits` (N, C) on `pool` (N, d)), released with its tempered probabilities,
    calibrated as `config` says. Reads only the pool and the teacher's outputs, so it is
    post-processing of whatever produced the teacher."""
    probabilities = torch.softmax(logits / config.temperature, dim=1)
    targets = (
        probabilities
        if config.selection_targets == "probabilities"
        else logits - logits.mean(dim=1, keepdim=True)
    )
    rng = numpy_rng(seed, "dpsgd-teacher", "reference")
    reference = torch.from_numpy(
        np.sort(rng.choice(len(pool), size=min(config.reference, len(pool)), replace=False))
    ).to(pool.device)
    classes_of = balanced_classes(probabilities, per_class)
    selection = greedy_target_selection(
        pool[reference],
        targets[reference],
        pool,
        targets,
        classes_of,
        per_class=per_class,
        kernel=config.kernel,
        regularization=config.regularization,
        progress=progress,
    )
    rows = selection.rows.numpy()
    labels = classes_of.cpu().numpy()[rows]
    order = np.argsort(labels, kind="stable")
    rows, labels = rows[order], labels[order].astype(np.int64)
    soft = probabilities.cpu().numpy()[rows].astype(np.float32)
    if config.calibration == "balanced":
        soft = calibrate_soft_labels(soft, labels, min_share=config.label_share)
    return TeacherTexts(rows=rows, labels=labels, soft_labels=soft, losses=selection.losses)


def teacher_selection(inputs: DistillInput) -> SyntheticSet:
    config = parse_options(TeacherConfig, inputs.options, method="dpsgd-teacher")
    public = inputs.public_embeddings
    if public is None:
        raise ConfigError(
            "dpsgd-teacher selects texts from the public pool, but none was given to the method "
            "(DistillInput.public_embeddings); pass the run's public pool embeddings"
        )
    generator = torch_generator(inputs.seed, "dpsgd-teacher", device=inputs.device)
    access = inputs.access()
    classes = access.num_classes
    teacher = build_net(access.dim, classes, hidden=config.hidden, generator=generator)
    training = ExpertTraining(
        config.epochs, config.learning_rate_for(inputs.size), config.batch_size
    )
    # The only access to private data: (DP-)SGD training of the teacher. Post-processing below.
    access.expert_trajectory(teacher, training=training, generator=generator)
    teacher.eval()
    pool = torch.from_numpy(np.ascontiguousarray(public, dtype=np.float32)).to(inputs.device)
    with torch.no_grad():
        logits = torch.cat([teacher(part) for part in pool.split(8192)])
    sizes = teacher_class_sizes(inputs, logits)
    chosen = select_for_teacher(
        pool,
        logits,
        per_class=sizes.sizes,
        config=config,
        seed=inputs.seed,
        progress=inputs.progress,
    )
    return SyntheticSet(
        embeddings=np.asarray(public, dtype=np.float32)[chosen.rows].copy(),
        labels=chosen.labels,
        soft_labels=chosen.soft_labels,
        method="dpsgd-teacher",
        config=dataclasses.asdict(config),
        loss_history=chosen.losses,
        allocation=sizes,
    )


def teacher_class_sizes(inputs: DistillInput, logits: torch.Tensor) -> ClassSizes:
    """Texts per class: the run's allocation, estimated (when it needs an estimate) from the
    teacher's probabilities on the public pool, so post-processing of the DP teacher."""
    if not inputs.allocation.needs_profile:
        return inputs.class_sizes()
    probabilities = torch.softmax(logits.double(), dim=1).cpu().numpy()
    profile = profile_from_probabilities(
        probabilities, source="the teacher's predictions on the public pool"
    )
    return inputs.class_sizes(profile)
