"""The canary audit: insert m secret records, each with probability ½, and bound ε from below.

1. `size_canaries` chooses m from the claimed ε: the smallest m of `CANARY_COUNTS` whose
   ceiling (`canary_ceiling`: the bound a perfect attack would give) exceeds ε, up to a cap of a
   quarter of the members; or none, saying why. With fewer canaries the audit cannot fail.
2. `generate_canaries` makes m canary records from public texts — real-looking ("spliced": the
   first half of one public text joined to the second half of another) or random token strings
   ("random-tokens") — each with a uniformly random label, and draws which of them are inserted
   into the private training data (independently, probability ½). The pipeline inserts them and
   records them in the run's private folder.
3. After the run, each canary gets scores (higher: more likely inserted) from the release.
4. `epsilon_lower_bound` turns scores and inclusions into an empirical lower bound on ε, at 95 %
   confidence, with the one-run method of Steinke, Nasr & Jagielski (2023, "Privacy Auditing
   with One (1) Training Run"): guess "inserted" for the k top scores and "not inserted" for the
   k bottom ones, abstain on the rest; under (ε, δ)-DP, r = 2k guesses about independently
   included canaries are right v or more times with probability at most
   P[Binomial(r, e^ε/(1+e^ε)) ≥ v] + 2mδ·max_i P[v−i ≤ Binomial < v]/i (their Theorem 3 with
   its δ term). The bound is the largest ε whose p-value is below the significance. A small,
   fixed grid of k per score is searched, paid for by a Bonferroni correction.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from scipy import optimize, special

from audits.membership import attack_metrics, cross_entropy, nearest_similarity

__all__ = [
    "CANARY_COUNTS",
    "CANARY_SCORES",
    "MAX_CANARY_SHARE",
    "CanaryAudit",
    "CanaryDraw",
    "CanaryGenerator",
    "CanaryKind",
    "CanarySizing",
    "EpsilonBound",
    "Guess",
    "canary_ceiling",
    "epsilon_lower_bound",
    "generate_canaries",
    "guess_counts",
    "one_run_epsilon",
    "one_run_p_value",
    "size_canaries",
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

    def size(self, *, epsilon: float | None, delta: float, members: int) -> CanarySizing:
        """How many canaries a run claiming `epsilon` needs (see `size_canaries`)."""
        return size_canaries(epsilon, delta=delta, members=members)


# --- bounds --------------------------------------------------------------------------------------

# The scores the auditor computes for every canary (see CanaryAudit); each is its own hypothesis.
CANARY_SCORES: tuple[str, ...] = ("loss", "nearest_release")

# Guesses per side as a share of m: k = m/8, m/4, 3m/8 "inserted" guesses at the top and as many
# "not inserted" at the bottom (r = m/4, m/2, 3m/4 guesses). Why these three:
# - every extra grid point splits the significance further (Bonferroni), lowering every bound:
#   with 256 canaries at δ = 1e-5 a perfect attack shows ε ≥ 3.93 with one point per score,
#   3.66 with these three, 3.38 with twelve;
# - a perfect attack's bound grows with r, so the grid must reach far: 3m/8 per side is the
#   largest k that a perfect attack still fills on both sides for almost every draw (the
#   inserted count is m/2 ± √m/2; 3m/8 leaves m/8 of slack, two standard deviations at m = 64);
# - an attack whose evidence lies only in the extremes (a few canaries clearly in or out) is
#   served by the smaller k, where abstaining on the middle keeps wrong guesses out.
GUESS_SHARES: tuple[float, ...] = (1 / 8, 1 / 4, 3 / 8)

# The canary counts `size_canaries` chooses from: powers of two, so a run needs at most twice the
# canaries its ε requires, and the choice is easy to reproduce.
CANARY_COUNTS: tuple[int, ...] = tuple(2**p for p in range(4, 15))  # 16 ... 16,384

# Canaries may be at most this share of the members (about half of them are inserted), so the
# audit does not turn the training data into mostly canaries.
MAX_CANARY_SHARE = 0.25


def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P-value of v or more correct guesses out of r, about m canaries each included with
    probability ½, if the release were (ε, δ)-DP (Steinke, Nasr & Jagielski 2023, Theorem 3)."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    q = float(special.expit(epsilon))
    beta = float(special.bdtrc(v - 1, r, q))  # P[Binomial(r, q) >= v]
    if delta == 0 or v == 0:
        return min(beta, 1.0)
    # P[v - i <= Binomial(r, q) < v] / i, maximised over i = 1..v: sums of the pmf below v,
    # from log-pmfs (one vectorised pass; a search calls this a few dozen times per bound)
    j = np.arange(v)
    log_pmf = (
        special.gammaln(r + 1)
        - special.gammaln(j + 1)
        - special.gammaln(r - j + 1)
        - j * np.logaddexp(0.0, -epsilon)  # j·log q
        - (r - j) * np.logaddexp(0.0, epsilon)  # (r − j)·log(1 − q)
    )
    below = np.cumsum(np.exp(log_pmf[::-1]))  # [i − 1]: P[v − i <= B < v]
    alpha = float(np.max(below / np.arange(1, v + 1)))
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


def guess_counts(m: int) -> tuple[int, ...]:
    """The guesses per side tried for m canaries: m/8, m/4, 3m/8 (distinct, at least 1)."""
    return tuple(sorted({max(1, int(m * share)) for share in GUESS_SHARES}))


def _significance(m: int, confidence: float, scores: int) -> tuple[float, int]:
    hypotheses = len(guess_counts(m)) * scores
    return (1.0 - confidence) / hypotheses, hypotheses


@functools.lru_cache(maxsize=1024)
def canary_ceiling(
    m: int,
    *,
    delta: float,
    confidence: float = 0.95,
    scores: int = len(CANARY_SCORES),
    inserted: int | None = None,
) -> float:
    """The largest lower bound on ε that m canaries can give: that of a perfect attack (every
    score of an inserted canary above every other) on the guess grid, at δ and `confidence`,
    the significance split over `scores` × grid hypotheses as in `epsilon_lower_bound`.

    `inserted`: how many canaries the draw inserted (None: m/2, the balanced draw expected before
    the draw; a perfect attack then fills every grid point). With an unbalanced draw a perfect
    attack's k top guesses hold min(k, inserted) inserted canaries, so the ceiling may be lower.
    """
    if m < 1:
        return 0.0
    n_in = m // 2 if inserted is None else inserted
    significance, _ = _significance(m, confidence, scores)
    return max(
        one_run_epsilon(
            m, 2 * k, min(k, n_in) + min(k, m - n_in), delta=delta, significance=significance
        )
        for k in guess_counts(m)
    )


@dataclass(frozen=True)
class CanarySizing:
    """How many canaries a claim of ε needs, and why.

    count: canaries to insert (0: none can settle the claim, or there is no claim); ceiling: the
    ceiling at `count`, or at the largest count the cap allows when none suffices; cap: the most
    canaries allowed (a share of the members); reason: one sentence for the report.
    """

    count: int
    ceiling: float
    epsilon: float | None
    delta: float
    members: int
    cap: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "ceiling": self.ceiling,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "members": self.members,
            "cap": self.cap,
            "counts_tried": list(CANARY_COUNTS),
            "reason": self.reason,
        }


def size_canaries(
    epsilon: float | None,
    *,
    delta: float,
    members: int,
    confidence: float = 0.95,
    counts: Sequence[int] = CANARY_COUNTS,
    max_share: float = MAX_CANARY_SHARE,
) -> CanarySizing:
    """The smallest count of `counts` whose `canary_ceiling` exceeds the claimed `epsilon`, with
    at most `max_share` × `members` canaries; count 0 when none does or no ε is claimed (a run
    without DP). δ: the run's δ (the ceiling falls as δ grows, so a δ at least as large as the
    run's gives a count that suffices)."""
    cap = int(members * max_share)
    allowed = [m for m in sorted(counts) if m <= cap]

    def sizing(count: int, ceiling: float, reason: str) -> CanarySizing:
        return CanarySizing(count, ceiling, epsilon, delta, members, cap, reason)

    if epsilon is None:
        return sizing(0, 0.0, "no ε is claimed (the run is not differentially private)")
    where = f"at δ = {delta:.3g} and {confidence:.0%} confidence"
    if not allowed:
        return sizing(
            0,
            0.0,
            f"even the smallest count, {min(counts)}, exceeds the cap of {cap} canaries "
            f"({max_share:g} of {members} members)",
        )
    best, best_m = 0.0, allowed[0]
    for m in allowed:
        ceiling = canary_ceiling(m, delta=delta, confidence=confidence)
        if ceiling > epsilon:
            return sizing(
                m,
                ceiling,
                f"m = {m}: the smallest count of {', '.join(map(str, counts))} whose ceiling "
                f"({ceiling:.3g}) exceeds the claimed ε = {epsilon:g} {where}",
            )
        if ceiling > best:
            best, best_m = ceiling, m
    beyond = " (more canaries lower it: the bound's δ term grows with m)"
    return sizing(
        0,
        best,
        f"no count up to the cap of {cap} canaries ({max_share:g} of {members} members) can "
        f"show ε above {epsilon:g} {where}: the best, m = {best_m}, reaches {best:.3g}"
        + (beyond if best_m < allowed[-1] else ""),
    )


