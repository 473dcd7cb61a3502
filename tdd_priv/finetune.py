"""Fine-tuning a pretrained transformer end to end on a text set: the field's evaluation protocol.

Text-distillation papers (DiLM and the survey this project follows) judge a distilled set the
way a user of the released texts would: a BERT-style `AutoModelForSequenceClassification`,
initialised from a pretrained checkpoint, fine-tuned on the set (with its soft labels, when it
has them) and tested on the real test split. This module does that, offline, on a given
`torch.device`, with hyperparameters fixed in advance (`FinetuneTraining`; docs/distillation.md
says how they were chosen).

Determinism: one model seed fixes the classifier's initialisation and the batch order, each
from its own `torch.Generator`. Dropout is switched off (every `*dropout*` setting of the model
config is set to 0): torch and Hugging Face draw dropout masks from the global RNG, which a seed
must not depend on, and a few hundred steps from a pretrained start need no more regularisation
than weight decay and the short schedule give. Loading never touches the global RNG state.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tdd_priv.encode import _BUNDLED_NAMES, DEFAULT_ENCODER, _resolve_model_dir
from tdd_priv.errors import ConfigError
from tdd_priv.seeding import numpy_rng, torch_generator

__all__ = [
    "DEFAULT_FINETUNE",
    "DEFAULT_FINETUNE_TRAINING",
    "FineTuned",
    "FinetuneSettings",
    "FinetuneTraining",
    "Tokenized",
    "fine_tune",
    "finetune_model_problem",
    "finetune_predict",
    "load_classifier",
    "soft_cross_entropy",
    "subsample_rows",
    "tokenize",
]


@dataclass(frozen=True)
class FinetuneTraining:
    """Fine-tuning hyperparameters, fixed in advance for sets of 2–2,000 texts.

    Steps: `epochs` passes over the set of `batch_size` texts each, but at least `min_steps` and
    at most `max_steps` optimiser steps (so 20 texts still get 60 updates, and a capped
    full-data set of 2,000 texts stops after 300, about 2.4 epochs). AdamW at peak
    `learning_rate`, linear warmup over the first `warmup_fraction` of the steps, then linear
    decay to 0; `weight_decay` on every weight matrix but not on biases or LayerNorm. The word
    embedding matrix stays frozen (`freeze_word_embeddings`): a small set touches a handful of
    its 30k rows, and weight decay would shrink the rows of every word it never saw, moving the
    test texts' inputs for nothing. `max_length` in tokens (longer texts are truncated), for
    training and test alike; `eval_batch_size` texts per forward pass at test time.
    """

    epochs: int = 10
    min_steps: int = 60
    max_steps: int = 300
    batch_size: int = 16
    learning_rate: float = 1e-4
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128
    eval_batch_size: int = 64
    freeze_word_embeddings: bool = True

    def __post_init__(self) -> None:
        problems = [
            f"{name}={getattr(self, name)} must be ≥ 1"
            for name in ("epochs", "min_steps", "max_steps", "batch_size", "eval_batch_size")
            if getattr(self, name) < 1
        ]
        if self.min_steps > self.max_steps:
            problems.append(f"min_steps={self.min_steps} exceeds max_steps={self.max_steps}")
        if not 0 < self.learning_rate < math.inf:
            problems.append(f"learning_rate={self.learning_rate} must be finite and > 0")
        if not 0 <= self.warmup_fraction < 1:
            problems.append(f"warmup_fraction={self.warmup_fraction} must lie in [0, 1)")
        if not 0 <= self.weight_decay < math.inf:
            problems.append(f"weight_decay={self.weight_decay} must be finite and ≥ 0")
        if self.max_length < 2:
            problems.append(f"max_length={self.max_length} tokens must be ≥ 2")
        if problems:
            raise ConfigError("fine-tuning settings: " + "; ".join(problems))

    def steps_for(self, n: int) -> int:
        """Optimiser steps on a set of n texts."""
        per_epoch = math.ceil(n / self.batch_size)
        return min(self.max_steps, max(self.min_steps, self.epochs * per_epoch))


DEFAULT_FINETUNE_TRAINING = FinetuneTraining()


@dataclass(frozen=True)
class FinetuneSettings:
    """What a fine-tune starts from and where it runs.

    `model`: the bundled MiniLM name (the default, found as the encoder finds it) or a local
    folder holding a Hugging Face encoder saved by `save_pretrained()` (a hub name needs network
    or a warm HF cache). `max_train_texts`: a larger training set is replaced by a seeded
    subsample of that many texts (the evaluation says so; see `subsample_rows`). `device`: where
    the model runs; this module never sets a thread count, so the caller's holds.
    """

    model: str = DEFAULT_ENCODER
    training: FinetuneTraining = DEFAULT_FINETUNE_TRAINING
    max_train_texts: int = 2000
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ConfigError(f"fine-tuning model is empty; use {DEFAULT_ENCODER!r} or a folder")
        if self.max_train_texts < 2:
            raise ConfigError(f"max_train_texts={self.max_train_texts}; use a whole number ≥ 2")


DEFAULT_FINETUNE = FinetuneSettings()


@dataclass(frozen=True)
class Tokenized:
    """Token ids of a text sequence, unpadded; `lengths` (n,) int64 in tokens."""

    ids: list[list[int]]
    type_ids: list[list[int]] | None
    pad_id: int

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(row) for row in self.ids), np.int64, len(self.ids))

    def batch(self, rows: Sequence[int], device: torch.device) -> dict[str, torch.Tensor]:
        """The selected rows right-padded to their longest → int64 (b, width) model inputs."""
        width = max((len(self.ids[row]) for row in rows), default=1)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        types = np.zeros((len(rows), width), dtype=np.int64)
        for slot, row in enumerate(rows):
            length = len(self.ids[row])
            ids[slot, :length] = self.ids[row]
            mask[slot, :length] = 1
            if self.type_ids is not None:
                types[slot, :length] = self.type_ids[row]
        batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if self.type_ids is not None:
            batch["token_type_ids"] = torch.from_numpy(types)
        return {key: value.to(device) for key, value in batch.items()}


@dataclass
class FineTuned:
    """A fine-tuned classifier with its tokenizer; `steps` optimiser steps were taken."""

    model: nn.Module
    tokenizer: Any
    training: FinetuneTraining
    device: torch.device
    classes: int
    steps: int

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits (n, C) float32 for `texts`, in input order.

        Batches of length-sorted texts, each padded to its own longest, so little compute goes
        to padding.
        """
        tokens = tokenize(self.tokenizer, texts, self.training)
        order = np.argsort(-tokens.lengths, kind="stable")
        out = np.empty((len(order), self.classes), dtype=np.float32)
        size = self.training.eval_batch_size
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(order), size):
                rows = order[start : start + size]
                logits = self.model(**tokens.batch(rows.tolist(), self.device)).logits
                out[rows] = logits.float().cpu().numpy()
        return out

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted labels (n,) int64 for `texts`, in input order."""
        return self.logits(texts).argmax(axis=1).astype(np.int64)


def tokenize(tokenizer: Any, texts: Sequence[str], training: FinetuneTraining) -> Tokenized:
    """Token ids of each text, truncated to `training.max_length`.

    One text at a time: a fast tokenizer's batch call fans out over a thread pool of all cores,
    and the caller decides how many threads this process uses.
    """
    ids: list[list[int]] = []
    type_ids: list[list[int]] | None = []
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] is {type(text).__name__}, expected str")
        encoded = tokenizer(text, truncation=True, max_length=training.max_length)
        ids.append(list(encoded["input_ids"]))
        if type_ids is not None and "token_type_ids" in encoded:
            type_ids.append(list(encoded["token_type_ids"]))
        else:
            type_ids = None
    return Tokenized(ids, type_ids if texts else None, int(tokenizer.pad_token_id or 0))


def load_classifier(
    model: str, num_labels: int, *, generator: torch.Generator, device: torch.device
) -> tuple[nn.Module, Any]:
    """(sequence classifier with `num_labels` outputs and no dropout, its tokenizer).

    Weights the checkpoint lacks (the classification head; the pooler of a checkpoint saved
    without one) are drawn from `generator`: N(0, initializer_range) for matrices, zero biases,
    unit LayerNorm scales. The global RNG state is left as it was.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder: Path = _resolve_model_dir(model)
    # Quiet: the load report lists the new head (documented here), and a progress bar per
    # model would flood the run's output; both settings are restored.
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        config = AutoConfig.from_pretrained(folder, num_labels=num_labels)
        for name, value in config.to_dict().items():
            if "dropout" in name and isinstance(value, float):
                setattr(config, name, 0.0)
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            classifier, info = AutoModelForSequenceClassification.from_pretrained(
                folder, config=config, output_loading_info=True
            )
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(
            f"fine-tuning model {model!r}: cannot load a sequence classifier and tokenizer from "
            f"{folder} ({error}); give a folder saved by save_pretrained()"
        ) from error
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    active = [m for m in classifier.modules() if isinstance(m, nn.Dropout) and m.p > 0]
    if active:
        raise ConfigError(
            f"fine-tuning model {model!r} keeps {len(active)} dropout layer(s) its config does "
            "not switch off; dropout would draw from the global RNG"
        )
    _initialise(classifier, sorted(info["missing_keys"]), generator)
    return classifier.to(device), tokenizer


