"""Audit a synthetic text release made outside tdd-priv (`tdd-priv audit`), and score one.

A team that generated synthetic labeled text with an LLM or a distillation paper's code needs
the same audits as a tdd-priv run (published distilled text sets do copy training sentences
verbatim, which only a leakage audit shows). This module chains the pipeline's own steps on
such a release, once, for every front end:

    read the release file → load the data → map the release's labels to the data's classes →
    membership (members: every row of the train split the release was made from; non-members:
    the held-out split, default the test split) → pool (only with a public pool: its texts that
    equal a labeled row are set aside, then the release is matched against it) → encode the
    labeled rows → encode the release → score toxicity (flag only: an external release is
    scored, never changed) → evaluate (the run's protocol: heads on the release, on the full
    train split and on random / herding / k-center at the same k) → audit (the run's auditors,
    the release as what was released; no shadow re-runs: nobody can re-run its maker) → report
    (the same signed run folder, `method: external`, with NO privacy claim).

Every step goes through `call`, as in `tdd_priv.pipeline.execute`, so the Prefect flow
(flows/external.py) runs the same chain as the local orchestrator. `evaluate_release` is the
load-and-evaluate part alone, for code that scores any labeled synthetic text file under the
run's protocol.

Data without a split column is refused: nobody could say which rows the maker saw.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tdd_priv.audit_context import AuditContext, records
from tdd_priv.config import (
    EXTERNAL_METHOD,
    INTERNAL_POOL,
    PrivacyConfig,
    RunConfig,
    check_registered,
)
from tdd_priv.data.overlap import find_overlaps
from tdd_priv.data.release import (
    AuditedRelease,
    PoolMatches,
    ReleaseFile,
    ReleaseMembership,
    ReleaseTable,
    read_release_table,
    release_membership,
    resolve_release,
)
from tdd_priv.detox import Candidates, screen
from tdd_priv.encode import encode_cached, read_embeddings
from tdd_priv.errors import ConfigError
from tdd_priv.extensions import NO_EXTENSIONS, Auditor, Extensions, ToxicityScorer
from tdd_priv.methods import SyntheticSet
from tdd_priv.pipeline import (
    AuditResults,
    EncodedInputs,
    Evaluation,
    LoadedInputs,
    RunResult,
    StepCaller,
    audit_context,
    call_directly,
    check_output_folders,
    claimed_folders,
    encode_step,
    evaluate_step,
    load_step,
    pool_step,
    run_auditors,
    toxicity_scorer,
    write_run_folders,
)
from tdd_priv.realize import RealizedSet
from tdd_priv.rundir import RunFolders
from tdd_priv.seeding import derive_seed

__all__ = [
    "PreparedRelease",
    "audit_release",
    "evaluate_release",
    "external_settings",
    "preflight_release",
]


def external_settings(config: RunConfig) -> RunConfig:
    """`config` as an audit of the release it names (`config.release`): method external, no
    privacy and no distillation settings (the release was not made here; a run config reused
    for an audit keeps its data, encoder, evaluation, audit and output settings)."""
    if config.release is None:
        raise ConfigError(
            "no release to audit: pass --release FILE (config setting: release), a CSV, JSONL "
            "or Parquet file with 'text' and 'label' columns."
        )
    return replace(
        config,
        method=EXTERNAL_METHOD,
        method_options={},
        realize=None,
        fairness="none",
        privacy=PrivacyConfig(enabled=False),
    )


def _check_settings(config: RunConfig) -> None:
    """Refuse settings an audit of a release made elsewhere cannot honour (nothing is read)."""
    check_registered(config)
    audit = config.audit
    if audit.level == "full":
        raise ConfigError(
            "--audit full re-runs the release's maker for shadow models, which tdd-priv cannot do "
            "for a release made elsewhere: use --audit basic (membership inference without "
            "shadows, leakage, fairness)."
        )
    if audit.canaries not in (None, 0):
        raise ConfigError(
            "canaries must be inserted into the data before a release is made from it, so an "
            "audit of a finished release cannot use them: drop audit.canaries (--canaries)."
        )
    if config.data.public_pool == INTERNAL_POOL:
        raise ConfigError(
            "--public-pool internal cuts a pool from the train split; an audit matches the "
            "release against texts of another, public source: pass --public-pool FILE, or none."
        )
    if config.detox.mode == "filter":
        raise ConfigError(
            "--detox filter would replace released texts, and an external release is audited "
            "as it is: use --detox flag (score and mark every text) or --detox off."
        )


# --- the steps ------------------------------------------------------------------------------------


def read_release_step(config: RunConfig) -> ReleaseTable:
    """Read the release file and check its shape (columns, empty texts, missing labels)."""
    assert config.release is not None, "external_settings refuses a config without a release"
    return read_release_table(config.release)


def label_release_step(table: ReleaseTable, loaded: LoadedInputs) -> ReleaseFile:
    """The release's labels as class ids of the loaded data (names or ids; refused otherwise)."""
    return resolve_release(table, tuple(loaded.labeled.label_names))


