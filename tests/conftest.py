"""Shared test settings: offline hubs, one embedding cache per session, real-data paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Set before any test module imports datasets/transformers: they read these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
# $TDD_PRIV_TEST_DATASETS: the datasets folder, for a checkout (a git worktree) that lies elsewhere
SHARED_DATASETS = Path(
    os.environ.get("TDD_PRIV_TEST_DATASETS") or REPO_ROOT.parent / "shared" / "datasets"
)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture(scope="session", autouse=True)
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One embedding cache for the whole session, so each text set is encoded once, and
    nothing a test runs writes into the user's home cache."""
    cache = tmp_path_factory.mktemp("embedding-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TDD_PRIV_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="session", autouse=True)
def user_config_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary $XDG_CONFIG_HOME, so that runs which sign with the per-user default key
    create it there, never in the user's home; $TDD_PRIV_SIGNING_KEY is ignored in tests."""
    home = tmp_path_factory.mktemp("config-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(home))
        patch.delenv("TDD_PRIV_SIGNING_KEY", raising=False)
        yield home


@pytest.fixture(scope="session", autouse=True)
def user_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary tdd-priv state folder (the per-user secret, the privacy budget ledgers), so
    that no test reads or spends the user's own budget."""
    state = tmp_path_factory.mktemp("state-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TDD_PRIV_STATE", str(state))
        yield state


@pytest.fixture(scope="session")
def tiny_ag_news(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real but small AG News CSV: 60 train and 40 test rows per class, split column kept."""
    import pandas as pd

    frame = pd.read_csv(shared_datasets / "ag_news" / "ag_news.csv")
    parts = [
        frame[(frame.split == split) & (frame.label == label)].head(n)
        for split, n in (("train", 60), ("test", 40))
        for label in range(4)
    ]
    path = tmp_path_factory.mktemp("data") / "ag_news_tiny.csv"
    pd.concat(parts)[["text", "label", "split"]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def ag_news_pool(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An external public pool for DP runs on `tiny_ag_news`: 100 AG News train texts per
    class that are not in the tiny labeled file, with no label column."""
    import pandas as pd

    frame = pd.read_csv(shared_datasets / "ag_news" / "ag_news.csv")
    train = frame[frame.split == "train"]
    parts = [train[train.label == label].iloc[1000:1100] for label in range(4)]
    path = tmp_path_factory.mktemp("pool") / "ag_news_pool.csv"
    pd.concat(parts)[["text"]].to_csv(path, index=False)
    return path
