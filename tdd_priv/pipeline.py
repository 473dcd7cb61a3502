"""The chain of steps of one run, defined once.

`execute` runs load → split (→ canaries, when the canary audit is on) → encode (→ experts, for
methods that train experts) → distill → realize → detox (unless `detox.mode` is off) → evaluate
→ audit (unless `audit.level` is none or no auditor was given) → report. Every step is a plain
function of small configs and the previous steps' results; `execute` takes a `call` argument
that runs a step, so the Prefect flow (which wraps each step as a task) and a plain Python call
(`run`) go through exactly the same steps in the same order.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from tdd_priv.audit_context import (
    AuditContext,
    CanaryPlan,
    CanaryRecords,
    EvalX,
    ReleasedSet,
    ReleaseSource,
    ShadowRelease,
    fit_predict_proba,
    records,
)
from tdd_priv.comparison import (
    CandidateSet,
    baseline_set,
    finetune_settings,
    fixed_set,
    judge,
    judge_texts,
)
from tdd_priv.config import EXTERNAL_METHOD, INTERNAL_POOL, RunConfig, check_registered
from tdd_priv.data import (
    DEMO_SPEC,
    ColumnMapping,
    LabeledData,
    PoolCheck,
    PublicTexts,
    SplitFractions,
    Splits,
    load_labeled,
    load_public_texts,
    make_splits,
)
from tdd_priv.data.canaries import insert_canaries
from tdd_priv.data.overlap import find_overlaps
from tdd_priv.data.release import AuditedRelease
from tdd_priv.detox import Candidates, screen
from tdd_priv.device import resolve_device
from tdd_priv.encode import EmbeddingRows, embedding_cache_key, encode_cached, read_embeddings
from tdd_priv.errors import ConfigError
from tdd_priv.evaluate import LabeledTexts, Utility, majority_class_utility
from tdd_priv.extensions import NO_EXTENSIONS, Auditor, CanaryMaker, Extensions, ToxicityScorer
from tdd_priv.heads import HeadTraining, LabeledArrays
from tdd_priv.locks import remove_stale_temporaries, replacing_temporary
from tdd_priv.methods import (
    Allocation,
    DistillInput,
    ExpertTrajectories,
    GroupBalance,
    MemberArrays,
    SyntheticSet,
    check_group_balance,
    distill,
    method_info,
)
from tdd_priv.policy import load_policy
from tdd_priv.privacy import check_delta, default_delta
from tdd_priv.privacy.budget import Budget, BudgetExceeded, BudgetLedger, ledger_name
from tdd_priv.privacy.dpsgd import dp_finetune_scores, dpsgd_utility
from tdd_priv.privacy.release import (
    PlannedRelease,
    distill_privately,
    plan_release,
    train_experts_privately,
)
from tdd_priv.realize import REALIZERS, RealizationInput, RealizedSet, RealizeSettings, realize
from tdd_priv.report import RunRecord, write_run_folder
from tdd_priv.rundir import (
    RunFolders,
    check_run_folders,
    claimed_run_folders,
    reset_staging,
    staged_run_folders,
)
from tdd_priv.seeding import derive_seed
from tdd_priv.signing import check_signing_key
from tdd_priv.state import keyed_digest
from tdd_priv.threads import workload_for_rows, workload_threads

__all__ = [
    "AuditResults",
    "EmbeddingFiles",
    "EncodedInputs",
    "Evaluation",
    "LoadedInputs",
    "RunResult",
    "StepCaller",
    "audit_step",
    "budget_step",
    "call_directly",
    "canary_plan",
    "canary_step",
    "check_output_folders",
    "claimed_folders",
    "detox_step",
    "encode_key",
    "execute",
    "experts_key",
    "pool_step",
    "preflight",
    "run",
    "run_auditors",
    "run_folders",
    "write_run_folders",
]

T = TypeVar("T")
StepCaller = Callable[..., Any]


@dataclass(frozen=True)
class LoadedInputs:
    """The private labeled data and, when given separately, the public pool's texts (after the
    pool step, only those that are no labeled row: `pool_check` says how many were removed)."""

    labeled: LabeledData
    external_pool: PublicTexts | None
    pool_check: PoolCheck | None = None

    # Read from the dataset once per instance and shared by every step that asks (a column of a
    # million texts takes seconds and hundreds of MB to copy); immutable, so no step can change
    # what another sees. A `replace` (a new instance) reads its own dataset again.
    @cached_property
    def texts(self) -> tuple[str, ...]:
        return tuple(self.labeled.dataset["text"])

    @cached_property
    def labels(self) -> np.ndarray:
        labels = np.asarray(self.labeled.dataset["label"], dtype=np.int64)
        labels.flags.writeable = False
        return labels


@dataclass(frozen=True)
class EncodedInputs:
    """Embeddings ((n, d) float32, L2-normalised) of every labeled row and of the pool. The
    rows stay on disk: `rows[indices]` reads those rows (tdd_priv.encode.EmbeddingRows)."""

    rows: EmbeddingRows
    external_pool: np.ndarray | None
    model_hash: str


@dataclass(frozen=True)
class EmbeddingFiles:
    """Where the encode step left the embeddings: entries of the encoder cache. Small and made
    of paths, so an orchestrator can cache the step and pass its result on by path."""

    rows: Path
    external_pool: Path | None
    model_hash: str

    def exist(self) -> bool:
        return all(path.is_file() for path in (self.rows, self.external_pool) if path is not None)

    def load(self) -> EncodedInputs:
        pool = read_embeddings(self.external_pool) if self.external_pool is not None else None
        return EncodedInputs(EmbeddingRows(self.rows), pool, self.model_hash)


@dataclass(frozen=True)
class Evaluation:
    """Test accuracy of models trained on each set (synthetic, realized, full data, baselines)."""

    utilities: dict[str, Utility]


@dataclass(frozen=True)
class RunResult:
    """`out`: the release folder; `private`: the run's private record (never share it)."""

    out: Path
    report: dict[str, Any]
    private: Path | None = None


