"""The canary audit: insert m secret records, each with probability ½, and bound ε from below.

1. `generate_canaries` makes m canary records from public texts — real-looking ("spliced": the
   first half of one public text joined to the second half of another) or random token strings
   ("random-tokens") — each with a uniformly random label, and draws which of them are inserted
   into the private training data (independently, probability ½). The pipeline inserts them and
   records them in the run's `private/` folder.
2. After the run, each canary gets a score (higher: more likely inserted) from the release.
3. `epsilon_lower_bounds` turns scores and inclusions into empirical lower bounds on ε, at 95 %
   confidence, two ways:
   - Clopper–Pearson: guessing "inserted" for the top-k scores gives TP and FP counts; with
     TPR ≥ TPR_lo and FPR ≤ FPR_hi (one-sided Clopper–Pearson, α/2 each), any (ε, δ)-DP release
     has ε ≥ ln((TPR_lo − δ) / FPR_hi). It treats the canaries as independent trials, which holds
     across separate runs but only approximately within one run.
   - One run (Steinke, Nasr & Jagielski 2023, "Privacy Auditing with One (1) Training Run"):
     under (ε, δ)-DP, r guesses about independently included canaries are right at most v times
     except with probability P[Binomial(r, e^ε/(1+e^ε)) ≥ v] + 2mδ·max_i P[v−i ≤ Binomial < v]/i
     (their Theorem 3 with Proposition 5's δ term). The bound is the largest ε whose p-value is
     below 1 − confidence. Valid for a single run; this is the bound the verdict uses.
   Both search a fixed grid of guess counts and pay for it with a Bonferroni correction, so the
   stated confidence holds for the maximum.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from scipy import optimize, special, stats

from audits.membership import attack_metrics, cross_entropy, nearest_similarity

__all__ = [
    "CanaryAudit",
    "CanaryDraw",
    "CanaryGenerator",
    "CanaryKind",
    "EpsilonBound",
    "EpsilonBounds",
    "clopper_pearson_epsilon",
    "epsilon_lower_bounds",
    "generate_canaries",
    "guess_counts",
    "one_run_epsilon",
    "one_run_p_value",
]

CanaryKind = Literal["spliced", "random-tokens"]
CANARY_KINDS: tuple[str, ...] = get_args(CanaryKind)
_WORD = re.compile(r"\S+")


# --- generation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CanaryDraw:
    """m canaries: texts, labels (m,) int64, included (m,) bool (inserted into the private data)."""

    texts: tuple[str, ...]
    labels: np.ndarray
    included: np.ndarray
    kind: str


def _spliced(texts: Sequence[str], count: int, rng: np.random.Generator) -> list[str]:
    split = [_WORD.findall(text) for text in texts]
    usable = [words for words in split if len(words) >= 2]
    if len(usable) < 2:
        raise ValueError("spliced canaries need at least two public texts of two or more words")
    seen, made = set(texts), list[str]()
    for _ in range(count * 50):
        a, b = rng.choice(len(usable), size=2, replace=False)
        first, second = usable[a], usable[b]
        text = " ".join(first[: (len(first) + 1) // 2] + second[len(second) // 2 :])
        if text not in seen:
            seen.add(text)
            made.append(text)
            if len(made) == count:
                return made
    raise ValueError(
        f"could not make {count} distinct spliced canaries from {len(usable)} public texts; "
        "ask for fewer canaries or use kind 'random-tokens'"
    )


def _random_tokens(texts: Sequence[str], count: int, rng: np.random.Generator) -> list[str]:
    vocabulary = sorted({word.lower() for text in texts for word in _WORD.findall(text)})
    if len(vocabulary) < 10:
        raise ValueError("random-token canaries need a public vocabulary of at least 10 words")
    seen, made = set(texts), list[str]()
    while len(made) < count:
        length = int(rng.integers(8, 17))
        text = " ".join(vocabulary[i] for i in rng.integers(0, len(vocabulary), size=length))
        if text not in seen:
            seen.add(text)
            made.append(text)
    return made


def generate_canaries(
    public_texts: Sequence[str],
    *,
    count: int,
    num_classes: int,
    seed: int,
    kind: CanaryKind = "spliced",
    inclusion_rate: float = 0.5,
) -> CanaryDraw:
    """`count` distinct canaries made from public texts, each with a uniformly random label in
    [0, num_classes) and included independently with probability `inclusion_rate` (½ for the
    bounds in this module). Seeded: the same arguments give the same canaries."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if kind not in CANARY_KINDS:
        raise ValueError(f"unknown canary kind {kind!r}; valid: {', '.join(CANARY_KINDS)}")
    rng = np.random.default_rng([seed, 7])
    make = _spliced if kind == "spliced" else _random_tokens
    texts = make(public_texts, count, rng)
    labels = rng.integers(0, num_classes, size=count).astype(np.int64)
    included = rng.random(count) < inclusion_rate
    return CanaryDraw(tuple(texts), labels, included, kind)


