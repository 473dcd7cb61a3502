"""Membership inference: attacks as pure functions from signals to scores, and their metrics.

Convention: a higher score means "more likely a member". Every attack maps per-example signals
(losses, class probabilities, shadow-model statistics) to such scores; `attack_metrics` then
measures how well the scores separate members from non-members (AUC, balanced accuracy, TPR at
low FPR, the ROC on log-log axes).

Attacks:
- `loss_scores`, `confidence_scores`: threshold attacks on one model's loss / true-class
  probability (Yeom et al. 2018).
- `lira_online`, `lira_offline`: the likelihood-ratio attack of Carlini et al. (2022, "Membership
  Inference Attacks From First Principles"): per-example Gaussians fitted to the logit-scaled
  confidence of shadow models trained with (IN) and without (OUT) the example; with few shadows
  a global ("fixed") variance is more stable than per-example variances.
- `rmia_offline`: the relative membership inference attack of Zarifzadeh et al. (2024) with
  OUT reference models only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = [
    "ATTACKS",
    "AttackMetrics",
    "MapShadows",
    "RocPoints",
    "ShadowRun",
    "attack_metrics",
    "confidence_scores",
    "cross_entropy",
    "lira_offline",
    "lira_online",
    "logit_confidence",
    "loss_scores",
    "rmia_offline",
    "roc_points",
    "tpr_at_fpr",
]

ATTACKS = ("loss", "confidence", "nearest_release", "lira_online", "lira_offline", "rmia_offline")

_EPS = 1e-12


# --- signals -----------------------------------------------------------------------------------


def _true_class(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probabilities.ndim != 2 or labels.shape != (probabilities.shape[0],):
        raise ValueError(
            f"expected probabilities (n, C) and labels (n,), got {probabilities.shape} and "
            f"{labels.shape}"
        )
    return probabilities[np.arange(len(labels)), labels]


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n,) per-example cross-entropy -log p_y (nats) from (n, C) class probabilities."""
    return -np.log(np.clip(_true_class(probabilities, labels), _EPS, 1.0))


def logit_confidence(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n,) logit-scaled confidence φ = log p_y − log(1 − p_y), LiRA's per-example statistic.

    Computed as log p_y − log Σ_{c≠y} p_c so that confident predictions stay finite.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    true = np.clip(_true_class(probabilities, labels), _EPS, 1.0)
    rest = probabilities.sum(axis=1) - true
    return np.log(true) - np.log(np.clip(rest, _EPS, None))


# --- attacks -----------------------------------------------------------------------------------


def loss_scores(losses: np.ndarray) -> np.ndarray:
    """Loss-threshold attack: members have low loss, so the score is −loss."""
    return -np.asarray(losses, dtype=np.float64)