# --- the steps -----------------------------------------------------------------------------------


def load_step(config: RunConfig) -> LoadedInputs:
    """Read and validate the data (writes nothing; bad input raises DataValidationError)."""
    data = config.data
    labeled = load_labeled(
        data.spec,
        columns=ColumnMapping(
            text=data.text_column,
            label=data.label_column,
            groups=data.group_columns,
            split=data.split_column,
        ),
        label_names=data.label_names,
        drop_empty=data.drop_empty,
    )
    external = data.public_pool not in (None, INTERNAL_POOL)
    pool = load_public_texts(data.public_pool) if external and data.public_pool else None
    return LoadedInputs(labeled, pool)


def split_step(loaded: LoadedInputs, config: RunConfig) -> Splits:
    """Seeded members / audit / test / public-pool split of the labeled rows."""
    data = config.data
    return make_splits(
        loaded.labeled,
        seed=derive_seed(config.seed, "split"),
        per_class=config.per_class,
        internal_public_pool=loaded.external_pool is None,
        train_split=data.train_split,
        test_split=data.test_split,
        fractions=SplitFractions(
            test=data.test_fraction, audit=data.audit_fraction, public=data.public_fraction
        ),
    )


def pool_step(loaded: LoadedInputs, splits: Splits) -> tuple[LoadedInputs, Splits]:
    """Remove from the public pool every text that equals or nearly equals a labeled row.

    An external pool is checked against every labeled row (members, audit, test, canaries and
    any other split of the data); an internal pool (rows of the train split, labels dropped)
    against every labeled row outside it. A pool that shares texts with the private data is not
    public, and realization would release those texts verbatim.
    """
    texts = loaded.texts
    if loaded.external_pool is not None:
        pool = loaded.external_pool
        overlap = find_overlaps(pool.texts, texts)
        keep = np.setdiff1d(np.arange(len(pool.texts)), overlap.rows)
        kept = replace(pool, texts=tuple(pool.texts[i] for i in keep))
        check = PoolCheck("external", len(pool.texts), overlap.exact.size, overlap.near.size)
        return replace(loaded, external_pool=kept, pool_check=check), splits
    outside = np.setdiff1d(np.arange(len(texts)), splits.public)
    overlap = find_overlaps([texts[i] for i in splits.public], [texts[i] for i in outside])
    check = PoolCheck("internal", len(splits.public), overlap.exact.size, overlap.near.size)
    cleaned = replace(splits, public=np.delete(splits.public, overlap.rows))
    return replace(loaded, pool_check=check), cleaned


def encode_step(loaded: LoadedInputs, config: RunConfig) -> EmbeddingFiles:
    """Embed every labeled row (and the external pool) into the on-disk encoder cache, streamed
    block by block (memory bounded whatever the number of rows), on the run's device."""
    device = resolve_device(config)
    with workload_threads("encoding", limit=config.threads):
        rows = encode_cached(
            loaded.texts,
            config=config.encoder,
            cache_dir=config.cache_dir,
            progress=config.progress,
            device=device,
        )
        pool = None
        if loaded.external_pool is not None:
            pool = encode_cached(
                loaded.external_pool.texts,
                config=config.encoder,
                cache_dir=config.cache_dir,
                progress=config.progress,
                device=device,
            )
    return EmbeddingFiles(rows.path, pool.path if pool is not None else None, rows.model_hash)


def encode_key(loaded: LoadedInputs, config: RunConfig) -> str:
    """What the encode step's result depends on: the texts, the encoder's weights and settings,
    and the cache folder its files live in (nothing is encoded to compute it)."""
    pool = loaded.external_pool
    device = resolve_device(config)
    return _digest(
        {
            "step": "encode",
            "rows": embedding_cache_key(loaded.texts, config=config.encoder, device=device),
            "pool": (
                embedding_cache_key(pool.texts, config=config.encoder, device=device)
                if pool
                else None
            ),
            "cache_dir": str(Path(config.cache_dir).resolve()),
        }
    )


def _digest(recipe: dict[str, Any], *arrays: np.ndarray) -> str:
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode("utf-8"))
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _member_arrays(loaded: LoadedInputs, splits: Splits, encoded: EncodedInputs) -> MemberArrays:
    return MemberArrays(encoded.rows[splits.members], loaded.labels[splits.members])


def _member_input(
    loaded: LoadedInputs, splits: Splits, encoded: EncodedInputs, config: RunConfig
) -> DistillInput:
    members = _member_arrays(loaded, splits, encoded)
    return DistillInput(
        embeddings=members.embeddings,
        labels=members.labels,
        num_classes=len(loaded.labeled.label_names),
        per_class=config.per_class,
        seed=derive_seed(config.seed, "distill"),
        device=resolve_device(config),
    )


def _distill_input(
    loaded: LoadedInputs, splits: Splits, encoded: EncodedInputs, config: RunConfig
) -> DistillInput:
    return replace(
        _member_input(loaded, splits, encoded, config),
        options=config.method_options,
        progress=config.progress,
        balance=_member_groups(loaded, splits) if config.fairness == "balanced" else None,
        public_embeddings=_public_embeddings(splits, encoded),
        allocation=Allocation(config.allocation, config.total_size),
    )