@dataclass(frozen=True)
class CanaryGenerator:
    """The canary maker a run is given (see tdd_priv.extensions.CanaryMaker)."""

    kind: CanaryKind = "spliced"

    def __call__(
        self, public_texts: Sequence[str], *, num_classes: int, count: int, seed: int
    ) -> CanaryDraw:
        return generate_canaries(
            public_texts, count=count, num_classes=num_classes, seed=seed, kind=self.kind
        )


# --- bounds --------------------------------------------------------------------------------------


def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P-value of v or more correct guesses out of r, about m canaries each included with
    probability ½, if the release were (ε, δ)-DP (Steinke, Nasr & Jagielski 2023)."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    q = float(special.expit(epsilon))
    beta = float(stats.binom.sf(v - 1, r, q))
    if delta == 0 or v == 0:
        return min(beta, 1.0)
    i = np.arange(1, v + 1)
    # P[v - i <= Binomial(r, q) < v] / i, maximised over i
    alpha = float(np.max((stats.binom.sf(v - i - 1, r, q) - beta) / i))
    return min(beta + alpha * delta * 2 * m, 1.0)


def one_run_epsilon(m: int, r: int, v: int, *, delta: float, significance: float) -> float:
    """The largest ε whose (ε, δ)-DP claim the counts reject at `significance` (0 if none)."""

    def gap(epsilon: float) -> float:
        return significance - one_run_p_value(m, r, v, epsilon, delta)

    if r == 0 or gap(0.0) <= 0:
        return 0.0
    high = 1.0
    while gap(high) > 0:
        high *= 2.0
        if high > 1e3:
            return math.inf
    return float(optimize.brentq(gap, 0.0, high, xtol=1e-6))


def _cp_lower(k: int, n: int, alpha: float) -> float:
    return 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))


def _cp_upper(k: int, n: int, alpha: float) -> float:
    return 1.0 if k == n else float(stats.beta.ppf(1 - alpha, k + 1, n - k))


def clopper_pearson_epsilon(
    true_positives: int,
    n_in: int,
    false_positives: int,
    n_out: int,
    *,
    delta: float,
    significance: float,
) -> float:
    """ε ≥ ln((TPR_lo − δ) / FPR_hi) with one-sided Clopper–Pearson bounds at significance/2 each
    (0 when the bound says nothing)."""
    tpr_low = _cp_lower(true_positives, n_in, significance / 2)
    fpr_high = _cp_upper(false_positives, n_out, significance / 2)
    if tpr_low <= delta:
        return 0.0
    return max(0.0, math.log((tpr_low - delta) / fpr_high))


