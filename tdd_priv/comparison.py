"""The sets a run is judged against, and how each is judged.

Every set (the synthetic vectors, the realized texts, the full private train set, and the
random / herding / k-center baselines) is a `CandidateSet`: a training set per model seed, as
vectors for the embedding heads and, where it is made of texts, as texts for the text models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from tdd_priv.config import EvalConfig
from tdd_priv.evaluate import (
    HeadScores,
    LabeledTexts,
    TextSetSource,
    TrainingSetSource,
    Utility,
    evaluate,
    evaluate_texts,
)
from tdd_priv.finetune import FinetuneSettings, FinetuneTraining
from tdd_priv.heads import HeadTraining, LabeledArrays
from tdd_priv.methods import DistillInput, distill
from tdd_priv.seeding import numpy_rng

__all__ = [
    "BASELINES",
    "CandidateSet",
    "baseline_set",
    "finetune_settings",
    "fixed_set",
    "judge",
    "judge_texts",
]

BASELINES = ("random", "herding", "kcenter")


@dataclass(frozen=True)
class CandidateSet:
    vectors: TrainingSetSource
    texts: TextSetSource | None
    varies_with_seed: bool


def fixed_set(vectors: LabeledArrays, texts: Sequence[str] | None = None) -> CandidateSet:
    """A set that is the same for every model seed."""
    labeled_texts = (
        LabeledTexts(texts, vectors.labels, vectors.targets) if texts is not None else None
    )
    return CandidateSet(
        vectors=lambda _: vectors,
        texts=(lambda _: labeled_texts) if labeled_texts is not None else None,
        varies_with_seed=False,
    )


def baseline_set(name: str, members: DistillInput, texts: Sequence[str]) -> CandidateSet:
    """k private records per class chosen by a coreset method; `random` redraws per model."""
    data = members.exact()
    all_vectors = LabeledArrays.from_labels(data.embeddings, data.labels, members.num_classes)

    def rows_for(model_seed: int) -> np.ndarray:
        if name == "random":
            rng = numpy_rng(model_seed, "random-baseline")
            return np.concatenate(
                [
                    rng.choice(members.class_rows(c), size=members.per_class, replace=False)
                    for c in range(members.num_classes)
                ]
            )
        rows = distill(name, members).private_rows
        assert rows is not None  # coresets always name their rows
        return rows

    fixed_rows = None if name == "random" else rows_for(members.seed)

    def pick(model_seed: int) -> np.ndarray:
        return rows_for(model_seed) if fixed_rows is None else fixed_rows

    return CandidateSet(
        vectors=lambda s: LabeledArrays(all_vectors.x[pick(s)], all_vectors.targets[pick(s)]),
        texts=lambda s: LabeledTexts(
            [texts[i] for i in pick(s)], data.labels[pick(s)], all_vectors.targets[pick(s)]
        ),
        varies_with_seed=fixed_rows is None,
    )


def finetune_settings(
    settings: EvalConfig, *, device: torch.device | None = None
) -> FinetuneSettings:
    """The `finetune` text model's settings from the evaluation config (`device`: CPU if None)."""
    training = FinetuneTraining()
    if settings.finetune_steps is not None:
        steps = settings.finetune_steps
        training = replace(training, min_steps=steps, max_steps=steps)
    return FinetuneSettings(
        model=settings.finetune_model,
        training=training,
        max_train_texts=settings.finetune_max_train,
        device=device if device is not None else torch.device("cpu"),
    )


def judge(
    candidate: CandidateSet,
    test: LabeledArrays,
    test_texts: LabeledTexts,
    *,
    settings: EvalConfig,
    seed: int,
    label: str,
    progress: bool,
    device: torch.device | str = "cpu",
) -> Utility:
    """Embedding heads (on `device`; and, for text sets, text models) trained on the set,
    scored on the test split by every metric of `tdd_priv.evaluate` (accuracy, macro-F1,
    balanced accuracy, recall per class)."""
    utility = evaluate(
        candidate.vectors,
        test,
        heads=settings.heads,
        seeds=settings.seeds,
        seed=seed,
        training=HeadTraining(steps=settings.steps),
        label=f"evaluate {label}",
        progress=progress,
        device=device,
    )
    return utility.with_text_models(
        judge_texts(
            candidate.texts,
            test_texts,
            varies_with_seed=candidate.varies_with_seed,
            settings=settings,
            seed=seed,
            num_classes=test.num_classes,
            device=device,
        )
    )


def judge_texts(
    texts: TextSetSource | None,
    test_texts: LabeledTexts,
    *,
    varies_with_seed: bool,
    settings: EvalConfig,
    seed: int,
    num_classes: int,
    device: torch.device | str = "cpu",
) -> tuple[HeadScores, ...]:
    """The text models of `judge` alone (none when the set has no texts or none are asked
    for): they read only the texts, so a caller can train them before any embeddings are
    read."""
    if texts is None or not settings.text_models:
        return ()
    return evaluate_texts(
        texts,
        test_texts,
        models=settings.text_models,
        seeds=settings.seeds,
        seed=seed,
        varies_with_seed=varies_with_seed,
        finetune=finetune_settings(settings, device=torch.device(device)),
        num_classes=num_classes,
    )