def _member_groups(loaded: LoadedInputs, splits: Splits) -> GroupBalance:
    """--fairness balanced: each member's group (the intersection of the group columns)."""
    dataset = loaded.labeled.dataset
    columns = {column: dataset[column] for column in loaded.labeled.group_columns}
    return GroupBalance.from_columns(columns, splits.members)


@contextmanager
def _distill_threads(members: DistillInput, config: RunConfig) -> Iterator[None]:
    """The thread policy of a distillation: by the rows it works over (members + pool)."""
    pool = members.public_embeddings
    rows = members.size + (len(pool) if pool is not None else 0)
    with workload_threads(workload_for_rows(rows), limit=config.threads):
        yield


def uses_experts(config: RunConfig) -> bool:
    """Whether the method trains experts first (a step of its own, cacheable)."""
    return method_info(config.method).experts is not None


def experts_step(
    loaded: LoadedInputs, splits: Splits, encoded: EncodedInputs, config: RunConfig
) -> Path:
    """Train the method's experts on the private members and save them to the cache folder.

    Under DP they are DP-SGD runs at the σ calibrated for the method's whole plan, saved with
    the records of what they spent; the distill step adds those to its ledger.
    """
    members = _distill_input(loaded, splits, encoded, config)
    with _distill_threads(members, config):
        if config.privacy.enabled:
            experts = train_experts_privately(
                config.method,
                members,
                epsilon=config.privacy.epsilon,
                delta=privacy_delta(config, members.size),
                noise_seed=noise_seed(config),
            )
        else:
            train = method_info(config.method).experts
            assert train is not None, "experts_step runs only for methods that train experts"
            experts = train(members)
    key = experts_key(loaded, splits, encoded, config)
    path = Path(config.cache_dir) / "experts" / f"{key}.safetensors"
    with replacing_temporary(path) as temporary:  # removed if the run is stopped mid-write
        experts.save(temporary)
    return path


def experts_key(
    loaded: LoadedInputs, splits: Splits, encoded: EncodedInputs, config: RunConfig
) -> str:
    """What the experts depend on: the members' embeddings and labels, the method and its
    options, the seed and, under DP, (ε, δ) and the noise seed (keyed: the key is a cache file
    name, and a plain digest of a small seed could be inverted by trying seeds)."""
    members = _member_arrays(loaded, splits, encoded)
    privacy = config.privacy
    seed = configured_noise_seed(config)
    recipe = {
        "step": "experts",
        "format": 2,
        "method": config.method,
        "options": dict(config.method_options),
        "seed": derive_seed(config.seed, "distill"),
        "privacy": {
            "epsilon": privacy.epsilon,
            "delta": privacy_delta(config, len(members.labels)),
            # None: a fresh secret draw per run, so a cached release from any such run serves
            "noise_seed": None if seed is None else keyed_digest("noise-seed", str(seed)),
        }
        if privacy.enabled
        else None,
    }
    return _digest(recipe, members.embeddings, members.labels)


def distill_step(
    loaded: LoadedInputs,
    splits: Splits,
    encoded: EncodedInputs,
    config: RunConfig,
    experts: Path | None = None,
) -> SyntheticSet:
    """Distill the private members into `per_class` examples per class.

    Under DP, σ is calibrated for everything the method will release before any private data is
    touched; the method then sees the data only through the noisy gateway, whose ledger must
    come out exactly as planned. `experts`: the experts step's file, when the method has one.
    """
    members = _distill_input(loaded, splits, encoded, config)
    if experts is not None:
        members = replace(members, experts=ExpertTrajectories.load(experts))
    with _distill_threads(members, config):
        if not config.privacy.enabled:
            return distill(config.method, members)
        return distill_privately(
            config.method,
            members,
            epsilon=config.privacy.epsilon,
            delta=privacy_delta(config, members.size),
            noise_seed=noise_seed(config),
        )


# A configured noise seed travels to the steps out of band when a run goes through an
# orchestrator: never as a flow parameter, which the orchestrator stores (see `noise_seed_scope`).
_SECRET_NOISE_SEED: ContextVar[int | None] = ContextVar("secret_noise_seed", default=None)


@contextmanager
def noise_seed_scope(seed: int | None) -> Iterator[None]:
    """Within this block, runs whose config holds no noise seed use `seed` (None: fresh)."""
    token = _SECRET_NOISE_SEED.set(seed)
    try:
        yield
    finally:
        _SECRET_NOISE_SEED.reset(token)


def configured_noise_seed(config: RunConfig) -> int | None:
    """The noise seed configured for this run (in its config or its `noise_seed_scope`)."""
    configured = config.privacy.noise_seed
    return configured if configured is not None else _SECRET_NOISE_SEED.get()


def noise_seed(config: RunConfig) -> int:
    """The seed of a release's privacy noise: as configured, else a fresh secret draw.

    Never derived from `config.seed`, which the run folder publishes: whoever could regenerate
    the noise could subtract it.
    """
    configured = configured_noise_seed(config)
    return configured if configured is not None else secrets.randbits(63)


# --- the privacy budget across runs --------------------------------------------------------------


def _planned_release(loaded: LoadedInputs, splits: Splits, config: RunConfig) -> PlannedRelease:
    n = len(splits.members)
    return plan_release(
        config.method,
        options=config.method_options,
        members=n,
        classes=len(loaded.labeled.label_names),
        balanced=config.fairness == "balanced",
        epsilon=config.privacy.epsilon,
        delta=privacy_delta(config, n),
    )


