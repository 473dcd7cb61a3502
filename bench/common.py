"""What the benchmarks share: the datasets as the pipeline prepares them, scoring, metadata."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any HF import: never touch the network

import numpy as np

from tdd_priv.config import RunConfig
from tdd_priv.evaluate import LabeledTexts, evaluate, evaluate_texts
from tdd_priv.heads import LabeledArrays
from tdd_priv.pipeline import encode_step, load_step, split_step

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"

# name -> run settings: SST-2 train -> dev, AG News train -> test, HateCheck (demo) train -> test,
# Davidson train -> test.
DATASETS: dict[str, dict[str, Any]] = {
    "sst2": {
        "data.spec": str(SHARED / "sst2/sst2.csv"),
        "data.split_column": "split",
        "data.test_split": "dev",
        "data.label_names": ["negative", "positive"],
    },
    "ag_news": {
        "data.spec": str(SHARED / "ag_news/ag_news.csv"),
        "data.split_column": "split",
        "data.label_names": ["World", "Sports", "Business", "Sci/Tech"],
    },
    "hatecheck": {"data.spec": "demo"},
    # Imbalanced (hate 6 %, offensive 77 %, neither 17 %): train -> test, dev unused.
    "davidson": {
        "data.spec": str(SHARED / "davidson_hate_offensive/davidson.csv"),
        "data.split_column": "split",
        "data.train_split": "train",
        "data.test_split": "test",
        "data.label_names": ["hate", "offensive", "neither"],
    },
}


@dataclass(frozen=True)
class Prepared:
    """A dataset split and embedded exactly as `tdd-priv run` would (seed 0)."""

    name: str
    classes: int
    members: LabeledArrays
    member_texts: list[str]
    test: LabeledArrays
    test_texts: LabeledTexts
    pool_texts: list[str]
    pool_x: np.ndarray


def prepare(name: str, cache_dir: Path | None = None) -> Prepared:
    overrides = {**DATASETS[name], "privacy.enabled": False, "progress": False}
    if cache_dir is not None:
        overrides["cache_dir"] = str(cache_dir)
    config = RunConfig().with_overrides(overrides)
    loaded = load_step(config)
    splits = split_step(loaded, config)
    encoded = encode_step(loaded, config).load()
    labels, texts = loaded.labels, loaded.texts
    classes = len(loaded.labeled.label_names)
    return Prepared(
        name=name,
        classes=classes,
        members=LabeledArrays.from_labels(
            encoded.rows[splits.members], labels[splits.members], classes
        ),
        member_texts=[texts[i] for i in splits.members],
        test=LabeledArrays.from_labels(encoded.rows[splits.test], labels[splits.test], classes),
        test_texts=LabeledTexts([texts[i] for i in splits.test], labels[splits.test]),
        pool_texts=[texts[i] for i in splits.public],
        pool_x=encoded.rows[splits.public],
    )


def accuracy(
    data: Prepared, train: LabeledArrays, *, heads: tuple[str, ...], seeds: int
) -> dict[str, float]:
    """Mean test accuracy per head (and over all) of fresh heads trained on `train`."""
    utility = evaluate(
        lambda _: train, data.test, heads=list(heads), seeds=seeds, seed=0, progress=False
    )
    summary = utility.to_json()
    return {
        "all": summary["accuracy_mean"],
        **{h: v["accuracy_mean"] for h, v in summary["by_head"].items()},
    }


def text_accuracy(data: Prepared, texts: list[str], labels: np.ndarray) -> float:
    (scores,) = evaluate_texts(
        lambda _: LabeledTexts(texts, labels),
        data.test_texts,
        models=["tfidf-lr"],
        seeds=1,
        seed=0,
        varies_with_seed=False,
    )
    return scores.mean


def metadata(settings: dict[str, Any]) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "commit": commit,
        "settings": settings,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": version("torch"),
            "load_average": os.getloadavg(),
        },
    }