def membership_step(loaded: LoadedInputs, config: RunConfig) -> ReleaseMembership:
    """Members (the train split), non-members (the held-out split) and test rows."""
    data = config.data
    return release_membership(
        loaded.labeled,
        train_split=data.train_split,
        test_split=data.test_split,
        heldout_split=data.heldout_split,
        per_class=config.per_class,
        seed=derive_seed(config.seed, "split"),
    )


def pool_match_step(release: ReleaseFile, loaded: LoadedInputs) -> PoolMatches:
    """How many released texts equal or nearly equal a text of the (cleaned) public pool."""
    pool = loaded.external_pool
    assert pool is not None, "pool_match_step runs only with a public pool"
    overlap = find_overlaps(release.texts, pool.texts)
    return PoolMatches(len(pool.texts), int(overlap.exact.size), int(overlap.near.size))


def encode_release_step(release: ReleaseFile, config: RunConfig) -> Path:
    """Embed the released texts into the encoder cache (same encoder as the labeled rows)."""
    return encode_cached(
        release.texts, config=config.encoder, cache_dir=config.cache_dir, progress=config.progress
    ).path


def released_sets(release: ReleaseFile, embeddings: np.ndarray) -> tuple[SyntheticSet, RealizedSet]:
    """The release in the pipeline's two shapes: its text embeddings (m, d) as the synthetic
    set the heads train on (with its soft labels when given), and its texts as released."""
    synthetic = SyntheticSet(
        embeddings=embeddings,
        labels=release.labels,
        soft_labels=release.soft_labels,
        method=EXTERNAL_METHOD,
    )
    realized = RealizedSet(
        texts=release.texts,
        labels=release.labels,
        embeddings=embeddings,
        source="external",
        rows=np.arange(release.rows, dtype=np.int64),
        strategy=EXTERNAL_METHOD,
        soft_labels=release.soft_labels,
    )
    return synthetic, realized


def score_release_step(
    realized: RealizedSet, config: RunConfig, scorer: ToxicityScorer, label_names: tuple[str, ...]
) -> RealizedSet:
    """Score every released text for toxicity and mark those over a threshold (never removed:
    only flag mode reaches here); the set carries report.json's audits.toxicity."""
    candidates = Candidates(realized.texts, realized.embeddings)
    return screen(realized, candidates, scorer, config.detox, label_names)


def release_audit_context(
    loaded: LoadedInputs,
    membership: ReleaseMembership,
    encoded: EncodedInputs,
    synthetic: SyntheticSet,
    realized: RealizedSet,
    config: RunConfig,
) -> AuditContext:
    """The run's audit context, with the held-out split as non-members, the release marked as
    made outside tdd-priv, and no shadow re-runs, canaries or internal pool."""
    basic = replace(config, audit=replace(config.audit, level="basic", canaries=0))
    context = audit_context(loaded, membership.splits, encoded, synthetic, realized, basic)
    dataset = loaded.labeled.dataset
    groups = {column: list(dataset[column]) for column in loaded.labeled.group_columns}
    nonmembers = records(membership.nonmembers, loaded.texts, encoded.rows, loaded.labels, groups)
    return dataclasses.replace(
        context,
        nonmembers=nonmembers,
        pool=None,
        release=dataclasses.replace(context.release, source="external"),
    )


def audit_release_step(
    loaded: LoadedInputs,
    membership: ReleaseMembership,
    encoded: EncodedInputs,
    synthetic: SyntheticSet,
    realized: RealizedSet,
    config: RunConfig,
    auditors: tuple[Auditor, ...],
) -> AuditResults:
    """Run every auditor (from `audits/`, via Extensions) on the release."""
    context = release_audit_context(loaded, membership, encoded, synthetic, realized, config)
    return run_auditors(context, auditors)