def confidence_scores(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Confidence-threshold attack: the true-class probability."""
    return _true_class(probabilities, labels)


def _check_shadows(
    target: np.ndarray, shadow: np.ndarray, shadow_in: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    target = np.asarray(target, dtype=np.float64).reshape(-1)
    shadow = np.asarray(shadow, dtype=np.float64)
    shadow_in = np.asarray(shadow_in, dtype=bool)
    if shadow.ndim != 2 or shadow.shape[1] != target.size or shadow_in.shape != shadow.shape:
        raise ValueError(
            "expected target (n,), shadow statistics (k, n) and shadow membership (k, n); got "
            f"{target.shape}, {shadow.shape} and {shadow_in.shape}"
        )
    return target, shadow, shadow_in


def _masked_moments(
    values: np.ndarray, mask: np.ndarray, *, fixed_variance: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation of `values` where `mask` (k, n); count per column.

    With `fixed_variance`, one pooled standard deviation (of the deviations from each column's
    own mean) is used for every column: the squared deviations are divided by the number of
    entries minus the number of column means fitted from them, so it is unbiased however many
    columns share it. Columns without any entry get NaN.
    """
    counts = mask.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(mask, values, 0.0).sum(axis=0) / counts
        deviations = np.where(mask, values - mean, 0.0)
        if fixed_variance:
            fitted_means = int(np.count_nonzero(counts))
            freedom = max(int(counts.sum()) - fitted_means, 1)
            pooled = np.sqrt((deviations**2).sum() / freedom)
            std = np.full(values.shape[1], pooled)
        else:
            std = np.sqrt((deviations**2).sum(axis=0) / np.maximum(counts - 1, 1))
    mean = np.where(counts > 0, mean, np.nan)
    return mean, np.maximum(std, 1e-6), counts


def lira_online(
    target: np.ndarray,
    shadow: np.ndarray,
    shadow_in: np.ndarray,
    *,
    fixed_variance: bool = True,
) -> np.ndarray:
    """LiRA, online: log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²) for each example.

    target: (n,) the target model's statistic φ (see `logit_confidence`) for each example;
    shadow: (k, n) the same statistic under k shadow models; shadow_in: (k, n) whether each
    example was in each shadow model's training data. Examples that were never IN (or never
    OUT) in any shadow fall back to the offline score (0.0 if neither exists).
    """
    target, shadow, shadow_in = _check_shadows(target, shadow, shadow_in)
    mean_in, std_in, n_in = _masked_moments(shadow, shadow_in, fixed_variance=fixed_variance)
    mean_out, std_out, n_out = _masked_moments(shadow, ~shadow_in, fixed_variance=fixed_variance)
    both = (n_in > 0) & (n_out > 0)
    online = stats.norm.logpdf(target, mean_in, std_in) - stats.norm.logpdf(
        target, mean_out, std_out
    )
    offline = lira_offline(target, shadow, shadow_in, fixed_variance=fixed_variance)
    return np.where(both, online, offline)


def lira_offline(
    target: np.ndarray,
    shadow: np.ndarray,
    shadow_in: np.ndarray,
    *,
    fixed_variance: bool = True,
) -> np.ndarray:
    """LiRA, offline: how far φ lies above the OUT Gaussian, as −log P[Z > φ], Z ~ N(μ_out, σ_out²).

    Uses only the shadow models that did not train on the example (`~shadow_in`); examples
    never OUT get 0.0 (no evidence either way).
    """
    target, shadow, shadow_in = _check_shadows(target, shadow, shadow_in)
    mean_out, std_out, n_out = _masked_moments(shadow, ~shadow_in, fixed_variance=fixed_variance)
    score = -stats.norm.logsf(target, mean_out, std_out)
    return np.where(n_out > 0, score, 0.0)


def rmia_offline(
    target_x: np.ndarray,
    reference_x: np.ndarray,
    target_z: np.ndarray,
    reference_z: np.ndarray,
    *,
    out_x: np.ndarray | None = None,
    out_z: np.ndarray | None = None,
    a: float = 0.3,
    gamma: float = 1.0,
) -> np.ndarray:
    """RMIA (Zarifzadeh et al. 2024), offline: the share of population points z that x
    dominates, Pr_z[ (p(x|θ)/p(x)) / (p(z|θ)/p(z)) ≥ γ ].

    target_x (n,): the target model's true-class probability of each audited example;
    reference_x (k, n): the same under k reference models; target_z (m,) and reference_z (k, m):
    the same for population examples z (non-members). out_x (k, n) / out_z (k, m): which
    reference models did *not* train on each example (default: none did). Offline, p(x) is
    approximated from the OUT models as ((1 + a)·mean_out + (1 − a)) / 2; an example without any
    OUT model gets p(x) = 1 (no reference information).
    """
    target_x = np.asarray(target_x, dtype=np.float64)
    target_z = np.asarray(target_z, dtype=np.float64)
    reference_x = np.atleast_2d(np.asarray(reference_x, dtype=np.float64))
    reference_z = np.atleast_2d(np.asarray(reference_z, dtype=np.float64))
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"RMIA's offline scale a must lie in [0, 1], got {a}")

    def marginal(reference: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        mask = np.ones_like(reference, dtype=bool) if out is None else np.asarray(out, bool)
        count = mask.sum(axis=0)
        mean_out = np.where(mask, reference, 0.0).sum(axis=0) / np.maximum(count, 1)
        return np.where(count > 0, ((1.0 + a) * mean_out + (1.0 - a)) / 2.0, 1.0)

    ratio_x = target_x / np.maximum(marginal(reference_x, out_x), _EPS)
    ratio_z = np.sort(target_z / np.maximum(marginal(reference_z, out_z), _EPS))
    # Pr_z[ratio_x / ratio_z >= gamma] = Pr_z[ratio_z <= ratio_x / gamma]
    dominated = np.searchsorted(ratio_z, ratio_x / gamma, side="right")
    return dominated / max(len(ratio_z), 1)


# --- metrics -----------------------------------------------------------------------------------


def _checked(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    is_member = np.asarray(is_member, dtype=bool).reshape(-1)
    if scores.shape != is_member.shape:
        raise ValueError(f"scores {scores.shape} and membership {is_member.shape} differ in size")
    if not np.all(np.isfinite(scores)):
        raise ValueError("attack scores must be finite")
    if is_member.all() or not is_member.any():
        raise ValueError("attack metrics need at least one member and one non-member")
    return scores, is_member


def tpr_at_fpr(scores: np.ndarray, is_member: np.ndarray, fpr: float) -> float:
    """The largest TPR of a threshold on `scores` whose FPR is at most `fpr` (no interpolation;
    with n non-members, FPRs below 1/n are only reachable with zero false positives)."""
    scores, is_member = _checked(scores, is_member)
    fprs, tprs, _ = roc_curve(is_member, scores, drop_intermediate=False)
    return float(tprs[fprs <= fpr + 1e-12].max())


@dataclass(frozen=True)
class RocPoints:
    """The ROC sampled at log-spaced FPRs (for a log-log plot): TPR at FPR ≤ each value."""

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]

    def to_json(self) -> dict[str, list[float]]:
        return {"fpr": list(self.fpr), "tpr": list(self.tpr)}


def roc_points(scores: np.ndarray, is_member: np.ndarray, *, points: int = 40) -> RocPoints:
    """TPR at `points` FPRs from 1/n_nonmembers (or 1e-4) to 1, log-spaced."""
    scores, is_member = _checked(scores, is_member)
    fprs, tprs, _ = roc_curve(is_member, scores, drop_intermediate=False)
    lowest = max(1.0 / int((~is_member).sum()), 1e-4)
    grid = np.unique(np.geomspace(lowest, 1.0, points))
    best = [float(tprs[fprs <= f + 1e-12].max()) for f in grid]
    return RocPoints(tuple(float(f) for f in grid), tuple(best))


@dataclass(frozen=True)
class AttackMetrics:
    """How well scores separate members from non-members.

    auc: area under the ROC (0.5 = chance); balanced_accuracy: the best (TPR + TNR) / 2 over
    thresholds; tpr_at_fpr: {FPR: TPR} at low FPRs (0.1 %, 1 %); min_fpr: 1 / n_nonmembers, the
    smallest non-zero FPR these non-members can resolve. A TPR at an FPR below min_fpr is the
    TPR at zero false positives: a lower estimate, not a measurement (`measurable`).
    """

    auc: float
    balanced_accuracy: float
    tpr_at_fpr: Mapping[float, float]
    n_members: int
    n_nonmembers: int
    roc: RocPoints

    @property
    def min_fpr(self) -> float:
        return 1.0 / self.n_nonmembers

    def measurable(self, fpr: float) -> bool:
        """Whether these non-members resolve `fpr`: at least one false positive fits in it."""
        return fpr * self.n_nonmembers >= 1.0 - 1e-9

    @property
    def auc_interval(self) -> tuple[float, float]:
        """Approximate 95 % interval of the AUC (Hanley & McNeil 1982 standard error)."""
        a, n1, n2 = self.auc, self.n_members, self.n_nonmembers
        q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
        variance = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / (n1 * n2)
        half = 1.96 * float(np.sqrt(max(variance, 0.0)))
        return max(0.0, a - half), min(1.0, a + half)

    def to_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "auc": self.auc,
            "auc_ci95": list(self.auc_interval),
            "balanced_accuracy": self.balanced_accuracy,
        }
        for fpr, tpr in self.tpr_at_fpr.items():
            payload[f"tpr_at_{_percent(fpr)}_fpr"] = tpr
        payload.update(n_members=self.n_members, n_nonmembers=self.n_nonmembers, power=self.power())
        return payload

    def power(self) -> dict[str, Any]:
        """What these sample sizes can detect: the lowest measurable FPR, and whether each TPR
        at a low FPR is measured (at least one non-member's worth of false positives) or only a
        lower estimate (the TPR at zero false positives)."""
        payload: dict[str, Any] = {"min_fpr": self.min_fpr}
        for fpr in self.tpr_at_fpr:
            payload[f"tpr_at_{_percent(fpr)}_fpr_measurable"] = self.measurable(fpr)
        return payload


