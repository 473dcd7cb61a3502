"""The library's extensions, built from the `audits` package (the library never imports it).

Both orchestrators use `build_extensions`: the Prefect flow (flows/distill.py) passes its result
to `tdd_priv.pipeline.execute`, and the CLI's local path to `tdd_priv.pipeline.run`. Nothing here
imports Prefect, so the local path stays free of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from audits.canaries import CANARY_KINDS, CanaryAudit, CanaryGenerator
from audits.fairness import FairnessAudit
from audits.leakage import LeakageAudit
from audits.membership import MembershipAudit
from audits.toxicity import SCORERS, Embed, fit_classifier, load_scorer, save_classifier
from flows.scatter import current_shadow_map
from tdd_priv.config import AuditConfig, DetoxConfig, RunConfig
from tdd_priv.encode import EncoderConfig, SentenceEncoder, encode_cached
from tdd_priv.errors import ConfigError
from tdd_priv.extensions import Auditor, CanaryMaker, Extensions, ToxicityScorer

__all__ = [
    "SCORER_NAMES",
    "ClassifierTraining",
    "auditors",
    "build_extensions",
    "canary_maker",
    "make_embed",
    "toxicity_scorers",
    "train_toxicity_classifier",
]

SCORER_NAMES = tuple(SCORERS)


def build_extensions(config: RunConfig) -> Extensions:
    """Everything from `audits` that the run's config asks for."""
    return Extensions(
        toxicity_scorers=toxicity_scorers(config.detox),
        auditors=auditors(config.audit),
        canary_maker=canary_maker(config.audit),
    )


# --- audits --------------------------------------------------------------------------------------


def auditors(audit: AuditConfig) -> tuple[Auditor, ...]:
    """The auditors of `audit.level`: none; basic (membership without shadows, canaries when
    there are any, leakage, fairness); full (membership with `audit.shadows` shadow re-runs,
    spread by flows.scatter.current_shadow_map(): in this process unless a caller says)."""
    if audit.level == "none":
        return ()
    shadows = audit.shadows if audit.level == "full" else 0
    return (
        MembershipAudit(shadows=shadows, map_shadows=current_shadow_map()),
        CanaryAudit(),
        LeakageAudit(),
        FairnessAudit(min_group_size=audit.min_group_size, n_boot=audit.bootstrap),
    )


def canary_maker(audit: AuditConfig) -> CanaryMaker | None:
    """The canary maker of `audit.canary_kind` when the run may insert canaries (a count, or
    canaries sized from the claimed ε by `audits.canaries.size_canaries`)."""
    if audit.canary_count == 0:
        return None
    if audit.canary_kind not in CANARY_KINDS:
        raise ConfigError(
            f"audit.canary_kind {audit.canary_kind!r} is unknown; valid: {', '.join(CANARY_KINDS)}."
        )
    return CanaryGenerator(kind=audit.canary_kind)  # type: ignore[arg-type]  # checked above


# --- toxicity ------------------------------------------------------------------------------------


def make_embed(spec: Mapping[str, Any]) -> Embed:
    """The embed function for the encoder a classifier artifact records (model, max_length,
    pooling); refuses an encoder whose weights differ from the recorded `model_sha256`."""
    config = EncoderConfig(
        model=str(spec["model"]),
        max_length=int(spec.get("max_length", EncoderConfig.max_length)),
        pooling=spec.get("pooling", "mean"),
    )
    encoder = SentenceEncoder(config)
    recorded = spec.get("model_sha256")
    if recorded and encoder.model_hash != recorded:
        raise ConfigError(
            f"the toxicity classifier was trained on encoder {config.model!r} with weights "
            f"sha256 {str(recorded)[:12]}…, but that name now loads weights "
            f"{encoder.model_hash[:12]}…; retrain it with `tdd-priv detox train`."
        )

    def embed(texts: Sequence[str]) -> np.ndarray:
        return encoder.encode(texts, progress=False)

    return embed


def toxicity_scorers(detox: DetoxConfig) -> dict[str, ToxicityScorer]:
    """{name: scorer} for the scorer `detox` names; empty when detox is off."""
    if detox.mode == "off":
        return {}
    try:
        scorer = load_scorer(detox.scorer, model=detox.model, make_embed=make_embed)
    except ValueError as error:
        raise ConfigError(f"--detox-scorer {detox.scorer}: {error}") from error
    return {detox.scorer: scorer}