def _budget_ledger(loaded: LoadedInputs, config: RunConfig) -> BudgetLedger:
    name = ledger_name(
        dataset_fingerprint=loaded.labeled.fingerprint, configured=config.privacy.budget_ledger
    )
    return BudgetLedger(name)


def check_budget(loaded: LoadedInputs, splits: Splits, config: RunConfig) -> None:
    """Refuse early (BudgetExceeded) a DP run that would take its dataset's ledger above
    `privacy.budget_limit`; `budget_step` checks again when it enters the run."""
    limit = config.privacy.budget_limit
    if limit is None:
        return
    planned = _planned_release(loaded, splits, config)
    ledger = _budget_ledger(loaded, config)
    delta = privacy_delta(config, len(splits.members))
    total = ledger.composed(delta, planned.records)
    if total > limit * (1 + 1e-9):
        raise BudgetExceeded(
            f"privacy budget: this run (ε = {config.privacy.epsilon:g}) would take the ledger "
            f"{ledger.name!r} ({len(ledger.entries())} earlier run(s)) to ε = {total:.3g} at "
            f"δ = {delta:.1e}, above --budget-limit {limit:g}. Lower --epsilon, raise the limit, "
            "or use fresh data."
        )


def budget_step(loaded: LoadedInputs, splits: Splits, config: RunConfig) -> Budget:
    """Enter this DP run, with every mechanism it will apply, in its dataset's budget ledger
    before any noisy release is computed; refused, entering nothing, when the ledger's composed
    ε would exceed `privacy.budget_limit`. Never retried: a retry would enter the run twice."""
    planned = _planned_release(loaded, splits, config)
    return _budget_ledger(loaded, config).spend(
        planned.records,
        epsilon=config.privacy.epsilon,
        delta=privacy_delta(config, len(splits.members)),
        limit=config.privacy.budget_limit,
        run=str(Path(config.out).resolve()),
    )


def privacy_delta(config: RunConfig, n: int) -> float:
    """The run's δ: as configured, else min(1e-5, n^-1.5); refused when δ >= 1/n."""
    delta = config.privacy.delta if config.privacy.delta is not None else default_delta(n)
    check_delta(delta, n)
    return delta


def _public_embeddings(splits: Splits, encoded: EncodedInputs) -> np.ndarray:
    """The public pool's embeddings: the external pool's, else the public split's rows."""
    if encoded.external_pool is not None:
        return encoded.external_pool
    return encoded.rows[splits.public]


def _public_pool(
    loaded: LoadedInputs, splits: Splits, encoded: EncodedInputs
) -> tuple[list[str], np.ndarray]:
    if loaded.external_pool is not None:
        texts = list(loaded.external_pool.texts)
    else:
        every = loaded.texts
        texts = [every[i] for i in splits.public]
    return texts, _public_embeddings(splits, encoded)


def realize_step(
    loaded: LoadedInputs,
    splits: Splits,
    encoded: EncodedInputs,
    synthetic: SyntheticSet,
    config: RunConfig,
) -> RealizedSet:
    """Turn the synthetic vectors into texts from the public pool (or private records).

    Under DP the realizers get no private data at all: only the released synthetic set and the
    public pool, so realization is post-processing.
    """
    public_texts, public_embeddings = _public_pool(loaded, splits, encoded)
    texts = loaded.texts
    private = not config.privacy.enabled
    pool = RealizationInput(
        public_texts=public_texts,
        public_embeddings=public_embeddings,
        private_texts=[texts[i] for i in splits.members] if private else None,
        private_embeddings=encoded.rows[splits.members] if private else None,
        private_labels=loaded.labels[splits.members] if private else None,
    )
    settings = RealizeSettings(
        seed=derive_seed(config.seed, "realize"),
        progress=config.progress,
        device=resolve_device(config),
    )
    with workload_threads(workload_for_rows(len(public_texts)), limit=config.threads):
        return realize(realization_strategy(config), synthetic, pool, settings)


# --- detox ---------------------------------------------------------------------------------------


def detox_step(
    loaded: LoadedInputs,
    splits: Splits,
    encoded: EncodedInputs,
    realized: RealizedSet,
    config: RunConfig,
    scorer: ToxicityScorer,
) -> RealizedSet:
    """Score the realized texts for toxicity; filter-and-replace or flag them (config.detox).

    Replacements come from the realized set's own source only (public pool, or private members
    for a coreset); the returned set carries report.json's audits.toxicity section.
    """
    if realized.source == "public":
        texts, embeddings = _public_pool(loaded, splits, encoded)
        candidates = Candidates(texts, embeddings, public_rows=loaded.external_pool is not None)
    else:
        dataset, every = loaded.labeled.dataset, loaded.texts
        columns = {column: list(dataset[column]) for column in loaded.labeled.group_columns}
        candidates = Candidates(
            [every[i] for i in splits.members],
            encoded.rows[splits.members],
            groups={
                column: [str(values[i]) for i in splits.members]
                for column, values in columns.items()
            },
        )
    return screen(realized, candidates, scorer, config.detox, loaded.labeled.label_names)


def toxicity_scorer(config: RunConfig, extensions: Extensions) -> ToxicityScorer | None:
    """The scorer config.detox names, from `extensions` (None when detox is off)."""
    if config.detox.mode == "off":
        return None
    scorers = extensions.toxicity_scorers
    if config.detox.scorer not in scorers:
        raise ConfigError(
            f"--detox {config.detox.mode} needs the toxicity scorer {config.detox.scorer!r}, but "
            f"this run was given {', '.join(scorers) or 'none'}. Run through the CLI or the flow, "
            "or pass extensions=flows.extensions.build_extensions(config) to tdd_priv.run."
        )
    return scorers[config.detox.scorer]