def _initialise(model: nn.Module, names: Sequence[str], generator: torch.Generator) -> None:
    std = float(getattr(getattr(model, "config", None), "initializer_range", 0.02))
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name in names:
            parameter = parameters[name]
            if name.endswith("bias"):
                parameter.zero_()
            elif parameter.ndim == 1:  # a normalisation scale
                parameter.fill_(1.0)
            else:
                parameter.normal_(0.0, std, generator=generator)


def finetune_model_problem(model: str) -> str | None:
    """What is wrong with a fine-tuning checkpoint reference, found without loading it: a
    path-like name whose folder does not exist (None: the bundled name, a folder, a hub name)."""
    if model in _BUNDLED_NAMES:
        return None
    local = Path(model).expanduser()
    if local.is_dir():
        return None
    path_like = local.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1
    if path_like or local.exists():
        return (
            f"{model!r} is not a folder (looked at {local.resolve()}); give a folder saved by "
            f"save_pretrained() or the bundled {DEFAULT_ENCODER!r}"
        )
    return None


def subsample_rows(n: int, cap: int, *, seed: int) -> np.ndarray | None:
    """Sorted row indices of a seeded uniform subsample of `cap` of n rows; None if n ≤ cap."""
    if n <= cap:
        return None
    return np.sort(numpy_rng(seed, "finetune", "subsample").choice(n, size=cap, replace=False))