def _percent(fraction: float) -> str:
    """0.001 -> '0.1pct', 0.01 -> '1pct'."""
    return f"{fraction * 100:g}pct"


def attack_metrics(
    scores: np.ndarray,
    is_member: np.ndarray,
    *,
    fprs: Sequence[float] = (0.001, 0.01),
    roc_resolution: int = 40,
) -> AttackMetrics:
    """AUC, balanced accuracy, TPR at each of `fprs`, and the ROC for a log-log plot."""
    scores, is_member = _checked(scores, is_member)
    fpr_curve, tpr_curve, _ = roc_curve(is_member, scores, drop_intermediate=False)
    balanced = float(np.max((tpr_curve + 1.0 - fpr_curve) / 2.0))
    return AttackMetrics(
        auc=float(roc_auc_score(is_member, scores)),
        balanced_accuracy=balanced,
        tpr_at_fpr={float(f): float(tpr_curve[fpr_curve <= f + 1e-12].max()) for f in fprs},
        n_members=int(is_member.sum()),
        n_nonmembers=int((~is_member).sum()),
        roc=roc_points(scores, is_member, points=roc_resolution),
    )


# --- the auditor -------------------------------------------------------------------------------


def nearest_similarity(x: np.ndarray, reference: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """(n,) largest cosine similarity of each row of x (n, d) to any row of reference (m, d).
    x is read `chunk` rows at a time: never a float64 copy of all of it."""
    if len(reference) == 0:
        return np.full(len(x), -1.0)

    def unit(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), _EPS)

    reference = unit(reference)
    return np.concatenate(
        [(unit(x[s : s + chunk]) @ reference.T).max(axis=1) for s in range(0, len(x), chunk)]
        or [np.zeros(0)]
    )


