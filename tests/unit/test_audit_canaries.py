"""The canary audit: generation, sizing from the claimed ε, two-sided one-run bounds that stay
below the true ε (coverage), and the oracle: a mechanism without noise is caught, a calibrated
one is not."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from audits.canaries import (
    CANARY_COUNTS,
    CanaryAudit,
    CanaryGenerator,
    canary_ceiling,
    epsilon_lower_bound,
    generate_canaries,
    guess_counts,
    one_run_epsilon,
    one_run_p_value,
    size_canaries,
)
from tdd_priv.audit_context import AuditContext, AuditRecords, CanaryPlan, CanaryRecords
from tdd_priv.audit_context import ReleasedSet as LibraryRelease
from tdd_priv.policy import judge, load_policy
from tdd_priv.privacy.calibration import PlannedMechanism, calibrate_noise
from tdd_priv.privacy.mechanisms import gaussian_sum
from tests.unit.test_audit_membership import _coreset_run

PUBLIC = [f"public sentence number {i} about topic {i % 7} and more words" for i in range(60)]


def gaussian_dp_epsilon(mu: float, delta: float) -> float:
    """ε of μ-Gaussian DP at δ (Dong, Roth & Su 2019, Corollary 2.13)."""

    def gap(eps: float) -> float:
        tail = stats.norm.cdf(-eps / mu + mu / 2) - np.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)
        return float(tail - delta)

    return float(optimize.brentq(gap, 0.0, 200.0))


def test_generation_is_seeded_distinct_and_new() -> None:
    for kind in ("spliced", "random-tokens"):
        draw = generate_canaries(PUBLIC, count=200, num_classes=3, seed=4, kind=kind)  # type: ignore[arg-type]
        again = generate_canaries(PUBLIC, count=200, num_classes=3, seed=4, kind=kind)  # type: ignore[arg-type]
        assert draw.texts == again.texts
        assert np.array_equal(draw.included, again.included)
        assert len(set(draw.texts)) == 200 and not set(draw.texts) & set(PUBLIC)
        assert set(draw.labels.tolist()) == {0, 1, 2}
        assert 0.35 < draw.included.mean() < 0.65
    other = CanaryGenerator()(PUBLIC, num_classes=3, count=200, seed=5)
    assert other.texts != draw.texts
    with pytest.raises(ValueError, match="unknown canary kind"):
        generate_canaries(PUBLIC, count=3, num_classes=2, seed=0, kind="poems")  # type: ignore[arg-type]


def test_p_value_and_bound_agree() -> None:
    m, r, v, delta = 1000, 250, 200, 1e-5
    epsilon = one_run_epsilon(m, r, v, delta=delta, significance=0.05)
    assert epsilon > 0.5
    assert one_run_p_value(m, r, v, epsilon, delta) == pytest.approx(0.05, abs=1e-3)
    assert one_run_p_value(m, r, v, epsilon + 0.2, delta) > 0.05
    # Half right is what a coin does: no evidence against any ε.
    assert one_run_epsilon(m, 250, 125, delta=delta, significance=0.05) == 0.0
    assert guess_counts(256) == (32, 64, 96)


# --- ceiling and sizing ------------------------------------------------------------------------


def test_ceiling_is_the_bound_of_a_perfect_two_sided_attack() -> None:
    m, delta = 256, 1e-5
    scores = ("loss", "nearest_release")
    included = np.arange(m) < m // 2  # a balanced draw
    perfect = {name: included.astype(float) for name in scores}
    bound = epsilon_lower_bound(perfect, included, delta=delta)
    assert bound.epsilon == pytest.approx(canary_ceiling(m, delta=delta), rel=1e-6)
    assert bound.ceiling == pytest.approx(bound.epsilon, rel=1e-6)
    assert bound.guess.guessed_in == bound.guess.guessed_out == 96  # 3m/8 on each side
    assert bound.guess.correct == bound.guess.guesses == 192
    assert bound.hypotheses == 6
    # More canaries can show more; a larger δ or more hypotheses less.
    assert canary_ceiling(512, delta=delta) > canary_ceiling(256, delta=delta)
    assert canary_ceiling(256, delta=1e-3) < canary_ceiling(256, delta=delta)
    assert canary_ceiling(256, delta=delta, scores=4) < canary_ceiling(256, delta=delta)
    # An unbalanced draw leaves a perfect attack fewer right guesses at the largest k.
    assert canary_ceiling(64, delta=delta, inserted=16) < canary_ceiling(64, delta=delta)


def test_the_old_one_sided_defaults_could_not_fail_at_epsilon_4() -> None:
    # What was wrong: one-sided guesses, 12 hypotheses. With 256 canaries at δ = 1e-5 even a
    # release that copies the canaries could not show ε above 4; two-sided guesses on a small
    # grid reach further, and the sizing asks for as many canaries as ε = 4 needs.
    old_grid_perfect = max(
        one_run_epsilon(256, k, k, delta=1e-5, significance=0.05 / 12) for k in (64, 128)
    )
    assert old_grid_perfect < 3.2
    assert canary_ceiling(256, delta=1e-5) > old_grid_perfect
    sizing = size_canaries(4.0, delta=1e-5, members=100_000)
    assert sizing.count == 512 and sizing.ceiling > 4.0
    assert canary_ceiling(256, delta=1e-5) <= 4.0  # the next smaller count would not do


@pytest.mark.parametrize(
    ("epsilon", "count"),
    [(0.5, 16), (1.0, 32), (2.0, 64), (4.0, 512)],
)
def test_sizing_picks_the_smallest_count_whose_ceiling_exceeds_epsilon(
    epsilon: float, count: int
) -> None:
    sizing = size_canaries(epsilon, delta=1e-5, members=100_000)
    assert sizing.count == count
    assert sizing.ceiling == pytest.approx(canary_ceiling(count, delta=1e-5))
    assert sizing.ceiling > epsilon
    smaller = [m for m in CANARY_COUNTS if m < count]
    assert all(canary_ceiling(m, delta=1e-5) <= epsilon for m in smaller)
    assert f"m = {count}" in sizing.reason and f"{epsilon:g}" in sizing.reason


def test_sizing_says_when_no_count_can_check_the_claim() -> None:
    # ε = 8 at δ = 1e-5 is out of reach of any one-run audit on this grid: the δ term grows with
    # m faster than more guesses help.
    best = max(canary_ceiling(m, delta=1e-5) for m in CANARY_COUNTS)
    assert 5.5 < best < 8.0
    none = size_canaries(8.0, delta=1e-5, members=10**6)
    assert none.count == 0 and none.ceiling == pytest.approx(best)
    assert "no count up to the cap" in none.reason and "δ term" in none.reason
    # The cap: canaries at most a quarter of the members.
    capped = size_canaries(4.0, delta=1e-5, members=1000)
    assert capped.cap == 250 and capped.count == 0
    assert capped.ceiling == pytest.approx(canary_ceiling(128, delta=1e-5))
    tiny = size_canaries(1.0, delta=1e-5, members=40)
    assert tiny.count == 0 and "exceeds the cap" in tiny.reason
    unclaimed = size_canaries(None, delta=1e-5, members=10**6)
    assert unclaimed.count == 0 and "not differentially private" in unclaimed.reason


# --- coverage: the bound never claims more than the truth -----------------------------------


@pytest.mark.parametrize("mu", [1.0, 2.0])
def test_bounds_cover_the_true_epsilon_of_gaussian_dp_scores(mu: float) -> None:
    # Each canary's score is N(mu, 1) when inserted, N(0, 1) otherwise: mu-GDP per canary.
    delta, trials = 1e-5, 60
    true_epsilon = gaussian_dp_epsilon(mu, delta)
    rng = np.random.default_rng(int(mu * 10))
    bounds = []
    for _ in range(trials):
        included = rng.random(500) < 0.5
        bounds.append(epsilon_lower_bound(rng.normal(mu * included, 1.0), included, delta=delta))
    epsilons = np.array([b.epsilon for b in bounds])
    assert np.mean(epsilons <= true_epsilon) >= 0.95
    assert np.mean(epsilons) > 0.3  # and the bound is not vacuous
    assert all(b.epsilon <= b.ceiling for b in bounds)


def test_one_run_bound_covers_randomized_response_tightly() -> None:
    # Randomized response with ε = 1: each score tells the truth with probability e/(1+e), on
    # both sides. The bound must stay below 1 in at least 95 % of runs, and come close to it.
    epsilon, trials = 1.0, 100
    rng = np.random.default_rng(11)
    bounds = []
    for _ in range(trials):
        included = rng.random(2000) < 0.5
        truthful = rng.random(2000) < np.exp(epsilon) / (1 + np.exp(epsilon))
        guess = np.where(truthful, included, ~included).astype(float)
        bounds.append(epsilon_lower_bound(guess, included, delta=0.0).epsilon)
    assert np.mean(np.array(bounds) <= epsilon) >= 0.95
    assert np.median(bounds) > 0.5


# --- the oracle: a broken mechanism is caught, a correct one is not ------------------------------

EPSILON, DELTA, DIMENSION = 1.0, 1e-5, 384


@dataclass(frozen=True)
class _Oracle:
    """Canaries are the private records (random unit vectors of a sentence encoder's width),
    each included with probability ½; the release is the library's Gaussian sum of the included
    ones at clip norm 1, ONE release, whose ε the library's calibration sets."""

    m: int
    noise_multiplier: float
    seed: int

    def audit(self) -> dict:  # type: ignore[type-arg]
        rng = np.random.default_rng(self.seed)
        embeddings = rng.normal(size=(self.m, DIMENSION)).astype(np.float32)
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
        included = rng.random(self.m) < 0.5
        released = gaussian_sum(
            torch.from_numpy(embeddings[included]),
            noise_multiplier=self.noise_multiplier,
            max_norm=1.0,
            generator=torch.Generator().manual_seed(self.seed),
        ).numpy()[None, :]
        empty = AuditRecords(
            np.zeros(0, np.int64), (), np.zeros((0, DIMENSION), np.float32), np.zeros(0, np.int64)
        )
        context = AuditContext(
            level="basic",
            seed=self.seed,
            label_names=("a", "b"),
            members=empty,
            nonmembers=empty,
            test=empty,
            release=LibraryRelease(
                texts=(),
                labels=np.zeros(0, np.int64),
                text_embeddings=np.zeros((0, DIMENSION), np.float32),
                vectors=released,
                targets=np.eye(2, dtype=np.float32)[[0]],
                source="public",
                epsilon=EPSILON,
            ),
            canaries=CanaryRecords(
                texts=tuple(f"canary {i}" for i in range(self.m)),
                labels=np.zeros(self.m, np.int64),
                embeddings=embeddings,
                included=included,
            ),
            epsilon=EPSILON,
            delta=DELTA,
            shadows=0,
            # a head trained on one vector says nothing: uniform (its score ties, at random)
            fit_predict=lambda x, targets, eval_x, seed: np.full((len(eval_x), 2), 0.5),
            shadow_release=None,
            canary_plan=CanaryPlan(requested=None, epsilon=EPSILON, delta=DELTA, members=10**6),
        )
        return CanaryAudit()(context)


def _verdict(section: dict) -> dict:  # type: ignore[type-arg]
    report = {"privacy": {"epsilon": EPSILON}, "audits": {"canary": section}}
    return judge(load_policy(), report)["canary_bound_below_epsilon"]


def _oracle_count() -> int:
    return size_canaries(EPSILON, delta=DELTA, members=10**6).count


def _calibrated_sigma() -> float:
    return calibrate_noise(
        target_epsilon=EPSILON, delta=DELTA, plan=[PlannedMechanism("canary_sum", 1.0, 1)]
    )


@pytest.mark.parametrize("seed", range(4))
def test_a_mechanism_without_noise_fails_the_canary_verdict(seed: int) -> None:
    m = _oracle_count()
    assert m == 32  # the documented setting: ε = 1, δ = 1e-5
    section = _Oracle(m, noise_multiplier=0.0, seed=seed).audit()
    assert section["canaries"] == m and section["sizing"]["requested"] == "auto"
    assert section["epsilon_lower_bound"] > EPSILON
    assert section["one_run"]["score"] == "nearest_release"
    verdict = _verdict(section)
    assert verdict["status"] == "FAIL" and verdict["can_fail"] is True
    assert verdict["ceiling"] == pytest.approx(section["epsilon_ceiling"])


@pytest.mark.parametrize("m", [None, 256])
def test_a_calibrated_mechanism_stays_below_its_epsilon(m: int | None) -> None:
    sigma = _calibrated_sigma()
    assert 3.5 < sigma < 5.0  # one Gaussian release at ε = 1, δ = 1e-5
    count = m or _oracle_count()
    for seed in range(20):
        section = _Oracle(count, noise_multiplier=sigma, seed=seed).audit()
        assert section["epsilon_lower_bound"] <= EPSILON
        powered = section["epsilon_ceiling"] > EPSILON
        assert _verdict(section)["status"] == ("PASS" if powered else "INCONCLUSIVE")


def test_too_few_canaries_give_inconclusive_never_pass() -> None:
    section = _Oracle(16, noise_multiplier=_calibrated_sigma(), seed=0).audit()
    assert section["epsilon_ceiling"] <= EPSILON  # 16 canaries cannot show ε = 1
    verdict = _verdict(section)
    assert verdict["status"] == "INCONCLUSIVE" and verdict["can_fail"] is False


# --- the auditor on a made-up run ----------------------------------------------------------------


@dataclass
class _Canaries:
    texts: tuple[str, ...]
    labels: np.ndarray
    embeddings: np.ndarray
    included: np.ndarray


@dataclass(frozen=True)
class _Plan:
    requested: int | None
    epsilon: float | None
    delta: float
    members: int


def test_auditor_scores_canaries_against_the_release() -> None:
    run = _coreset_run(released=10)
    rng = np.random.default_rng(13)
    m = 256
    embeddings = rng.normal(size=(m, 8))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    included = rng.random(m) < 0.5
    labels = rng.integers(0, 2, m)
    run.canaries = _Canaries(tuple(map(str, range(m))), labels, embeddings, included)
    run.canary_plan = _Plan(m, None, 1e-5, 200)
    private = run.release
    # Non-private: every inserted canary is released verbatim.
    leaky = type(private)(
        texts=private.texts + tuple(str(i) for i in np.flatnonzero(included)),
        labels=np.r_[private.labels, labels[included]],
        text_embeddings=np.r_[private.text_embeddings, embeddings[included]],
        vectors=np.r_[private.vectors, embeddings[included]],
        targets=np.r_[private.targets, np.eye(2, dtype=np.float32)[labels[included]]],
    )
    run.release = leaky
    section = CanaryAudit()(run)
    assert section["canaries"] == m and section["inserted"] == int(included.sum())
    # Every guess right: the bound is at the ceiling of these canaries for this draw.
    assert section["epsilon_lower_bound"] == pytest.approx(section["epsilon_ceiling"], rel=1e-6)
    assert section["epsilon_ceiling"] > 3.0
    assert section["one_run"]["score"] == "nearest_release"
    assert section["grid"]["guesses_per_side"] == [32, 64, 96]
    assert section["grid"]["hypotheses"] == 6  # 3 guess counts x 2 scores
    assert section["sizing"]["reason"] == f"m = {m}: as configured (audit.canaries)"
    # A release that never saw the canaries: nothing to find.
    run.release = private
    assert CanaryAudit()(run)["epsilon_lower_bound"] < 0.5
    run.canaries = None
    assert CanaryAudit()(run) == {}


def test_a_claim_no_canary_count_can_check_is_reported_not_hidden() -> None:
    run = _coreset_run(released=10)
    run.canary_plan = _Plan(None, 8.0, 1e-5, 10**6)  # sized: none could show ε = 8
    section = CanaryAudit()(run)
    assert section["canaries"] == 0 and section["epsilon_lower_bound"] is None
    assert section["epsilon_ceiling"] == 0.0
    assert "no count up to the cap" in section["sizing"]["reason"]
    verdict = judge(load_policy(), {"privacy": {"epsilon": 8.0}, "audits": {"canary": section}})
    assert verdict["canary_bound_below_epsilon"]["status"] == "INCONCLUSIVE"
    run.canary_plan = _Plan(None, None, 1e-5, 10**6)  # not private: nothing claimed
    assert CanaryAudit()(run) == {}