# --------------------------------------------------------------------------------------------------


def evaluate_step(
    loaded: LoadedInputs,
    splits: Splits,
    encoded: EncodedInputs,
    synthetic: SyntheticSet,
    realized: RealizedSet,
    config: RunConfig,
) -> Evaluation:
    """Heads trained on the synthetic set, the realized texts and the baselines, tested alike;
    and the majority-class predictor (the most frequent class of the members), the floor they
    must beat. When the released texts carry soft labels, heads are also trained on the same
    texts with their hard labels (`realized_hard_labels`), so a report shows what the soft
    labels do to each class's recall.

    Dozens of small models: single-threaded (tdd_priv.threads), heads on the run's device.
    """
    with workload_threads("small-models", limit=config.threads):
        return _evaluate(loaded, splits, encoded, synthetic, realized, config)


def _evaluate(
    loaded: LoadedInputs,
    splits: Splits,
    encoded: EncodedInputs,
    synthetic: SyntheticSet,
    realized: RealizedSet,
    config: RunConfig,
) -> Evaluation:
    labels, texts = loaded.labels, loaded.texts
    device = resolve_device(config)
    classes = len(loaded.labeled.label_names)
    seed = derive_seed(config.seed, "evaluate")
    test = LabeledArrays.from_labels(encoded.rows[splits.test], labels[splits.test], classes)
    test_texts = LabeledTexts([texts[i] for i in splits.test], labels[splits.test])
    member_labels = labels[splits.members]
    member_targets = np.eye(classes, dtype=np.float32)[member_labels]
    member_texts = LabeledTexts([texts[i] for i in splits.members], member_labels, member_targets)
    # The full-data text models read only the texts, so they are trained before the members'
    # embeddings are read: a large run never holds both (at 720k members, TF-IDF + LR's ~0.9 GB
    # of working memory beside 1.1 GB of embeddings).
    full_data_text_scores = judge_texts(
        lambda _: member_texts,
        test_texts,
        varies_with_seed=False,
        settings=config.evaluation,
        seed=seed,
        num_classes=classes,
        device=device,
    )
    members = _member_input(loaded, splits, encoded, config)
    arrays = members.exact()  # the same member rows, not a second copy (1 GB per 700k rows)
    member_set = LabeledArrays(arrays.embeddings, member_targets)
    synthetic_vectors = synthetic.training_arrays(classes)
    realized_targets = (
        realized.soft_labels
        if realized.soft_labels is not None
        else np.eye(classes, dtype=np.float32)[realized.labels]
    )
    candidates = {
        "synthetic": CandidateSet(lambda _: synthetic_vectors, None, varies_with_seed=False),
        "realized": fixed_set(LabeledArrays(realized.embeddings, realized_targets), realized.texts),
        "full_data": fixed_set(member_set),  # its text models: full_data_text_scores
        **{
            name: baseline_set(name, members, member_texts.texts)
            for name in config.evaluation.baselines
        },
    }
    if realized.soft_labels is not None:
        hard = LabeledArrays.from_labels(realized.embeddings, realized.labels, classes)
        # embedding heads only: the text models are scored once, on the released labels
        candidates["realized_hard_labels"] = CandidateSet(lambda _: hard, None, False)
    utilities = {
        name: judge(
            candidate,
            test,
            test_texts,
            settings=config.evaluation,
            seed=seed,
            label=name,
            progress=config.progress,
            device=device,
        )
        for name, candidate in candidates.items()
    }
    utilities["full_data"] = utilities["full_data"].with_text_models(full_data_text_scores)
    if config.privacy.enabled:
        # The baseline every DP result is compared with: the same heads trained with DP-SGD on
        # the real members at the same (ε, δ).
        delta = privacy_delta(config, len(member_set.x))
        dp_sgd = dpsgd_utility(
            member_set,
            test,
            heads=config.evaluation.heads,
            seeds=config.evaluation.seeds,
            seed=seed,
            epsilon=config.privacy.epsilon,
            delta=delta,
            progress=config.progress,
            device=device,
        )
        if "finetune" in config.evaluation.text_models:  # and the fine-tune, by DP-SGD too
            dp_finetune = dp_finetune_scores(
                LabeledTexts(member_texts.texts, member_labels),
                test_texts,
                num_classes=classes,
                seeds=config.evaluation.seeds,
                seed=seed,
                epsilon=config.privacy.epsilon,
                delta=delta,
                settings=finetune_settings(config.evaluation, device=device),
            )
            dp_sgd = dp_sgd.with_text_models((dp_finetune,))
        utilities["dp_sgd"] = dp_sgd
    utilities["majority_class"] = majority_class_utility(arrays.labels, test.labels, classes)
    return Evaluation(utilities)


# --- audits --------------------------------------------------------------------------------------


def canary_maker(config: RunConfig, extensions: Extensions) -> CanaryMaker | None:
    """The canary maker from `extensions` when the run inserts canaries (None otherwise): an
    explicit count, or canaries sized from the claimed ε (DP runs only: without DP nothing is
    claimed that canaries could check)."""
    count = config.audit.canary_count
    if count == 0 or (count is None and not config.privacy.enabled):
        return None
    if extensions.canary_maker is None:
        asked = f"{count} canaries" if count else "canaries sized from the claimed ε"
        raise ConfigError(
            f"the canary audit ({asked}) needs a canary maker, but this run was given none. Run "
            "through the CLI or the flow, pass extensions=flows.extensions.build_extensions("
            "config) to tdd_priv.run, or set audit.canaries to 0."
        )
    return extensions.canary_maker