def _balanced_membership(k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(k, n) bool: each example IN for ⌈k/2⌉ or ⌊k/2⌋ of the k shadows, at random."""
    base = np.arange(k)[:, None] < (k + rng.integers(0, 2, size=n)[None, :]) // 2
    return np.take_along_axis(base, rng.permuted(np.tile(np.arange(k)[:, None], (1, n)), axis=0), 0)


# map(function, items) -> results in the same order: the builtin `map`, or one that spreads the
# calls over processes or machines (flows/scatter.py). The function and its items must pickle.
MapShadows = Callable[[Callable[[int], np.ndarray], Iterable[int]], Iterable[np.ndarray]]


@dataclass(frozen=True)
class ShadowRun:
    """One shadow model, as a picklable call: `run(k)` re-runs the release on the records
    `shadow_in[k]` selects (seed + 1 + k), trains the target head on it and returns its (n, C)
    class probabilities on `x`. Shadows are independent, so any map may run them."""

    shadow_release: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
    fit_predict: Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]
    shadow_in: np.ndarray
    x: np.ndarray
    seed: int

    def __call__(self, k: int) -> np.ndarray:
        train_x, train_targets = self.shadow_release(self.shadow_in[k], self.seed + 1 + k)
        return self.fit_predict(train_x, train_targets, self.x, self.seed)


class MembershipAudit:
    """Membership inference against models trained on the released set.

    Members are the private training records, non-members the held-out audit split. Without
    shadows (`--audit basic`) it runs the loss, confidence and nearest-release attacks; with
    `shadows` > 0 and a run that can re-run its release (`--audit full`) also LiRA (online and
    offline) and RMIA (offline), each shadow re-running the whole distillation on a random half
    of members ∪ non-members. The section's headline is the strongest attack. `map_shadows`
    runs the shadows (default: one after another, in this process).
    """

    name = "membership"

    def __init__(
        self,
        *,
        shadows: int = 0,
        fixed_variance: bool = True,
        rmia_a: float = 0.3,
        map_shadows: MapShadows = map,
    ) -> None:
        if shadows < 0 or shadows == 1:
            raise ValueError(f"shadows must be 0 or at least 2, got {shadows}")
        self.shadows = shadows
        self.fixed_variance = fixed_variance
        self.rmia_a = rmia_a
        self.map_shadows = map_shadows

    def __call__(self, context: Any) -> dict[str, Any]:
        members, nonmembers, release = context.members, context.nonmembers, context.release
        # Members then non-members, never joined into one copy (a million members are 1.5 GB):
        # the target head is evaluated on both parts, and so is the distance to the release.
        parts = (members.embeddings, nonmembers.embeddings)
        labels = np.concatenate([members.labels, nonmembers.labels]).astype(np.int64)
        is_member = np.arange(len(labels)) < len(members.embeddings)
        target = context.fit_predict(release.vectors, release.targets, parts, context.seed)
        released = np.concatenate([release.vectors, release.text_embeddings])
        scores = {
            "loss": loss_scores(cross_entropy(target, labels)),
            "confidence": confidence_scores(target, labels),
            "nearest_release": np.concatenate([nearest_similarity(p, released) for p in parts]),
        }
        shadows = min(self.shadows, context.shadows) if context.shadow_release else 0
        if shadows >= 2:  # the shadows' picklable calls take the records as one array
            x = np.concatenate(parts)
            scores.update(self._shadow_attacks(context, x, labels, target, shadows))
        metrics = {name: attack_metrics(s, is_member) for name, s in scores.items()}
        best = max(metrics, key=lambda name: metrics[name].auc)
        headline = metrics[best].to_json()
        return {
            **headline,
            "best_attack": best,
            "min_fpr": metrics[best].min_fpr,
            "shadows": shadows,
            "attacks": {name: m.to_json() for name, m in metrics.items()},
            "roc": {name: m.roc.to_json() for name, m in metrics.items()},
            "note": (
                "Target: a linear head trained on the released vectors. The headline is the "
                "strongest of the attacks (chosen after the fact, so slightly optimistic). A TPR "
                "at an FPR below min_fpr is the TPR at zero false positives, a lower estimate "
                "(power)."
            ),
        }

    def _shadow_attacks(
        self,
        context: Any,
        x: np.ndarray,
        labels: np.ndarray,
        target: np.ndarray,
        shadows: int,
    ) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([context.seed, 5])
        shadow_in = _balanced_membership(shadows, len(x), rng)
        run = ShadowRun(context.shadow_release, context.fit_predict, shadow_in, x, context.seed)
        probabilities = list(self.map_shadows(run, range(shadows)))
        phi_shadow = np.stack([logit_confidence(p, labels) for p in probabilities])
        prob_shadow = np.stack([confidence_scores(p, labels) for p in probabilities])
        phi_target = logit_confidence(target, labels)
        prob_target = confidence_scores(target, labels)
        population = np.arange(len(x)) >= len(context.members.embeddings)  # z: held out
        rmia = rmia_offline(
            prob_target,
            prob_shadow,
            prob_target[population],
            prob_shadow[:, population],
            out_x=~shadow_in,
            out_z=~shadow_in[:, population],
            a=self.rmia_a,
        )
        return {
            "lira_online": lira_online(
                phi_target, phi_shadow, shadow_in, fixed_variance=self.fixed_variance
            ),
            "lira_offline": lira_offline(
                phi_target, phi_shadow, shadow_in, fixed_variance=self.fixed_variance
            ),
            "rmia_offline": rmia,
        }