@dataclass(frozen=True)
class ClassifierTraining:
    """Where a trained classifier went and how it did on held-out rows."""

    out: Path
    train_rows: int
    heldout_rows: int
    metrics: Mapping[str, float]


def _heldout_metrics(targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import precision_score, recall_score, roc_auc_score

    predicted = scores >= 0.5
    metrics = {
        "precision": float(precision_score(targets, predicted, zero_division=0)),
        "recall": float(recall_score(targets, predicted, zero_division=0)),
    }
    if len(set(targets.tolist())) == 2:
        metrics["auc"] = float(roc_auc_score(targets, scores))
    return {name: round(value, 4) for name, value in metrics.items()}


def train_toxicity_classifier(
    *,
    data: str,
    out: Path,
    text_column: str = "text",
    label_column: str = "toxic",
    positive: str = "1",
    split_column: str | None = None,
    train_split: str = "train",
    test_split: str = "test",
    label: str = "toxicity",
    encoder: EncoderConfig | None = None,
    cache_dir: Path,
    regularization: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> ClassifierTraining:
    """Train the `classifier` scorer on a labeled file and save it to `out` (safetensors + JSON).

    `label_column` is binary; `positive` names its toxic class. With `split_column`, rows of
    `train_split` train and rows of `test_split` are held out; without one, a seeded 20 % of the
    rows are held out. Embeddings go through the run's encoder cache.
    """
    from tdd_priv.data import ColumnMapping, load_labeled

    labeled = load_labeled(
        data, columns=ColumnMapping(text=text_column, label=label_column, split=split_column)
    )
    if len(labeled.label_names) != 2 or positive not in labeled.label_names:
        raise ConfigError(
            f"{labeled.source}: column {label_column!r} must be binary with a class named "
            f"{positive!r} (found classes {', '.join(labeled.label_names)}); pass --positive."
        )
    texts = list(labeled.dataset["text"])
    positive_id = labeled.label_names.index(positive)
    targets = (np.asarray(labeled.dataset["label"]) == positive_id).astype(np.int64)
    if split_column is not None:
        splits = np.asarray(labeled.dataset["split"])
        train, heldout = np.flatnonzero(splits == train_split), np.flatnonzero(splits == test_split)
        if len(train) == 0:
            raise ConfigError(f"{labeled.source}: no rows in split {train_split!r} to train on.")
    else:
        order = np.random.default_rng(seed).permutation(len(texts))
        cut = round(0.8 * len(texts))
        train, heldout = np.sort(order[:cut]), np.sort(order[cut:])
    encoder = encoder or EncoderConfig()
    # Only the rows used are encoded: the training rows, then the held-out ones.
    encoded = encode_cached(
        [texts[i] for i in np.concatenate([train, heldout])],
        config=encoder,
        cache_dir=cache_dir,
        progress=progress,
    )
    train_x, heldout_x = encoded.embeddings[: len(train)], encoded.embeddings[len(train) :]
    spec = {
        "model": encoder.model,
        "max_length": encoder.max_length,
        "pooling": encoder.pooling,
        "model_sha256": encoded.model_hash,
    }
    model = fit_classifier(
        train_x,
        targets[train],
        [label],
        encoder=spec,
        regularization=regularization,
    )
    metrics = (
        _heldout_metrics(targets[heldout], model.predict(heldout_x)[:, 0]) if len(heldout) else {}
    )
    training = {
        "data": labeled.name,
        "data_fingerprint": labeled.fingerprint,
        "text_column": text_column,
        "label_column": label_column,
        "positive_class": positive,
        "split": {"column": split_column, "train": train_split, "heldout": test_split}
        if split_column
        else {"heldout_fraction": 0.2, "seed": seed},
        "train_rows": len(train),
        "train_positive_rate": round(float(targets[train].mean()), 4),
        "heldout_rows": len(heldout),
        "heldout_metrics_at_0.5": metrics,
        "regularization_C": regularization,
        "class_weight": "balanced",
    }
    save_classifier(replace(model, training=training), out)
    return ClassifierTraining(out, len(train), len(heldout), metrics)