# --- the chain ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedRelease:
    """A release read, placed against the data and embedded: what evaluation and the audits
    start from. `config` has `per_class` set to the release's k (ReleaseFile.per_class)."""

    config: RunConfig
    loaded: LoadedInputs
    release: ReleaseFile
    membership: ReleaseMembership
    encoded: EncodedInputs
    synthetic: SyntheticSet
    realized: RealizedSet
    pool_matches: PoolMatches | None


def _prepare(config: RunConfig, call: StepCaller) -> PreparedRelease:
    table = call(read_release_step, config)
    loaded = call(load_step, config)
    release = call(label_release_step, table, loaded)
    config = replace(config, per_class=release.per_class(len(loaded.labeled.label_names)))
    membership = call(membership_step, loaded, config)
    matches = None
    if loaded.external_pool is not None:
        loaded, _ = call(pool_step, loaded, membership.splits)
        matches = call(pool_match_step, release, loaded)
    # the pool is only matched as texts, never embedded
    encoded = call(encode_step, replace(loaded, external_pool=None), config).load()
    embeddings = read_embeddings(call(encode_release_step, release, config))
    synthetic, realized = released_sets(release, embeddings)
    return PreparedRelease(
        config, loaded, release, membership, encoded, synthetic, realized, matches
    )


def preflight_release(config: RunConfig) -> None:
    """Validate the settings, the release file and the data (nothing encoded or written), so
    that a front end slow to start (a Prefect server) fails fast on bad input."""
    config = external_settings(config)
    _check_settings(config)
    check_output_folders(config)
    table = read_release_step(config)
    loaded = load_step(config)
    release = label_release_step(table, loaded)
    membership_step(
        loaded, replace(config, per_class=release.per_class(len(loaded.labeled.label_names)))
    )


def audit_release(
    config: RunConfig,
    *,
    call: StepCaller = call_directly,
    extensions: Extensions = NO_EXTENSIONS,
) -> RunResult:
    """Audit the release `config.release` against the data `config.data` and write the signed
    run folder `config.out` (and its private sibling), as `tdd_priv.pipeline.execute` does for
    a run; it appears only if every step succeeds. `extensions` carries the auditors and
    toxicity scorers from `audits/` (flows.extensions.build_extensions)."""
    config = external_settings(config)
    _check_settings(config)
    check_output_folders(config)
    scorer = toxicity_scorer(config, extensions)
    auditors = tuple(extensions.auditors) if config.audit.level != "none" else ()
    with claimed_folders(config) as folders:
        return _audit(config, folders, call, scorer, auditors)


def _audit(
    config: RunConfig,
    folders: RunFolders,
    call: StepCaller,
    scorer: ToxicityScorer | None,
    auditors: tuple[Auditor, ...],
) -> RunResult:
    prepared = _prepare(config, call)
    config, loaded, splits = prepared.config, prepared.loaded, prepared.membership.splits
    encoded, synthetic, realized = prepared.encoded, prepared.synthetic, prepared.realized
    if scorer is not None:
        names = tuple(loaded.labeled.label_names)
        realized = call(score_release_step, realized, config, scorer, names)
    evaluation = call(evaluate_step, loaded, splits, encoded, synthetic, realized, config)
    audit = (
        call(
            audit_release_step,
            loaded,
            prepared.membership,
            encoded,
            synthetic,
            realized,
            config,
            auditors,
        )
        if auditors
        else None
    )
    release = AuditedRelease(prepared.release, prepared.membership, prepared.pool_matches)
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
        None,
        release,
    )
    return RunResult(out=config.out, report=report, private=folders.private)


def evaluate_release(
    config: RunConfig, release: Path, *, call: StepCaller = call_directly
) -> Evaluation:
    """Test accuracy of models trained on the labeled synthetic text file `release` under the
    run's protocol (config.evaluation: heads and seeds, on the data's test split), with full
    data and the random / herding / k-center baselines at the release's k. Needs data with a
    split column (`config.data`); writes nothing but encoder cache entries.

    The `utility` of report.json: "synthetic" (the release's text embeddings), "realized" (the
    same rows as texts, with the text models), "full_data" and one entry per baseline."""
    # no public pool: it only says which released texts are public, which scoring does not need
    data = replace(config.data, public_pool=None)
    config = external_settings(replace(config, release=Path(release), data=data))
    check_registered(config)
    prepared = _prepare(config, call)
    return call(
        evaluate_step,
        prepared.loaded,
        prepared.membership.splits,
        prepared.encoded,
        prepared.synthetic,
        prepared.realized,
        prepared.config,
    )
