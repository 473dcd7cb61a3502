"""Detoxify checkpoints: load one offline from local files, and write one in Detoxify's format.

A Detoxify checkpoint (`*.ckpt`, written with `torch.save`) is a mapping

    {"config": {"arch": {"args": {"model_type": "bert-base-uncased",
                                  "model_name": "BertForSequenceClassification",
                                  "tokenizer_name": "BertTokenizer", "num_classes": 6}},
                "dataset": {"args": {"classes": ["toxic", "severe_toxic", ...]}}},
     "state_dict": {parameter name: tensor}}

Detoxify's loader always calls `from_pretrained(model_type)`, and `model_type` is a hub name, so
even a local checkpoint needs the hub. `load_detoxify_checkpoint` rewrites `model_type` to the
local folder beside the checkpoint, which must hold that model's `config.json` and tokenizer
files, and then builds the model with Detoxify's own `get_model_and_tokenizer`.

Checkpoints are pickles. Only the file the user names is read: first with
`torch.load(weights_only=True)` (tensors and plain containers only, no code runs); only if that
refuses the file is it unpickled in full, which can run code stored in it: name only files you
trust.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CHECKPOINT_FILE",
    "LoadedDetoxify",
    "load_detoxify_checkpoint",
    "load_detoxify_named",
    "save_detoxify_checkpoint",
    "train_detoxify_head",
]

CHECKPOINT_FILE = "model.ckpt"

# Detoxify's own renaming of its training classes (detoxify.detoxify.load_checkpoint).
_CLASS_NAMES = {
    "toxic": "toxicity",
    "identity_hate": "identity_attack",
    "severe_toxic": "severe_toxicity",
}


@dataclass(frozen=True)
class LoadedDetoxify:
    model: Any  # a transformers *ForSequenceClassification in eval mode
    tokenizer: Any
    labels: tuple[str, ...]
    source: str  # what was loaded, for the scorer's version string
    unpickled: bool = False  # True if the file needed a full (code-running) unpickle


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No load reports or progress bars from transformers while loading weights."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _read_checkpoint(path: Path) -> tuple[dict[str, Any], bool]:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True), False
    except pickle.UnpicklingError:
        # The user named this file; Detoxify itself always loads with weights_only=False.
        return torch.load(path, map_location="cpu", weights_only=False), True


def _checkpoint_file(path: Path) -> Path:
    if path.is_file():
        return path
    found = sorted(path.glob("*.ckpt")) if path.is_dir() else []
    if len(found) != 1:
        raise ValueError(
            f"{path}: expected a Detoxify checkpoint file or a folder with exactly one *.ckpt, "
            f"found {len(found)}"
        )
    return found[0]


def load_detoxify_checkpoint(path: Path, *, config_folder: Path | None = None) -> LoadedDetoxify:
    """Load a Detoxify checkpoint without the network.

    `path`: the `.ckpt` file, or a folder holding exactly one. `config_folder` (default: the
    checkpoint's folder) holds `config.json` and the tokenizer files of the checkpoint's
    base model; it replaces the checkpoint's hub `model_type`.
    """
    from detoxify.detoxify import get_model_and_tokenizer

    file = _checkpoint_file(Path(path))
    folder = Path(config_folder) if config_folder is not None else file.parent
    if not (folder / "config.json").is_file():
        raise ValueError(
            f"{folder} has no config.json: put the base model's config.json and tokenizer files "
            f"(for Detoxify's 'original': bert-base-uncased's) beside {file.name}, or pass "
            "config_folder; see docs/toxicity.md"
        )
    loaded, unpickled = _read_checkpoint(file)
    try:
        args = dict(loaded["config"]["arch"]["args"])
        classes = list(loaded["config"]["dataset"]["args"]["classes"])
        state_dict = loaded["state_dict"]
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"{file} is not a Detoxify checkpoint: it needs config.arch.args, "
            f"config.dataset.args.classes and state_dict ({error!r} missing)"
        ) from error
    hub_name = args.get("model_type")
    args["model_type"] = str(folder)  # the rewrite: from_pretrained reads the local folder
    try:
        with _quiet_transformers():
            model, tokenizer = get_model_and_tokenizer(**args, state_dict=state_dict)
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(
            f"cannot build Detoxify's {args.get('model_name')} from {file} with the config and "
            f"tokenizer in {folder} (the checkpoint was trained from {hub_name!r}): {error}"
        ) from error
    labels = tuple(_CLASS_NAMES.get(name, name) for name in classes)
    return LoadedDetoxify(
        model.eval(), tokenizer, labels, source=f"checkpoint {file.name}", unpickled=unpickled
    )


def load_detoxify_named(name: str) -> LoadedDetoxify:
    """Detoxify's released model `name` (weights from GitHub, config from the HF hub)."""
    from detoxify import Detoxify

    try:
        detoxify = Detoxify(model_type=name)
    except (OSError, ValueError, RuntimeError) as error:  # URLError is an OSError
        raise ValueError(
            f"cannot load Detoxify's {name!r} model ({type(error).__name__}: {error}); its "
            "weights come from GitHub releases and its config from the Hugging Face hub. "
            "Offline, download the checkpoint elsewhere and pass its local path "
            "(see docs/toxicity.md), or use --detox-scorer profanity|classifier"
        ) from error
    return LoadedDetoxify(
        detoxify.model.eval(), detoxify.tokenizer, tuple(detoxify.class_names), source=name
    )


def save_detoxify_checkpoint(
    model: Any, tokenizer: Any, classes: Sequence[str], folder: Path, *, model_type: str
) -> Path:
    """Write `folder/model.ckpt` in Detoxify's format, plus the config and tokenizer files.

    `classes` are the training class names Detoxify expects (e.g. "toxic", "identity_hate");
    `model_type` is recorded as the base model's hub name, as Detoxify's releases record it.
    Returns the checkpoint file.
    """
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    checkpoint = {
        "config": {
            "arch": {
                "args": {
                    "model_type": model_type,
                    "model_name": type(model).__name__,
                    "tokenizer_name": type(tokenizer).__name__,
                    "num_classes": len(classes),
                }
            },
            "dataset": {"args": {"classes": list(classes)}},
        },
        "state_dict": copy.deepcopy(model.state_dict()),
    }
    path = folder / CHECKPOINT_FILE
    torch.save(checkpoint, path)
    return path


def train_detoxify_head(
    base_model: Path,
    texts: Sequence[str],
    targets: np.ndarray,
    *,
    steps: int = 300,
    seed: int = 0,
    batch_size: int = 64,
    num_hidden_layers: int | None = None,
) -> tuple[Any, Any]:
    """A BERT-like sequence classifier from the local folder `base_model` whose classification
    head alone is trained (frozen encoder and pooler; full-batch Adam on the pooled outputs).

    texts: n strings; targets: (n, L) in {0, 1}. `num_hidden_layers` keeps only the first layers
    of the base model (a smaller, faster model). Returns (model, tokenizer). Meant for building
    small Detoxify-format checkpoints offline (tests, benchmarks), not for a production model.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    y = torch.as_tensor(np.asarray(targets, dtype=np.float32))
    y = y.reshape(-1, 1) if y.ndim == 1 else y
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    layers = {} if num_hidden_layers is None else {"num_hidden_layers": num_hidden_layers}
    with _quiet_transformers():  # the "head newly initialised" load report is expected here
        model = AutoModelForSequenceClassification.from_pretrained(
            base_model, num_labels=y.shape[1], problem_type="multi_label_classification", **layers
        )
    model.eval()
    base = getattr(model, model.base_model_prefix)
    features = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                return_tensors="pt",
                truncation=True,
                padding=True,
            )
            features.append(base(**batch).pooler_output)
    pooled = torch.cat(features)
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(pooled.shape[1], y.shape[1])
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.02)
        head.bias.zero_()
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    positive = y.mean(dim=0).clamp(1e-3, 1 - 1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=(1 - positive) / positive)  # balanced
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(head(pooled), y).backward()
        optimizer.step()
    with torch.no_grad():
        model.classifier.weight.copy_(head.weight)
        model.classifier.bias.copy_(head.bias)
    return model.eval(), tokenizer
