"""Toxicity scorers: texts → scores in [0, 1], one column per label the scorer knows.

Every scorer has the shape of `tdd_priv.extensions.ToxicityScorer` (`name`, `version`, `labels`,
`score(texts) -> (n, L)`); this module never imports the library. Build one by name:

    scorer = load_scorer("profanity")                         # offline, ships its model
    scorer = load_scorer("classifier", model="models/tox", make_embed=...)
    scorer = load_scorer("detoxify", model="original")        # downloads (needs network)
    scorer = load_scorer("detoxify", model="path/to/checkpoint.ckpt")  # local, offline

- `profanity`: alt-profanity-check, a linear SVM over word n-grams. It is a *lexical profanity*
  detector, not a toxicity model: hate without swear words passes it, and quoted or negated
  profanity trips it (see docs/benchmarks/toxicity.md).
- `classifier`: logistic regression over sentence embeddings, trained by tdd-priv itself
  (`tdd-priv detox train`), stored as safetensors weights plus JSON, never as a pickle. The
  caller supplies the encoder as a callable (`make_embed(encoder_spec) -> embed(texts)`), so this
  module stays independent of the library; the artifact records the encoder's weights hash and
  the caller must refuse a different encoder.
- `detoxify`: Detoxify models (Unitary), by name (weights from GitHub releases) or from a local
  checkpoint file (see audits.detoxify_checkpoint). Checkpoints are pickles: only files the user
  names are ever loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = [
    "CLASSIFIER_FORMAT",
    "SCORERS",
    "ClassifierScorer",
    "DetoxifyScorer",
    "EmbeddingClassifier",
    "ProfanityScorer",
    "Scorer",
    "check_scores",
    "fit_classifier",
    "load_classifier",
    "load_scorer",
    "save_classifier",
]

Embed = Callable[[Sequence[str]], np.ndarray]
"""texts → (n, d) float embeddings (the classifier expects the encoder it was trained with)."""
MakeEmbed = Callable[[Mapping[str, Any]], Embed]
"""An artifact's `encoder` record → the embed function for exactly that encoder."""

CLASSIFIER_FORMAT = "tdd-priv-toxicity-classifier/1"
_WEIGHTS_FILE = "classifier.safetensors"
_META_FILE = "classifier.json"


class Scorer(Protocol):
    """Texts → toxicity scores in [0, 1], one column per label (tdd_priv's ToxicityScorer)."""

    name: str
    version: str
    labels: tuple[str, ...]

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """(n, len(labels)) float64 scores in [0, 1]."""
        ...


def check_scores(scores: np.ndarray, n: int, labels: Sequence[str], scorer: str) -> np.ndarray:
    """`scores` as float64 (n, L), or ValueError if its shape or values are not scores."""
    array = np.asarray(scores, dtype=np.float64)
    if array.shape != (n, len(labels)):
        raise ValueError(
            f"toxicity scorer {scorer!r} returned shape {array.shape} for {n} texts; expected "
            f"({n}, {len(labels)}) (one column per label: {', '.join(labels)})"
        )
    if n and not (np.isfinite(array).all() and array.min() >= 0.0 and array.max() <= 1.0):
        raise ValueError(f"toxicity scorer {scorer!r} returned values outside [0, 1]")
    return array


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


# --- profanity (alt-profanity-check) --------------------------------------------------------------


@dataclass
class ProfanityScorer:
    """alt-profanity-check's probability that a text is profane (one label, `profanity`).

    A lexical model (TF-IDF word n-grams + linear SVM, calibrated): fast and offline, but it
    scores words, not meaning.
    """

    name: str = "profanity"
    labels: tuple[str, ...] = ("profanity",)
    version: str = field(
        default_factory=lambda: f"alt-profanity-check {_version('alt-profanity-check')}"
    )

    def score(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 1))
        from profanity_check import predict_prob  # loads its model on import (~2 s)

        return check_scores(
            np.asarray(predict_prob(texts)).reshape(-1, 1), len(texts), self.labels, self.name
        )


