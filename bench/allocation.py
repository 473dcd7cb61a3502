"""Per-class sizes on an imbalanced dataset: equal k against frequency and difficulty allocation.

    python bench/allocation.py [--dataset davidson] [--total 30] [--epsilon 4]
                               [--noise-seeds 3] [--seeds 3]

Davidson (hate 6 %, offensive 77 %, neither 17 % of the train split). The same total number of
texts (`--total`, default 10 per class × 3) is split equally (`--allocation equal`), by each
class's estimated frequency or by its estimated difficulty. DP methods (pe-vote, dpsgd-teacher
at ε = `--epsilon`, δ = 1e-5; `--noise-seeds` runs each) estimate both from their own noisy
release; the non-private ones (public-coreset, herding) from the members. The public pool is
simulated (a disjoint 20 % of the train split, labels dropped; bench/common.py). Fresh linear
heads (`--seeds`) are trained on the released texts (with soft labels when the method gives
them) and judged on the test split: accuracy, macro-F1 and each class's recall. Results:
docs/benchmarks/allocation.json and allocation.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from common import REPO, Prepared, metadata, prepare

from tdd_priv.heads import LabeledArrays, predict, train_head
from tdd_priv.methods import Allocation, DistillInput, SyntheticSet, distill
from tdd_priv.privacy.release import distill_privately

OUT = REPO / "docs" / "benchmarks"
DELTA = 1e-5
MODES = ("equal", "frequency", "difficulty")
PRIVATE = ("pe-vote", "dpsgd-teacher")
NON_PRIVATE = ("public-coreset", "herding")


def scores(data: Prepared, train: LabeledArrays, seeds: int) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class recall of fresh linear heads, mean over seeds."""
    truth = data.test.targets.argmax(axis=1)
    runs = []
    for seed in range(seeds):
        predicted = predict(train_head("linear", train, seed=seed), data.test.x)
        recall, f1 = [], []
        for c in range(data.classes):
            tp = float(np.sum((predicted == c) & (truth == c)))
            recall.append(tp / max(float(np.sum(truth == c)), 1.0))
            precision = tp / max(float(np.sum(predicted == c)), 1.0)
            f1.append(0.0 if tp == 0 else 2 * precision * recall[-1] / (precision + recall[-1]))
        runs.append((float(np.mean(predicted == truth)), float(np.mean(f1)), recall))
    return {
        "accuracy": statistics.fmean(r[0] for r in runs),
        "macro_f1": statistics.fmean(r[1] for r in runs),
        "recall": [statistics.fmean(r[2][c] for r in runs) for c in range(data.classes)],
    }


def release(
    data: Prepared, method: str, mode: str, total: int, epsilon: float | None, seed: int
) -> tuple[SyntheticSet, float]:
    per_class = total // data.classes
    inputs = DistillInput(
        data.members.x,
        data.members.targets.argmax(axis=1).astype(np.int64),
        data.classes,
        per_class,
        seed=seed,
        public_embeddings=data.pool_x,
        allocation=Allocation(mode, total=None if mode == "equal" else total),
    )
    started = time.perf_counter()
    if epsilon is None:
        synthetic = distill(method, inputs)
    else:
        synthetic = distill_privately(method, inputs, epsilon=epsilon, delta=DELTA, noise_seed=seed)
    return synthetic, time.perf_counter() - started


def run_cell(
    data: Prepared, method: str, mode: str, total: int, epsilon: float | None, runs: int, seeds: int
) -> dict[str, Any]:
    results = []
    for seed in range(runs):
        synthetic, seconds = release(data, method, mode, total, epsilon, seed)
        # The methods here release pool texts: their vectors are the texts' embeddings.
        train = synthetic.training_arrays(data.classes)
        assert synthetic.allocation is not None
        results.append(
            {
                "seconds": seconds,
                "sizes": synthetic.allocation.sizes.tolist(),
                **scores(data, train, seeds),
            }
        )
    return {
        "accuracy": statistics.fmean(r["accuracy"] for r in results),
        "macro_f1": statistics.fmean(r["macro_f1"] for r in results),
        "macro_f1_std": statistics.pstdev(r["macro_f1"] for r in results),
        "recall": [statistics.fmean(r["recall"][c] for r in results) for c in range(data.classes)],
        "sizes": [statistics.fmean(r["sizes"][c] for r in results) for c in range(data.classes)],
        "runs": results,
    }


def write_outputs(results: dict[str, Any]) -> None:
    (OUT / "allocation.json").write_text(json.dumps(results, indent=2) + "\n")
    meta = results["meta"]
    names = results["label_names"]
    lines = [
        "# Per-class sizes on an imbalanced dataset",
        "",
        f"Commit `{meta['commit']}`; settings `{json.dumps(meta['settings'])}`; "
        f"{meta['machine']['cpus']} CPUs. {results['dataset']}: members per class "
        f"{results['member_counts']}, test per class {results['test_counts']}. The same "
        f"total ({results['total']} texts) split equally, by estimated class frequency, or by "
        "estimated difficulty (`--allocation`). DP rows at ε = "
        f"{meta['settings']['epsilon']}, δ = {DELTA}: the estimates come from the method's own "
        "noisy release (pe-vote: its vote histogram; dpsgd-teacher: its teacher's predictions on "
        "the pool), so the allocation costs no budget. Non-private rows estimate from the "
        "members. Simulated public pool (a disjoint 20 % of the train split). Linear heads on "
        "the released texts, mean over heads and DP runs; recall per class in "
        f"{', '.join(names)} order.",
        "",
        "| method | allocation | texts per class | accuracy | macro-F1 | recall per class |",
        "|---|---|---|---|---|---|",
    ]
    for key, c in results["cells"].items():
        method, mode = key.split("|")
        sizes = " / ".join(f"{s:.1f}".rstrip("0").rstrip(".") for s in c["sizes"])
        recall = " / ".join(f"{r:.2f}" for r in c["recall"])
        lines.append(
            f"| {method} | {mode} | {sizes} | {c['accuracy']:.3f} | "
            f"{c['macro_f1']:.3f} ± {c['macro_f1_std']:.3f} | {recall} |"
        )
    (OUT / "allocation.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="davidson")
    parser.add_argument("--total", type=int, default=30)
    parser.add_argument("--epsilon", type=float, default=4.0)
    parser.add_argument("--methods", default=",".join(PRIVATE + NON_PRIVATE))
    parser.add_argument("--noise-seeds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = OUT / "allocation.json"
    results = json.loads(path.read_text()) if path.exists() else {"cells": {}}
    results["meta"] = metadata(vars(args))
    data = prepare(args.dataset)
    truth = data.members.targets.argmax(axis=1)
    results.update(
        dataset=args.dataset,
        total=args.total,
        label_names=["hate", "offensive", "neither"]
        if args.dataset == "davidson"
        else list(range(data.classes)),
        member_counts=np.bincount(truth, minlength=data.classes).tolist(),
        test_counts=np.bincount(data.test.targets.argmax(axis=1), minlength=data.classes).tolist(),
    )
    for method in args.methods.split(","):
        private = method in PRIVATE
        for mode in MODES:
            key = f"{method}|{mode}"
            if key in results["cells"]:
                continue
            results["cells"][key] = run_cell(
                data,
                method,
                mode,
                args.total,
                args.epsilon if private else None,
                args.noise_seeds if private else 1,
                args.seeds,
            )
            print(key, json.dumps({k: v for k, v in results["cells"][key].items() if k != "runs"}))
            write_outputs(results)
    write_outputs(results)


if __name__ == "__main__":
    main()