@dataclass(frozen=True)
class Guess:
    """One two-sided guess: the `guessed_in` top scores guessed "inserted", the `guessed_out`
    bottom ones "not inserted", `correct` of the r = guessed_in + guessed_out right."""

    guessed_in: int
    guessed_out: int
    correct: int
    score: str

    @property
    def guesses(self) -> int:
        return self.guessed_in + self.guessed_out


@dataclass(frozen=True)
class EpsilonBound:
    """The best one-run lower bound on ε over the grid, the guess that gave it, and the ceiling
    (the bound had a perfect attack made the guesses, for this draw)."""

    epsilon: float
    guess: Guess
    ceiling: float
    confidence: float
    delta: float
    hypotheses: int

    def to_json(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "guesses": self.guess.guesses,
            "guessed_in": self.guess.guessed_in,
            "guessed_out": self.guess.guessed_out,
            "correct": self.guess.correct,
            "score": self.guess.score,
        }


def epsilon_lower_bound(
    scores: Mapping[str, np.ndarray] | np.ndarray,
    included: np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
) -> EpsilonBound:
    """A lower bound on ε at `confidence` from canary scores (m,) (higher: guessed inserted) and
    the inclusions (m,) bool.

    `scores` may hold several score kinds (name -> (m,)); every kind and every guess count of
    `guess_counts(m)` is a hypothesis, and the significance is split over all of them.
    """
    included = np.asarray(included, dtype=bool)
    by_kind = scores if isinstance(scores, Mapping) else {"score": scores}
    m = included.size
    grid = guess_counts(m)
    significance, hypotheses = _significance(m, confidence, len(by_kind))
    best_epsilon, best = 0.0, Guess(0, 0, 0, next(iter(by_kind)))
    # ties broken at random but reproducibly, so that equal scores carry no information
    tiebreak = np.random.default_rng(m).random(m)
    for name, values in by_kind.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != included.shape:
            raise ValueError(f"scores {name!r} {values.shape} and inclusion {included.shape}")
        order = np.lexsort((tiebreak, -values))  # highest score first
        top_hits = np.cumsum(included[order])
        bottom_hits = np.cumsum(~included[order[::-1]])
        for k in grid:
            v = int(top_hits[k - 1] + bottom_hits[k - 1])
            epsilon = one_run_epsilon(m, 2 * k, v, delta=delta, significance=significance)
            if epsilon > best_epsilon:
                best_epsilon, best = epsilon, Guess(k, k, v, name)
    ceiling = canary_ceiling(
        m, delta=delta, confidence=confidence, scores=len(by_kind), inserted=int(included.sum())
    )
    return EpsilonBound(best_epsilon, best, ceiling, confidence, delta, hypotheses)