# --- classifier over sentence embeddings ---------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingClassifier:
    """Independent logistic regressions, one per label, over L2-normalised sentence embeddings.

    `weights` (d, L) float32, `bias` (L,) float32: score = sigmoid(x @ weights + bias).
    `encoder` names the encoder the embeddings came from (model, max_length, pooling,
    model_sha256); `training` records data, sizes and held-out metrics.
    """

    labels: tuple[str, ...]
    weights: np.ndarray
    bias: np.ndarray
    encoder: Mapping[str, Any]
    training: Mapping[str, Any] = field(default_factory=dict)

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, d) embeddings → (n, L) float64 probabilities."""
        logits = np.asarray(embeddings, dtype=np.float64) @ self.weights.astype(np.float64)
        return 1.0 / (1.0 + np.exp(-(logits + self.bias.astype(np.float64))))


def fit_classifier(
    embeddings: np.ndarray,
    targets: np.ndarray,
    labels: Sequence[str],
    *,
    encoder: Mapping[str, Any],
    regularization: float = 1.0,
    training: Mapping[str, Any] | None = None,
) -> EmbeddingClassifier:
    """Fit one class-balanced logistic regression per label.

    embeddings: (n, d) floats; targets: (n, L) in {0, 1} (or (n,) for one label). Class-balanced
    weights make 0.5 the decision point whatever the training set's base rate (Davidson's tweets
    are 83 % toxic), so scores are not probabilities under that base rate.
    `regularization` is scikit-learn's C (inverse strength). Deterministic (lbfgs).
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(targets)
    y = y.reshape(-1, 1) if y.ndim == 1 else y
    if y.shape != (len(x), len(labels)):
        raise ValueError(f"targets have shape {y.shape}; expected ({len(x)}, {len(labels)})")
    weights = np.empty((x.shape[1], len(labels)), dtype=np.float32)
    bias = np.empty(len(labels), dtype=np.float32)
    for j, label in enumerate(labels):
        values = set(np.unique(y[:, j]).tolist())
        if values != {0, 1}:
            raise ValueError(
                f"label {label!r}: targets must hold both 0 and 1, found {sorted(values)}"
            )
        model = LogisticRegression(C=regularization, class_weight="balanced", max_iter=2000)
        model.fit(x, y[:, j].astype(np.int64))
        weights[:, j] = model.coef_[0]
        bias[j] = model.intercept_[0]
    return EmbeddingClassifier(tuple(labels), weights, bias, dict(encoder), dict(training or {}))


def save_classifier(model: EmbeddingClassifier, folder: Path) -> Path:
    """Write `folder/classifier.safetensors` (weights, bias) and `folder/classifier.json`
    (format, labels, encoder, training, the weights file's SHA-256). Returns the folder."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights_path = folder / _WEIGHTS_FILE
    save_file(
        {
            "weights": np.ascontiguousarray(model.weights, dtype=np.float32),
            "bias": np.ascontiguousarray(model.bias, dtype=np.float32),
        },
        str(weights_path),
    )
    meta = {
        "format": CLASSIFIER_FORMAT,
        "labels": list(model.labels),
        "encoder": dict(model.encoder),
        "training": dict(model.training),
        "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
    }
    (folder / _META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return folder


def load_classifier(folder: Path) -> tuple[EmbeddingClassifier, str]:
    """Read a folder written by `save_classifier` → (model, weights SHA-256).

    Raises ValueError naming the folder if a file is missing, of another format, or altered."""
    from safetensors.numpy import load_file

    folder = Path(folder)
    meta_path, weights_path = folder / _META_FILE, folder / _WEIGHTS_FILE
    if not meta_path.is_file() or not weights_path.is_file():
        raise ValueError(
            f"{folder} is not a toxicity classifier: it needs {_META_FILE} and {_WEIGHTS_FILE} "
            "(train one with `tdd-priv detox train --data FILE --out FOLDER`)"
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != CLASSIFIER_FORMAT:
        raise ValueError(
            f"{meta_path}: format {meta.get('format')!r}, expected {CLASSIFIER_FORMAT}"
        )
    digest = hashlib.sha256(weights_path.read_bytes()).hexdigest()
    if digest != meta.get("weights_sha256"):
        raise ValueError(
            f"{weights_path} does not match the SHA-256 recorded in {meta_path}; the artifact was "
            "altered or is incomplete: retrain it"
        )
    tensors = load_file(str(weights_path))
    labels = tuple(meta["labels"])
    weights, bias = tensors["weights"], tensors["bias"]
    if weights.ndim != 2 or weights.shape[1] != len(labels) or bias.shape != (len(labels),):
        raise ValueError(f"{weights_path}: weights {weights.shape} do not fit labels {labels}")
    model = EmbeddingClassifier(labels, weights, bias, meta["encoder"], meta.get("training", {}))
    return model, digest


class ClassifierScorer:
    """Scores texts with an `EmbeddingClassifier` through the caller's `embed` function."""

    name = "classifier"

    def __init__(self, model: EmbeddingClassifier, embed: Embed, *, digest: str = "") -> None:
        self.model = model
        self.labels = model.labels
        self._embed = embed
        encoder = model.encoder.get("model", "?")
        self.version = f"tdd-priv embedding classifier {digest[:12] or 'in memory'} ({encoder})"

    def score(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.labels)))
        embeddings = np.asarray(self._embed(texts))
        width = self.model.weights.shape[0]
        if embeddings.shape != (len(texts), width):
            raise ValueError(
                f"the embed function returned {embeddings.shape} for {len(texts)} texts; the "
                f"classifier expects ({len(texts)}, {width}) from {self.model.encoder}"
            )
        return check_scores(self.model.predict(embeddings), len(texts), self.labels, self.name)


