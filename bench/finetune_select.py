"""How the fine-tuning defaults were chosen: a small grid scored on held-out TRAIN rows only.

    python bench/finetune_select.py [--datasets ag_news,sst2] [--k 10,50] [--seeds 2]
                                    [--variants learning_rate=3e-5 learning_rate=1e-4 ...]

For each dataset the members (the train split exactly as `tdd-priv run` cuts it, seed 0) give
both the training sets (k random texts per class, a stand-in for a distilled set) and a dev set
of 300 other members. The test split is never read, so the chosen defaults are not fitted to
any number this project reports. A variant is `KEY=VALUE[,KEY=VALUE]` over `FinetuneTraining`
fields, applied on top of the defaults. Results go to docs/benchmarks/finetune_selection.json
(a rerun skips finished cells) and finetune_selection.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from common import DATASETS, REPO, metadata

from tdd_priv.config import RunConfig
from tdd_priv.finetune import FinetuneSettings, FinetuneTraining, fine_tune
from tdd_priv.pipeline import load_step, split_step
from tdd_priv.seeding import numpy_rng
from tdd_priv.yamlio import load_yaml

OUT = REPO / "docs" / "benchmarks"
DEV_ROWS = 300


def member_texts(name: str) -> tuple[list[str], np.ndarray, int]:
    """The members' texts and labels of a benchmark dataset (no test row is touched)."""
    config = RunConfig().with_overrides(
        {**DATASETS[name], "privacy.enabled": False, "progress": False}
    )
    loaded = load_step(config)
    splits = split_step(loaded, config)
    texts = loaded.texts  # a property that reads the column: once, not per row
    members = [texts[i] for i in splits.members]
    return members, loaded.labels[splits.members], len(loaded.labeled.label_names)


def parse_variant(text: str) -> dict[str, Any]:
    pairs = (item.partition("=") for item in text.split(",") if item)
    return {key: load_yaml(value, where=f"variant {text}") for key, _, value in pairs}


def run_cell(
    texts: list[str], labels: np.ndarray, classes: int, k: int, seed: int, variant: str
) -> dict[str, Any]:
    rng = numpy_rng(seed, "finetune-select", k)
    train = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), k, replace=False) for c in range(classes)]
    )
    others = np.setdiff1d(np.arange(len(texts)), train)
    dev = numpy_rng(0, "finetune-select", "dev").choice(others, DEV_ROWS, replace=False)
    training = dataclasses.replace(FinetuneTraining(), **parse_variant(variant))
    started, cpu = time.perf_counter(), time.process_time()
    tuned = fine_tune(
        [texts[i] for i in train],
        np.eye(classes, dtype=np.float32)[labels[train]],
        seed=seed,
        settings=FinetuneSettings(training=training),
    )
    predicted = tuned.predict([texts[i] for i in dev])
    return {
        "dev_accuracy": float(np.mean(predicted == labels[dev])),
        "steps": tuned.steps,
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
    }


def write_outputs(results: dict[str, Any]) -> None:
    (OUT / "finetune_selection.json").write_text(json.dumps(results, indent=2) + "\n")
    meta = results["meta"]
    lines = [
        "# Fine-tuning hyperparameter selection (dev rows of the train split)",
        "",
        f"Commit `{meta['commit']}`; machine: {meta['machine']['cpus']} CPUs (shared), one "
        f"torch thread. Defaults: `{json.dumps(dataclasses.asdict(FinetuneTraining()))}`. "
        f"Each cell: dev accuracy on {DEV_ROWS} held-out members, mean over seeds of a "
        "random k-per-class training set of members; the test split is never read.",
        "",
        "| variant | " + " | ".join(results["columns"]) + " | mean | cpu s / fine-tune |",
        "|---|" + "---|" * (len(results["columns"]) + 2),
    ]
    for variant, cells in results["variants"].items():
        means = [
            statistics.fmean(run["dev_accuracy"] for run in cells[column])
            if cells.get(column)
            else None
            for column in results["columns"]
        ]
        shown = [m for m in means if m is not None]
        cpu = [run["cpu_s"] for runs in cells.values() for run in runs]
        lines.append(
            f"| `{variant or 'defaults'}` | "
            + " | ".join("—" if m is None else f"{m:.3f}" for m in means)
            + f" | {statistics.fmean(shown):.3f} | {statistics.fmean(cpu):.0f} |"
        )
    (OUT / "finetune_selection.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="ag_news,sst2")
    parser.add_argument("--k", default="10,50")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=[""])
    args = parser.parse_args()
    path = OUT / "finetune_selection.json"
    results = json.loads(path.read_text()) if path.exists() else {"variants": {}}
    results["meta"] = metadata(vars(args))
    ks = [int(k) for k in args.k.split(",")]
    datasets = args.datasets.split(",")
    results["columns"] = list(
        dict.fromkeys([*results.get("columns", []), *(f"{d} k={k}" for d in datasets for k in ks)])
    )
    for dataset in datasets:
        texts, labels, classes = member_texts(dataset)
        for k in ks:
            for variant in args.variants:
                runs = (
                    results["variants"].setdefault(variant, {}).setdefault(f"{dataset} k={k}", [])
                )
                for seed in range(len(runs), args.seeds):
                    runs.append(run_cell(texts, labels, classes, k, seed, variant))
                    print(dataset, k, variant or "defaults", json.dumps(runs[-1]), flush=True)
                    write_outputs(results)
    write_outputs(results)


if __name__ == "__main__":
    main()