def canary_plan(config: RunConfig, members: int) -> CanaryPlan | None:
    """How the run counts its canaries, for `members` private records before any canary joins
    them (None: no canary audit). Sized runs use the run's δ for that many members: at least
    the δ the release ends up with (inserted canaries add members, and the default δ shrinks
    with n), so the count they get suffices."""
    requested = config.audit.canary_count
    if requested == 0 or (requested is None and not config.privacy.enabled):
        return None
    epsilon = config.privacy.epsilon if config.privacy.enabled else None
    delta = privacy_delta(config, members) if config.privacy.enabled else default_delta(members)
    return CanaryPlan(requested=requested, epsilon=epsilon, delta=delta, members=members)


def canary_step(
    loaded: LoadedInputs, splits: Splits, config: RunConfig, maker: CanaryMaker
) -> tuple[LoadedInputs, Splits]:
    """Make the canaries from public texts (seeded) and insert the ones drawn for insertion into
    the members; every canary row is recorded in `Splits.canaries` (the private splits file).

    Their number is `audit.canaries`, or, when sized, the smallest count whose ceiling exceeds
    the claimed ε (the canary maker's `size`); none when no affordable count could, in which case
    the canary audit reports why and its verdict is INCONCLUSIVE."""
    plan = canary_plan(config, len(splits.members))
    if plan is None:
        return loaded, splits
    count = plan.requested
    if count is None:
        count = maker.size(epsilon=plan.epsilon, delta=plan.delta, members=plan.members).count
    if count == 0:
        return loaded, splits
    if loaded.external_pool is not None:
        public_texts = list(loaded.external_pool.texts)
    else:
        texts = loaded.texts
        public_texts = [texts[i] for i in splits.public]
    draw = maker(
        public_texts,
        num_classes=len(loaded.labeled.label_names),
        count=count,
        seed=derive_seed(config.seed, "canaries"),
    )
    labeled, augmented = insert_canaries(loaded.labeled, splits, draw)
    return replace(loaded, labeled=labeled), augmented


@dataclass(frozen=True)
class AuditResults:
    """report.json's audit sections, one per auditor that had something to say."""

    sections: dict[str, dict[str, Any]]


