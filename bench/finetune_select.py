"""How the fine-tuning defaults were chosen: a small grid scored on held-out TRAIN rows only.

    python bench/finetune_select.py [--datasets ag_news,sst2] [--k 10,50] [--seeds 2]
                                    [--variants learning_rate=3e-5 learning_rate=1e-4 ...]
    python bench/finetune_select.py --dp [--members 2000] [--epsilon 4] --variants ...

For each dataset the members (the train split exactly as `tdd-priv run` cuts it, seed 0) give
both the training sets (k random texts per class, a stand-in for a distilled set) and a dev set
of 300 other members. The test split is never read, so the chosen defaults are not fitted to
any number this project reports. A variant is `KEY=VALUE[,KEY=VALUE]` over `FinetuneTraining`
fields, applied on top of the defaults. Results go to docs/benchmarks/finetune_selection.json
(a rerun skips finished cells) and finetune_selection.md.

`--dp`: the DP-SGD fine-tune instead (variants over `DPFinetuneTraining`): each cell trains on
`--members` random members at (ε, δ = 1e-5) and scores the same dev rows; results go to
finetune_selection_dp.json / .md.
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
from tdd_priv.privacy.dpsgd import DPFinetuneTraining, train_dp_finetune
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


def run_dp_cell(
    texts: list[str],
    labels: np.ndarray,
    classes: int,
    members: int,
    epsilon: float,
    seed: int,
    variant: str,
) -> dict[str, Any]:
    dev = numpy_rng(0, "finetune-select", "dev").choice(len(texts), DEV_ROWS, replace=False)
    others = np.setdiff1d(np.arange(len(texts)), dev)
    train = numpy_rng(seed, "finetune-select", "dp").choice(others, members, replace=False)
    training = dataclasses.replace(DPFinetuneTraining(), **parse_variant(variant))
    started, cpu = time.perf_counter(), time.process_time()
    result = train_dp_finetune(
        [texts[i] for i in train],
        labels[train],
        num_classes=classes,
        epsilon=epsilon,
        delta=1e-5,
        seed=seed,
        training=training,
    )
    predicted = result.tuned.predict([texts[i] for i in dev])
    return {
        "dev_accuracy": float(np.mean(predicted == labels[dev])),
        "steps": result.record.steps,
        "noise_multiplier": result.record.noise_multiplier,
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
    }


def write_outputs(results: dict[str, Any], dp: bool = False) -> None:
    name = "finetune_selection_dp" if dp else "finetune_selection"
    (OUT / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    meta = results["meta"]
    defaults = DPFinetuneTraining() if dp else FinetuneTraining()
    what = (
        f"a DP-SGD fine-tune at ε = {meta['settings']['epsilon']}, δ = 1e-5 on "
        f"{meta['settings']['members']} random members"
        if dp
        else "a random k-per-class training set of members"
    )
    lines = [
        f"# {'DP-SGD fine-tuning' if dp else 'Fine-tuning'} hyperparameter selection "
        "(dev rows of the train split)",
        "",
        f"Commit `{meta['commit']}`; machine: {meta['machine']['cpus']} CPUs (shared), one "
        f"torch thread. Defaults: `{json.dumps(dataclasses.asdict(defaults))}`. "
        f"Each cell: dev accuracy on {DEV_ROWS} held-out members, mean over seeds of {what}; "
        "the test split is never read.",
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
    (OUT / f"{name}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="ag_news,sst2")
    parser.add_argument("--k", default="10,50")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=[""])
    parser.add_argument("--dp", action="store_true")
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--epsilon", type=float, default=4.0)
    args = parser.parse_args()
    path = OUT / ("finetune_selection_dp.json" if args.dp else "finetune_selection.json")
    results = json.loads(path.read_text()) if path.exists() else {"variants": {}}
    results["meta"] = metadata(vars(args))
    ks = [int(k) for k in args.k.split(",")]
    datasets = args.datasets.split(",")
    columns = [f"{d} k={k}" for d in datasets for k in ks] if not args.dp else datasets
    results["columns"] = list(dict.fromkeys([*results.get("columns", []), *columns]))
    for dataset in datasets:
        texts, labels, classes = member_texts(dataset)
        if args.dp:
            for variant in args.variants:
                runs = results["variants"].setdefault(variant, {}).setdefault(dataset, [])
                for seed in range(len(runs), args.seeds):
                    runs.append(
                        run_dp_cell(
                            texts, labels, classes, args.members, args.epsilon, seed, variant
                        )
                    )
                    print(dataset, variant, json.dumps(runs[-1]), flush=True)
                    write_outputs(results, dp=True)
            continue
        for k in ks:
            for variant in args.variants:
                runs = (
                    results["variants"].setdefault(variant, {}).setdefault(f"{dataset} k={k}", [])
                )
                for seed in range(len(runs), args.seeds):
                    runs.append(run_cell(texts, labels, classes, k, seed, variant))
                    print(dataset, k, variant or "defaults", json.dumps(runs[-1]), flush=True)
                    write_outputs(results)
    write_outputs(results, dp=args.dp)


if __name__ == "__main__":
    main()