def guess_counts(m: int) -> tuple[int, ...]:
    """The fixed grid of "inserted" guesses tried: m/64, m/32, ..., m/2 (at least 1)."""
    return tuple(sorted({max(1, m // d) for d in (64, 32, 16, 8, 4, 2)}))


@dataclass(frozen=True)
class EpsilonBound:
    """One lower bound on ε and the guess that gave it: the top `guesses` scores guessed
    "inserted", `correct` of them were."""

    epsilon: float
    guesses: int
    correct: int
    score: str

    def to_json(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "guesses": self.guesses,
            "correct": self.correct,
            "score": self.score,
        }


@dataclass(frozen=True)
class EpsilonBounds:
    """The best bound of each kind; `ceiling`: the one-run bound had every guess been right
    (no audit with these m canaries can show more)."""

    one_run: EpsilonBound
    clopper_pearson: EpsilonBound
    confidence: float
    delta: float
    hypotheses: int  # Bonferroni: the significance was split over this many
    ceiling: float


def epsilon_lower_bounds(
    scores: dict[str, np.ndarray] | np.ndarray,
    included: np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
) -> EpsilonBounds:
    """Lower bounds on ε at `confidence` from canary scores (higher: guessed inserted).

    `scores` may hold several score kinds (name -> (m,)); every kind and every guess count of
    `guess_counts(m)` is a hypothesis, and the significance is split over all of them.
    """
    included = np.asarray(included, dtype=bool)
    by_kind = scores if isinstance(scores, dict) else {"score": scores}
    m, n_in = included.size, int(included.sum())
    n_out = m - n_in
    grid = guess_counts(m)
    hypotheses = len(grid) * len(by_kind)
    significance = (1.0 - confidence) / hypotheses
    best_one_run = EpsilonBound(0.0, 0, 0, next(iter(by_kind)))
    best_cp = best_one_run
    for name, values in by_kind.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != included.shape:
            raise ValueError(f"scores {name!r} {values.shape} and inclusion {included.shape}")
        # ties broken at random but reproducibly, so that equal scores carry no information
        order = np.lexsort((np.random.default_rng(m).random(m), -values))
        hits = np.cumsum(included[order])
        for k in grid:
            v = int(hits[k - 1])
            eps = one_run_epsilon(m, k, v, delta=delta, significance=significance)
            if eps > best_one_run.epsilon:
                best_one_run = EpsilonBound(eps, k, v, name)
            if n_in and n_out:
                eps = clopper_pearson_epsilon(
                    v, n_in, k - v, n_out, delta=delta, significance=significance
                )
                if eps > best_cp.epsilon:
                    best_cp = EpsilonBound(eps, k, v, name)
    reachable = [k for k in grid if k <= n_in]
    ceiling = max(
        (one_run_epsilon(m, k, k, delta=delta, significance=significance) for k in reachable),
        default=0.0,
    )
    return EpsilonBounds(best_one_run, best_cp, confidence, delta, hypotheses, ceiling)


# --- the auditor -------------------------------------------------------------------------------


class CanaryAudit:
    """Scores the run's canaries against its release and bounds ε from below.

    Two scores per canary, fixed in advance: −loss of the canary's (random) label under a model
    trained on the released vectors, and the largest cosine similarity of the canary to any
    released vector or text. Returns no section when the run has no canaries.
    """

    name = "canary"

    def __init__(self, *, confidence: float = 0.95) -> None:
        self.confidence = confidence

    def __call__(self, context: Any) -> dict[str, Any]:
        canaries = context.canaries
        if canaries is None or len(canaries.texts) == 0:
            return {}
        release = context.release
        probabilities = context.fit_predict(
            release.vectors, release.targets, canaries.embeddings, context.seed
        )
        released = np.concatenate([release.vectors, release.text_embeddings])
        scores = {
            "loss": -cross_entropy(probabilities, canaries.labels),
            "nearest_release": nearest_similarity(canaries.embeddings, released),
        }
        included = np.asarray(canaries.included, dtype=bool)
        bounds = epsilon_lower_bounds(
            scores, included, delta=context.delta, confidence=self.confidence
        )
        section: dict[str, Any] = {
            "epsilon_lower_bound": bounds.one_run.epsilon,
            "epsilon_lower_bound_clopper_pearson": bounds.clopper_pearson.epsilon,
            "confidence": bounds.confidence,
            "delta": bounds.delta,
            "canaries": int(included.size),
            "inserted": int(included.sum()),
            "one_run": bounds.one_run.to_json(),
            "clopper_pearson": bounds.clopper_pearson.to_json(),
            "hypotheses": bounds.hypotheses,
            "epsilon_ceiling": bounds.ceiling,
        }
        if included.any() and not included.all():
            section["auc"] = {
                name: attack_metrics(values, included).auc for name, values in scores.items()
            }
        return section