def _shadow_release(
    loaded: LoadedInputs,
    splits: Splits,
    encoded: EncodedInputs,
    config: RunConfig,
    universe: np.ndarray,
) -> ShadowRelease:
    classes = len(loaded.labeled.label_names)

    def shadow_release(in_mask: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        shadow_splits = Splits(
            members=universe[np.asarray(in_mask, dtype=bool)],
            audit=np.zeros(0, dtype=np.int64),
            test=splits.test,
            public=splits.public,
            seed=splits.seed,
        )
        shadow_config = replace(config, seed=seed, progress=False)
        arrays = distill_step(loaded, shadow_splits, encoded, shadow_config).training_arrays(
            classes
        )
        return arrays.x, arrays.targets

    return shadow_release


def audit_context(
    loaded: LoadedInputs,
    splits: Splits,
    encoded: EncodedInputs,
    synthetic: SyntheticSet,
    realized: RealizedSet,
    config: RunConfig,
) -> AuditContext:
    """What the auditors see (tdd_priv.audit_context): the splits as arrays and texts, the
    release, the canaries, and callables to train heads and re-run the distill step."""
    texts, labels = loaded.texts, loaded.labels
    dataset = loaded.labeled.dataset
    groups = {column: list(dataset[column]) for column in loaded.labeled.group_columns}
    member_rows = np.setdiff1d(splits.members, splits.canaries)
    internal_pool = loaded.external_pool is None
    classes = len(loaded.labeled.label_names)
    vectors = synthetic.training_arrays(classes)
    canaries = None
    if splits.canaries.size:
        rows = splits.canaries
        canaries = CanaryRecords(
            texts=tuple(texts[i] for i in rows),
            labels=labels[rows],
            embeddings=encoded.rows[rows],
            included=np.isin(rows, splits.members),
        )
    privacy = synthetic.privacy
    full = config.audit.level == "full" and config.audit.shadows >= 2
    universe = np.concatenate([member_rows, splits.audit])
    training = HeadTraining(steps=config.evaluation.steps)

    def fit_predict(x: np.ndarray, targets: np.ndarray, eval_x: EvalX, seed: int) -> Any:
        # The auditors' models (one per shadow and attack) are small: single-threaded.
        with workload_threads("small-models", limit=config.threads):
            return fit_predict_proba(x, targets, eval_x, seed, training=training)

    return AuditContext(
        level="full" if full else "basic",
        seed=derive_seed(config.seed, "audit") % 2**31,
        label_names=tuple(loaded.labeled.label_names),
        members=records(member_rows, texts, encoded.rows, labels, groups),
        nonmembers=records(splits.audit, texts, encoded.rows, labels, groups),
        test=records(splits.test, texts, encoded.rows, labels, groups),
        pool=records(splits.public, texts, encoded.rows, labels, groups) if internal_pool else None,
        release=ReleasedSet(
            texts=tuple(realized.texts),
            labels=np.asarray(realized.labels),
            text_embeddings=realized.embeddings,
            vectors=vectors.x,
            targets=vectors.targets,
            source=_release_source(realized, internal_pool=internal_pool),
            epsilon=privacy["epsilon"] if privacy else None,
        ),
        canaries=canaries,
        canary_plan=canary_plan(config, len(member_rows)),
        epsilon=privacy["epsilon"] if privacy else None,
        delta=privacy["delta"] if privacy else default_delta(len(splits.members)),
        shadows=config.audit.shadows if full else 0,
        fit_predict=fit_predict,
        shadow_release=_shadow_release(loaded, splits, encoded, config, universe) if full else None,
    )


def _release_source(realized: RealizedSet, *, internal_pool: bool) -> ReleaseSource:
    """Where the released texts come from, for the auditors: member records, the external
    public pool, or rows of the user's labeled data used as an internal pool."""
    if realized.source == "private":
        return "private"
    return "internal-pool" if internal_pool else "public"


def audit_step(
    loaded: LoadedInputs,
    splits: Splits,
    encoded: EncodedInputs,
    synthetic: SyntheticSet,
    realized: RealizedSet,
    config: RunConfig,
    auditors: tuple[Auditor, ...],
) -> AuditResults:
    """Run every auditor (from `audits/`, via Extensions) on the run's artifacts."""
    return run_auditors(
        audit_context(loaded, splits, encoded, synthetic, realized, config), auditors
    )


def run_auditors(context: AuditContext, auditors: tuple[Auditor, ...]) -> AuditResults:
    """Each auditor's report section for `context` (auditors with nothing to say are left out)."""
    sections: dict[str, dict[str, Any]] = {}
    for auditor in auditors:
        section = dict(auditor(context))
        if section:
            sections[auditor.name] = section
    return AuditResults(sections)


# --------------------------------------------------------------------------------------------------


def report_step(
    staging: RunFolders,
    loaded: LoadedInputs,
    splits: Splits,
    encoded: EncodedInputs,
    synthetic: SyntheticSet,
    realized: RealizedSet,
    evaluation: Evaluation,
    config: RunConfig,
    audit: AuditResults | None = None,
    budget: Budget | None = None,
    release: AuditedRelease | None = None,
) -> dict[str, Any]:
    """Write the run's release and private record into the staging folders `staging` and return
    report.json's content. A retried attempt starts from empty staging folders. `release`: what
    the report says about a release made outside tdd-priv (tdd_priv.external)."""
    for folder in (staging.release, staging.private):
        reset_staging(folder)
    record = RunRecord(
        config=config,
        labeled=loaded.labeled,
        external_pool=loaded.external_pool,
        splits=splits,
        model_hash=encoded.model_hash,
        embedding_dim=int(encoded.rows.shape[1]),
        synthetic=synthetic,
        realized=realized,
        utility=evaluation.utilities,
        privacy=synthetic.privacy,
        audits=audit.sections if audit is not None else {},
        policy=load_policy(config.audit.policy) if config.audit.level != "none" else None,
        pool_check=loaded.pool_check,
        budget=budget,
        release=release,
    )
    return write_run_folder(staging, record)


def run_folders(config: RunConfig) -> RunFolders:
    """The run's release folder (`out`) and its private record's folder."""
    named = config.out if config.out.name not in ("", "..") else config.out.resolve()
    if not named.name:
        raise ConfigError(
            f"--out {config.out} is the root folder; a run never writes there: choose a new folder."
        )
    return RunFolders(release=config.out, private=replace(config, out=named).private_folder)


def _input_paths(config: RunConfig) -> list[Path]:
    """Files and folders the run reads (that exist here): a run folder never replaces them."""
    specs = [config.data.spec, config.data.public_pool, config.encoder.model, config.detox.model]
    paths = [config.audit.policy, config.signing_key]
    for spec in specs:
        if spec:
            name = spec.removeprefix("hf:")
            paths += [Path(spec), Path(name), Path(name.rpartition(":")[0] or name)]
    return [path for path in dict.fromkeys(paths) if path is not None and path.exists()]


# --- the chain -----------------------------------------------------------------------------------


def realization_strategy(config: RunConfig) -> str:
    """The configured realization, defaulting to the one that fits the method."""
    if config.realize is not None:
        return config.realize
    return (
        "private-coreset" if method_info(config.method).releases_private_records else "public-match"
    )


def check_config(config: RunConfig) -> None:
    """Reject inconsistent settings before any data is read.

    Every setting has its type and range checked when the RunConfig is built; this adds the
    names that refer to registries (for configs built directly, not read) and the checks
    across settings.
    """
    check_registered(config)
    if config.method == EXTERNAL_METHOD or config.release is not None:
        raise ConfigError(
            "a release made outside tdd-priv is audited, not distilled: use `tdd-priv audit "
            "--release FILE` (tdd_priv.external.audit_release), or drop `release` and `method: "
            f"{EXTERNAL_METHOD}` from the config."
        )
    if config.data.heldout_split is not None:
        raise ConfigError(
            "data.heldout_split (--heldout-split) names the non-members of a release audited with "
            "`tdd-priv audit`; a distillation run holds out data.audit_fraction of the train "
            "split instead. Drop the setting."
        )
    resolve_device(config)  # --device cuda without CUDA fails before anything runs
    info = method_info(config.method)
    strategy = realization_strategy(config)
    if strategy not in REALIZERS:
        raise ConfigError(f"unknown --realize {strategy!r}; valid: {', '.join(REALIZERS)}")
    if config.privacy.enabled and not info.differentially_private:
        reason = (
            "releases private records and has no differentially private variant"
            if info.releases_private_records
            else "has no differentially private variant yet"
        )
        raise ConfigError(f"method '{info.name}' {reason}; pass --no-dp to run it without privacy.")
    limit = config.privacy.budget_limit
    if config.privacy.enabled and limit is not None and config.privacy.epsilon > limit:
        raise ConfigError(
            f"privacy.epsilon {config.privacy.epsilon:g} alone exceeds privacy.budget_limit "
            f"{limit:g}; lower --epsilon or raise the limit."
        )
    if config.privacy.enabled and strategy == "private-coreset":
        raise ConfigError(
            "--realize private-coreset releases private records; under DP use public-match, "
            "public-teacher or public-nearest, or pass --no-dp."
        )
    if config.privacy.enabled and config.data.public_pool is None:
        raise ConfigError(
            "a differentially private run releases texts from a public pool, and none was given: "
            "pass --public-pool FILE with texts from another, public source (labels there are "
            "ignored). The rows of your own data are not public; to release some of them "
            f"anyway, outside the guarantee, pass --public-pool {INTERNAL_POOL} (the report then "
            "says the release is not covered)."
        )
    if config.fairness == "balanced":  # group-balanced matching
        check_group_balance(config.method)
        if not config.data.group_columns and config.data.spec != DEMO_SPEC:
            raise ConfigError(
                "--fairness balanced needs a sensitive-group column: pass --group-column C "
                "(repeat for several; their intersection is used), or use --fairness none."
            )
    check_output_folders(config)


def check_output_folders(config: RunConfig) -> None:
    """Refuse, before any work, folders a run must not write, an unusable signing key and a bad
    policy file (every chain that writes a run folder checks these first)."""
    check_run_folders(run_folders(config), overwrite=config.overwrite, inputs=_input_paths(config))
    check_signing_key(config.signing_key)
    if config.audit.level != "none":
        load_policy(config.audit.policy)  # a bad policy file fails before anything runs


def preflight(config: RunConfig) -> None:
    """Validate the config and the data (load and split, in memory) without running anything.

    Lets a front end that is slow to start, such as a Prefect server, fail fast on bad input.
    """
    check_config(config)
    loaded = load_step(config)
    splits = split_step(loaded, config)
    if config.privacy.enabled:
        privacy_delta(config, len(splits.members))
        check_budget(loaded, splits, config)


def call_directly(step: Callable[..., T], *args: Any) -> T:
    """Run a step in this process, with a one-line progress note on stderr."""
    started = time.perf_counter()
    result = step(*args)
    name = step.__name__.removesuffix("_step")
    print(f"  {name:<9} done in {time.perf_counter() - started:6.1f} s", file=sys.stderr)
    return result


def execute(
    config: RunConfig,
    *,
    call: StepCaller = call_directly,
    extensions: Extensions = NO_EXTENSIONS,
) -> RunResult:
    """Run every step; the run folders appear only if all of them succeed.

    Both run folders are locked from before the first step to the end (a second run into them
    fails at once), and what killed runs left beside them is removed first. `extensions`
    carries the toxicity scorers and auditors from `audits/` (see tdd_priv.extensions); the
    library itself never imports them.
    """
    check_config(config)
    scorer = toxicity_scorer(config, extensions)
    maker = canary_maker(config, extensions)
    auditors = tuple(extensions.auditors) if config.audit.level != "none" else ()
    with claimed_folders(config) as folders:
        loaded = call(load_step, config)
        splits = call(split_step, loaded, config)
        if maker is not None:
            loaded, splits = call(canary_step, loaded, splits, config, maker)
        loaded, splits = call(pool_step, loaded, splits)
        encoded = call(encode_step, loaded, config).load()
        budget = call(budget_step, loaded, splits, config) if config.privacy.enabled else None
        experts = (
            call(experts_step, loaded, splits, encoded, config) if uses_experts(config) else None
        )
        synthetic = call(distill_step, loaded, splits, encoded, config, experts)
        realized = call(realize_step, loaded, splits, encoded, synthetic, config)
        if scorer is not None:
            realized = call(detox_step, loaded, splits, encoded, realized, config, scorer)
        evaluation = call(evaluate_step, loaded, splits, encoded, synthetic, realized, config)
        audit = (
            call(audit_step, loaded, splits, encoded, synthetic, realized, config, auditors)
            if auditors
            else None
        )
        report = write_run_folders(
            config,
            folders,
            call,
            loaded,
            splits,
            encoded,
            synthetic,
            realized,
            evaluation,
            config,
            audit,
            budget,
        )
    return RunResult(out=config.out, report=report, private=folders.private)


@contextmanager
def claimed_folders(config: RunConfig) -> Iterator[RunFolders]:
    """Lock the run's release and private folders for the whole chain (a second run into them
    fails at once) and remove what killed runs left beside them and in the cache first."""
    folders = run_folders(config)
    with claimed_run_folders(folders) as leftovers:
        cache = Path(config.cache_dir)
        for folder in (cache / "embeddings", cache / "experts"):
            leftovers += remove_stale_temporaries(folder)
        if leftovers:
            print(
                f"tdd-priv: removed {len(leftovers)} leftover(s) of interrupted runs: "
                + ", ".join(str(path) for path in leftovers),
                file=sys.stderr,
            )
        yield folders


def write_run_folders(
    config: RunConfig, folders: RunFolders, call: StepCaller, *report_args: Any
) -> dict[str, Any]:
    """Run the report step (with `report_args` after its staging folders) into staging folders
    that replace the run's folders (private first) only once everything is written; returns
    report.json's content. Every chain that writes a run folder (`execute`, tdd_priv.external)
    goes through `claimed_folders` and here."""
    with staged_run_folders(folders, overwrite=config.overwrite) as staging:
        report: dict[str, Any] = call(report_step, staging, *report_args)
    return report


def run(config: RunConfig, *, extensions: Extensions = NO_EXTENSIONS) -> RunResult:
    """The plain-Python API: one run without Prefect."""
    return execute(config, extensions=extensions)