# --- the auditor -------------------------------------------------------------------------------


class CanaryAudit:
    """Scores the run's canaries against its release and bounds ε from below.

    Two scores per canary, fixed in advance (`CANARY_SCORES`): −loss of the canary's (random)
    label under a model trained on the released vectors, and the largest cosine similarity of the
    canary to any released vector or text. The section carries the bound, its ceiling, m, the
    guesses and why m was chosen. Without canaries it returns no section, unless the run claims
    an ε that no affordable number of canaries could check: then it says so (ceiling 0).
    """

    name = "canary"

    def __init__(self, *, confidence: float = 0.95) -> None:
        self.confidence = confidence

    def _sizing(self, context: Any, m: int) -> dict[str, Any]:
        plan = context.canary_plan
        if plan is None:
            return {"requested": m, "reason": f"m = {m}: the run's canaries"}
        if plan.requested is not None:
            ceiling = canary_ceiling(plan.requested, delta=plan.delta, confidence=self.confidence)
            return {
                "requested": plan.requested,
                "ceiling": ceiling,
                "epsilon": plan.epsilon,
                "delta": plan.delta,
                "reason": f"m = {plan.requested}: as configured (audit.canaries)",
            }
        sizing = size_canaries(
            plan.epsilon, delta=plan.delta, members=plan.members, confidence=self.confidence
        )
        return {"requested": "auto", **sizing.to_json()}

    def __call__(self, context: Any) -> dict[str, Any]:
        canaries, plan = context.canaries, context.canary_plan
        m = 0 if canaries is None else len(canaries.texts)
        if m == 0:
            if plan is None or plan.requested is not None or plan.epsilon is None:
                return {}
            return {
                "epsilon_lower_bound": None,
                "epsilon_ceiling": 0.0,
                "confidence": self.confidence,
                "delta": context.delta,
                "canaries": 0,
                "inserted": 0,
                "sizing": self._sizing(context, 0),
                "note": "No canaries were inserted: none could have shown the claimed ε.",
            }
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
        bound = epsilon_lower_bound(
            scores, included, delta=context.delta, confidence=self.confidence
        )
        section: dict[str, Any] = {
            "epsilon_lower_bound": bound.epsilon,
            "epsilon_ceiling": bound.ceiling,
            "confidence": bound.confidence,
            "delta": bound.delta,
            "canaries": m,
            "inserted": int(included.sum()),
            "one_run": bound.to_json(),
            "grid": {
                "guesses_per_side": list(guess_counts(m)),
                "scores": list(scores),
                "hypotheses": bound.hypotheses,
            },
            "sizing": self._sizing(context, m),
            "note": (
                "One-run bound (Steinke, Nasr & Jagielski 2023): the k top scores guessed "
                "inserted, the k bottom ones not, the rest abstained; the ceiling is the bound a "
                "perfect attack would give with these canaries."
            ),
        }
        if included.any() and not included.all():
            section["auc"] = {
                name: attack_metrics(values, included).auc for name, values in scores.items()
            }
        return section