def _parameter_groups(model: nn.Module, training: FinetuneTraining) -> list[dict[str, Any]]:
    """AdamW groups: decay on weight matrices; none on biases and normalisation scales."""
    frozen = _word_embeddings(model) if training.freeze_word_embeddings else None
    if frozen is not None:
        frozen.requires_grad_(False)
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": training.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _word_embeddings(model: nn.Module) -> nn.Parameter | None:
    get = getattr(model, "get_input_embeddings", None)
    embeddings = get() if callable(get) else None
    weight = getattr(embeddings, "weight", None)
    return weight if isinstance(weight, nn.Parameter) else None


def _batches(n: int, training: FinetuneTraining, generator: torch.Generator) -> Iterator[list[int]]:
    """Endless minibatches of row indices: a fresh seeded permutation per epoch."""
    size = min(training.batch_size, n)
    while True:
        order = torch.randperm(n, generator=generator).tolist()
        for start in range(0, n - size + 1, size):  # drop a ragged tail: equal-size steps
            yield order[start : start + size]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of −Σ_c targets·log softmax(logits): (b, C), (b, C) → scalar.

    Equals the usual cross-entropy when `targets` are one-hot rows.
    """
    return -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def _warmup_then_decay(steps: int, warmup: int) -> Callable[[int], float]:
    """Learning-rate factor of step 0..steps-1: linear up to 1 over `warmup` steps, then
    linear down towards 0 at the last step."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return (steps - step) / (steps - warmup)

    return factor


def fine_tune(
    texts: Sequence[str],
    targets: np.ndarray,
    *,
    seed: int,
    settings: FinetuneSettings = DEFAULT_FINETUNE,
) -> FineTuned:
    """Fine-tune a fresh classifier on `texts` with `targets` (n, C) float32 (one-hot rows or
    soft labels; each row sums to 1) for `settings.training.steps_for(n)` steps."""
    targets = np.asarray(targets, dtype=np.float32)
    if targets.ndim != 2 or len(targets) != len(texts) or len(texts) == 0:
        raise ValueError(
            f"expected n ≥ 1 texts and targets (n, C), got {len(texts)} texts and "
            f"targets {targets.shape}"
        )
    training, device = settings.training, settings.device
    model, tokenizer = load_classifier(
        settings.model,
        targets.shape[1],
        generator=torch_generator(seed, "finetune", "init"),
        device=device,
    )
    tokens = tokenize(tokenizer, texts, training)
    target_tensor = torch.from_numpy(targets).to(device)
    steps = training.steps_for(len(texts))
    warmup = int(training.warmup_fraction * steps)
    optimizer = torch.optim.AdamW(
        _parameter_groups(model, training), lr=training.learning_rate, foreach=False
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_then_decay(steps, warmup))
    batches = _batches(len(texts), training, torch_generator(seed, "finetune", "batches"))
    model.train()
    for _ in range(steps):
        rows = next(batches)
        loss = soft_cross_entropy(model(**tokens.batch(rows, device)).logits, target_tensor[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    return FineTuned(model, tokenizer, training, device, targets.shape[1], steps)


def finetune_predict(
    texts: Sequence[str],
    targets: np.ndarray,
    test_texts: Sequence[str],
    *,
    seed: int,
    settings: FinetuneSettings = DEFAULT_FINETUNE,
) -> np.ndarray:
    """Fine-tune on (texts, targets (n, C)) and predict `test_texts` → labels (n_test,) int64."""
    return fine_tune(texts, targets, seed=seed, settings=settings).predict(test_texts)