# --- detoxify ----------------------------------------------------------------------------------


class DetoxifyScorer:
    """A Detoxify model (a transformers sequence classifier with one sigmoid per label).

    Scores are Detoxify's own: sigmoid of the logits, labels named as Detoxify names them
    (`toxicity`, `severe_toxicity`, `obscene`, `threat`, `insult`, `identity_attack`, ...).
    Texts are scored in batches of `batch_size`, truncated to the tokenizer's maximum length.
    """

    name = "detoxify"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        labels: Sequence[str],
        *,
        source: str,
        batch_size: int = 32,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.labels = tuple(labels)
        self.batch_size = batch_size
        self.version = f"detoxify {_version('detoxify')} ({source})"

    def score(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = list(texts)
        out = np.zeros((len(texts), len(self.labels)))
        # Batches of similar length waste little compute on padding; rows return in input order.
        order = np.argsort([-len(text) for text in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                rows = order[start : start + self.batch_size]
                inputs = self.tokenizer(
                    [texts[i] for i in rows], return_tensors="pt", truncation=True, padding=True
                )
                logits = self.model(**inputs)[0]
                out[rows] = torch.sigmoid(logits).double().numpy()
        return check_scores(out, len(texts), self.labels, self.name)


DETOXIFY_MODELS = ("original", "unbiased", "multilingual", "original-small", "unbiased-small")


def _detoxify(model: str | None, make_embed: MakeEmbed | None) -> Scorer:
    from audits.detoxify_checkpoint import load_detoxify_checkpoint, load_detoxify_named

    name = model or "original"
    if Path(name).expanduser().exists():
        loaded = load_detoxify_checkpoint(Path(name).expanduser())
    elif name in DETOXIFY_MODELS:
        loaded = load_detoxify_named(name)
    else:
        raise ValueError(
            f"detoxify model {name!r} is neither an existing checkpoint path nor a Detoxify model "
            f"name ({', '.join(DETOXIFY_MODELS)}); see docs/toxicity.md for local checkpoints"
        )
    return DetoxifyScorer(loaded.model, loaded.tokenizer, loaded.labels, source=loaded.source)


def _profanity(model: str | None, make_embed: MakeEmbed | None) -> Scorer:
    if model is not None:
        raise ValueError("the profanity scorer ships its own model; give no model path for it")
    return ProfanityScorer()


def _classifier(model: str | None, make_embed: MakeEmbed | None) -> Scorer:
    if model is None:
        raise ValueError(
            "the classifier scorer needs a model folder (--detox-model FOLDER); train one with "
            "`tdd-priv detox train --data FILE --out FOLDER`"
        )
    if make_embed is None:
        raise ValueError("the classifier scorer needs an encoder: pass make_embed")
    classifier, digest = load_classifier(Path(model).expanduser())
    return ClassifierScorer(classifier, make_embed(classifier.encoder), digest=digest)


SCORERS: dict[str, Callable[[str | None, MakeEmbed | None], Scorer]] = {
    "detoxify": _detoxify,
    "profanity": _profanity,
    "classifier": _classifier,
}


def load_scorer(
    name: str, *, model: str | None = None, make_embed: MakeEmbed | None = None
) -> Scorer:
    """The scorer registered as `name`; `model` is its model name or path where it needs one.

    Raises ValueError listing the valid names for an unknown one.
    """
    if name not in SCORERS:
        raise ValueError(f"unknown toxicity scorer {name!r}; valid: {', '.join(SCORERS)}")
    return SCORERS[name](model, make_embed)
