"""Fine-tuning benchmark: the field's protocol (a transformer fine-tuned on the texts) against
the project's heads on frozen MiniLM embeddings, on releases and baselines.

    python bench/finetune.py [--datasets ag_news,sst2,hatecheck] [--k 10,50] [--seeds 3]
                             [--test-rows 1000] [--epsilon 4]

Sets, per dataset and k: the realized texts of two DP releases at ε (`dpsgd-teacher`, whose
texts carry soft labels, and `kip` realized by public-match against the released set), `random`
k per class (redrawn per seed) and the `herding` coreset (private records); per dataset: the
full private train set (each fine-tune on a seeded subsample of at most 2,000 members, the
pipeline's `finetune_max_train`) and the DP-SGD fine-tune on the members at the same (ε, δ)
(top layer + head, same cap). Each set is judged by linear and MLP heads on MiniLM embeddings
(300 steps), TF-IDF + LR and `finetune` (defaults of tdd_priv.finetune), `--seeds` models each,
on one seeded subsample of `--test-rows` test rows shared by every model (all of it when
smaller). Cost per fine-tune is measured as wall and CPU seconds, training and test prediction
apart. Every finished cell is saved to docs/benchmarks/finetune.json at once (a rerun skips
it; processes for different datasets may run side by side), then finetune.md and finetune.png
are written. δ = 1e-5. The DP releases use the bench's
internal pool (public in the benchmark's sense only; see bench/common.py).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from common import REPO, Prepared, metadata, prepare

from tdd_priv.evaluate import LabeledTexts, evaluate, evaluate_texts
from tdd_priv.finetune import DEFAULT_FINETUNE, fine_tune, subsample_rows
from tdd_priv.heads import LabeledArrays
from tdd_priv.methods import DistillInput, distill
from tdd_priv.privacy.dpsgd import DEFAULT_DP_FINETUNE, dpsgd_utility, train_dp_finetune
from tdd_priv.privacy.release import distill_privately
from tdd_priv.realize import RealizationInput, RealizeSettings, realize
from tdd_priv.seeding import derive_seed, numpy_rng

OUT = REPO / "docs" / "benchmarks"
DELTA = 1e-5
HEADS = ("linear", "mlp")
RELEASES = ("dpsgd-teacher", "kip")
BASELINES = ("random", "herding")


def _test_subset(data: Prepared, rows: int) -> Prepared:
    """`data` with its test split cut to a seeded subsample of `rows` (unchanged if smaller)."""
    n = len(data.test_texts.texts)
    if n <= rows:
        return data
    keep = np.sort(numpy_rng(0, "finetune-bench", "test").choice(n, rows, replace=False))
    test = LabeledArrays(data.test.x[keep], data.test.targets[keep])
    texts = LabeledTexts([data.test_texts.texts[i] for i in keep], data.test.labels[keep])
    return Prepared(
        data.name,
        data.classes,
        data.members,
        data.member_texts,
        test,
        texts,
        data.pool_texts,
        data.pool_x,
    )


def _summary(accuracies: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(accuracies),
        "median": statistics.median(accuracies),
        "std": statistics.pstdev(accuracies),
        "accuracies": accuracies,
    }


def _finetunes(
    data: Prepared,
    training_set: Callable[[int], tuple[list[str], np.ndarray]],
    seeds: int,
) -> dict[str, Any]:
    """`seeds` fine-tunes (model seeds as in tdd_priv.evaluate), each on `training_set(seed)`
    (texts, targets (n, C)) cut to the cap as evaluate_texts cuts it; accuracy and cost."""
    accuracies, costs = [], []
    for i in range(seeds):
        model_seed = derive_seed(0, "model", i)
        texts, targets = training_set(model_seed)
        rows = subsample_rows(len(texts), DEFAULT_FINETUNE.max_train_texts, seed=model_seed)
        if rows is not None:
            texts, targets = [texts[r] for r in rows], targets[rows]
        wall, cpu = time.perf_counter(), time.process_time()
        tuned = fine_tune(texts, targets, seed=model_seed)
        trained = time.perf_counter(), time.process_time()
        predicted = tuned.predict(data.test_texts.texts)
        done = time.perf_counter(), time.process_time()
        accuracies.append(float(np.mean(predicted == data.test_texts.labels)))
        costs.append(
            {
                "texts": len(texts),
                "steps": tuned.steps,
                "train_wall_s": trained[0] - wall,
                "train_cpu_s": trained[1] - cpu,
                "predict_wall_s": done[0] - trained[0],
                "predict_cpu_s": done[1] - trained[1],
            }
        )
    return {**_summary(accuracies), "cost": costs}


def _judge(
    data: Prepared,
    vectors: Callable[[int], LabeledArrays],
    texts: Callable[[int], tuple[list[str], np.ndarray]],
    seeds: int,
    varies: bool,
) -> dict[str, Any]:
    """Heads on the set's embeddings, TF-IDF + LR and fine-tuning on its texts."""
    utility = evaluate(vectors, data.test, heads=HEADS, seeds=seeds, seed=0, progress=False)
    scores = {s.head: _summary(list(s.accuracies)) for s in utility.by_head}

    def labeled(seed: int) -> LabeledTexts:
        items, targets = texts(seed)
        return LabeledTexts(items, targets.argmax(axis=1), targets)

    (tfidf,) = evaluate_texts(
        labeled, data.test_texts, models=["tfidf-lr"], seeds=seeds, seed=0, varies_with_seed=varies
    )
    scores["tfidf-lr"] = (
        _summary(list(tfidf.accuracies)) if tfidf.accuracies else {"not_computable": True}
    )
    scores["finetune"] = _finetunes(data, texts, seeds)
    return scores


def _release(data: Prepared, method: str, k: int, epsilon: float) -> dict[str, Any]:
    members = DistillInput(
        data.members.x,
        data.members.labels,
        data.classes,
        k,
        seed=0,
        public_embeddings=data.pool_x,
    )
    synthetic = distill_privately(method, members, epsilon=epsilon, delta=DELTA, noise_seed=0)
    pool = RealizationInput(data.pool_texts, data.pool_x)  # no private data: post-processing
    realized = realize("public-match", synthetic, pool, RealizeSettings(seed=0))
    targets = (
        realized.soft_labels
        if realized.soft_labels is not None
        else np.eye(data.classes, dtype=np.float32)[realized.labels]
    )
    return {
        "vectors": LabeledArrays(realized.embeddings, targets),
        "texts": (list(realized.texts), targets),
        "soft_labels": realized.soft_labels is not None,
    }


def run_cell(data: Prepared, name: str, k: int, seeds: int, epsilon: float) -> dict[str, Any]:
    """One set at one k: a DP release's realized texts or a coreset baseline."""
    members, hot = data.members, np.eye(data.classes, dtype=np.float32)
    if name in RELEASES:
        release = _release(data, name, k, epsilon)
        scores = _judge(
            data, lambda _: release["vectors"], lambda _: release["texts"], seeds, varies=False
        )
        return {**scores, "soft_labels": release["soft_labels"], "epsilon": epsilon}

    def rows_for(seed: int) -> np.ndarray:
        if name == "random":
            rng = numpy_rng(seed, "random-baseline")
            return np.concatenate(
                [
                    rng.choice(np.flatnonzero(members.labels == c), k, replace=False)
                    for c in range(data.classes)
                ]
            )
        rows = distill(name, DistillInput(members.x, members.labels, data.classes, k, 0))
        assert rows.private_rows is not None
        return rows.private_rows

    fixed = None if name == "random" else rows_for(0)

    def pick(seed: int) -> np.ndarray:
        return rows_for(seed) if fixed is None else fixed

    return _judge(
        data,
        lambda s: LabeledArrays(members.x[pick(s)], members.targets[pick(s)]),
        lambda s: ([data.member_texts[i] for i in pick(s)], hot[members.labels[pick(s)]]),
        seeds,
        varies=fixed is None,
    )


def full_cell(data: Prepared, seeds: int) -> dict[str, Any]:
    members = data.members
    return _judge(
        data, lambda _: members, lambda _: (data.member_texts, members.targets), seeds, False
    )


def dp_cell(data: Prepared, seeds: int, epsilon: float) -> dict[str, Any]:
    """DP-SGD at (ε, δ) on the members: the linear head, and the fine-tune (top layer + head)."""
    heads = dpsgd_utility(
        data.members,
        data.test,
        heads=["linear"],
        seeds=seeds,
        seed=0,
        epsilon=epsilon,
        delta=DELTA,
        progress=False,
    )
    accuracies, costs, record = [], [], None
    for i in range(seeds):
        model_seed = derive_seed(0, "model", i)
        wall, cpu = time.perf_counter(), time.process_time()
        result = train_dp_finetune(
            data.member_texts,
            data.members.labels,
            num_classes=data.classes,
            epsilon=epsilon,
            delta=DELTA,
            seed=model_seed,
        )
        trained = time.perf_counter(), time.process_time()
        predicted = result.tuned.predict(data.test_texts.texts)
        done = time.perf_counter(), time.process_time()
        accuracies.append(float(np.mean(predicted == data.test_texts.labels)))
        record = result.record
        costs.append(
            {
                "texts": result.rows,
                "steps": record.steps,
                "train_wall_s": trained[0] - wall,
                "train_cpu_s": trained[1] - cpu,
                "predict_wall_s": done[0] - trained[0],
                "predict_cpu_s": done[1] - trained[1],
                "epsilon": result.epsilon,
            }
        )
    assert record is not None
    return {
        "linear": _summary(list(heads.by_head[0].accuracies)),
        "finetune": {
            **_summary(accuracies),
            "cost": costs,
            "noise_multiplier": record.noise_multiplier,
            "sample_rate": record.sample_rate,
            "trainable_layers": DEFAULT_DP_FINETUNE.trainable_layers,
        },
        "epsilon": epsilon,
    }


# --- outputs -------------------------------------------------------------------------------------


def _cell_text(scores: dict[str, Any], model: str) -> str:
    entry = scores.get(model)
    if entry is None:
        return "–"
    if "mean" not in entry:
        return "n/c"
    return f"{entry['mean']:.3f} ± {entry['std']:.3f}"


def _cost(scores: dict[str, Any]) -> str:
    costs = scores.get("finetune", {}).get("cost", [])
    if not costs:
        return "–"
    train = statistics.fmean(c["train_cpu_s"] for c in costs)
    predict = statistics.fmean(c["predict_cpu_s"] for c in costs)
    wall = statistics.fmean(c["train_wall_s"] + c["predict_wall_s"] for c in costs)
    return f"{costs[0]['steps']} / {train:.0f} + {predict:.1f} / {wall:.0f}"


def save(results: dict[str, Any], fresh: set[tuple[str, ...]]) -> None:
    """Merge the cells this process computed (`fresh`: (dataset, part[, key])) into the JSON on
    disk under a lock and rewrite JSON, md and png, so several processes (one per dataset) can
    fill the same file."""
    path = OUT / "finetune.json"
    with open(Path(tempfile.gettempdir()) / "tdd-priv-finetune-bench.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
        merged["meta"] = results["meta"]
        for dataset, entry in results["datasets"].items():
            target = merged["datasets"].setdefault(dataset, {"cells": {}})
            target["test_rows"], target["members"] = entry["test_rows"], entry["members"]
            for item in fresh:
                if item[0] != dataset:
                    continue
                if item[1] == "cells":
                    target["cells"][item[2]] = entry["cells"][item[2]]
                else:
                    target[item[1]] = entry[item[1]]
        path.write_text(json.dumps(merged, indent=2) + "\n")
        write_outputs(merged)


def write_outputs(results: dict[str, Any]) -> None:
    meta = results["meta"]
    settings = meta["settings"]
    lines = [
        "# Fine-tuning benchmark: a transformer fine-tuned on the texts vs heads on embeddings",
        "",
        f"Commit `{meta['commit']}`; settings `{json.dumps(settings)}`; machine: "
        f"{meta['machine']['cpus']} CPUs shared with other jobs (load average "
        f"{meta['machine']['load_average'][0]:.1f} at start), one torch thread, `nice -n 10`. "
        f"Test accuracy, mean ± std over {settings['seeds']} models (medians in the JSON), on a "
        f"seeded subsample of at most {settings['test_rows']} test rows shared by every model. "
        "`linear`/`mlp`: heads on frozen MiniLM embeddings of the same texts; `tfidf-lr`: TF-IDF "
        "+ logistic regression; `finetune`: all-MiniLM-L6-v2 fine-tuned end to end "
        "(tdd_priv.finetune defaults; soft labels where the release has them). Releases are DP at "
        f"ε = {settings['epsilon']}, δ = {DELTA} (texts from the internal pool). Full data: each "
        "fine-tune on a seeded subsample of 2,000 members. DP-SGD: opacus at the same (ε, δ), "
        "the linear head on embeddings and the fine-tune of the top layer + pooler + classifier "
        "(same cap). Cost column: fine-tune steps / CPU s training + CPU s predicting the test "
        "rows / wall s (wall inflated by other jobs on the 2 cores).",
        "",
    ]
    for dataset, entry in results["datasets"].items():
        lines += [
            f"## {dataset} ({entry['test_rows']} test rows, {entry['members']} members)",
            "",
            "| set | k | linear | mlp | tfidf-lr | finetune | finetune − linear "
            "| finetune cost (steps / cpu train + test / wall s) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        rows = [
            (key.split("@")[0], key.split("@")[1], cell) for key, cell in entry["cells"].items()
        ]
        order = {name: i for i, name in enumerate((*RELEASES, *BASELINES))}
        for name, k, cell in sorted(rows, key=lambda r: (int(r[1]), order.get(r[0], 9))):
            label = f"{name} (DP ε={cell['epsilon']:g})" if name in RELEASES else name
            if cell.get("soft_labels"):
                label += ", soft labels"
            gap = cell["finetune"]["mean"] - cell["linear"]["mean"]
            lines.append(
                f"| {label} | {k} | {_cell_text(cell, 'linear')} | {_cell_text(cell, 'mlp')} | "
                f"{_cell_text(cell, 'tfidf-lr')} | {_cell_text(cell, 'finetune')} | "
                f"{gap:+.3f} | {_cost(cell)} |"
            )
        for label, cell in (("full data", entry.get("full")), ("DP-SGD", entry.get("dp_sgd"))):
            if cell is None:
                continue
            if label == "DP-SGD":
                label = f"DP-SGD (ε={cell['epsilon']:g})"
            gap = cell["finetune"]["mean"] - cell["linear"]["mean"]
            lines.append(
                f"| {label} | all | {_cell_text(cell, 'linear')} | {_cell_text(cell, 'mlp')} | "
                f"{_cell_text(cell, 'tfidf-lr')} | {_cell_text(cell, 'finetune')} | "
                f"{gap:+.3f} | {_cost(cell)} |"
            )
        lines.append("")
    (OUT / "finetune.md").write_text("\n".join(lines))
    _plot(results)


def _plot(results: dict[str, Any]) -> None:
    """Per dataset: linear head vs finetune for each set (bars), full data and DP-SGD lines."""
    datasets = list(results["datasets"])
    figure, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        entry = results["datasets"][dataset]
        keys = sorted(entry["cells"], key=lambda key: (int(key.split("@")[1]), key))
        xs = np.arange(len(keys))
        for offset, model, colour in ((-0.2, "linear", "C0"), (0.2, "finetune", "C1")):
            ax.bar(
                xs + offset,
                [entry["cells"][key][model]["mean"] for key in keys],
                width=0.4,
                color=colour,
                label=model,
            )
        for cell, style in ((entry.get("full"), "-"), (entry.get("dp_sgd"), ":")):
            if cell is not None:
                what = "full data" if style == "-" else "DP-SGD"
                for model, colour in (("linear", "C0"), ("finetune", "C1")):
                    ax.axhline(
                        cell[model]["mean"], color=colour, ls=style, lw=1, label=f"{what} {model}"
                    )
        ax.set_xticks(xs, [key.replace("@", "\nk=") for key in keys], fontsize=7)
        ax.set_title(dataset)
        ax.set_ylabel("test accuracy")
    axes[0][-1].legend(fontsize=6, loc="lower right")
    figure.suptitle("Linear head on MiniLM embeddings vs MiniLM fine-tuned on the texts")
    figure.tight_layout()
    figure.savefig(OUT / "finetune.png", dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="ag_news,sst2,hatecheck")
    parser.add_argument("--k", default="10,50")
    parser.add_argument("--sets", default=",".join((*RELEASES, *BASELINES)))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--epsilon", type=float, default=4.0)
    parser.add_argument("--skip-cells", action="store_true")
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--skip-dp", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = OUT / "finetune.json"
    results = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
    results["meta"] = metadata(vars(args))
    fresh: set[tuple[str, ...]] = set()
    for dataset in args.datasets.split(","):
        data = _test_subset(prepare(dataset), args.test_rows)
        entry = results["datasets"].setdefault(dataset, {"cells": {}})
        entry["test_rows"] = len(data.test_texts.texts)
        entry["members"] = len(data.member_texts)
        for k in [] if args.skip_cells else map(int, args.k.split(",")):
            for name in args.sets.split(","):
                key = f"{name}@{k}"
                if key not in entry["cells"]:
                    entry["cells"][key] = run_cell(data, name, k, args.seeds, args.epsilon)
                    print(dataset, key, json.dumps(entry["cells"][key])[:300], flush=True)
                    fresh.add((dataset, "cells", key))
                    save(results, fresh)
        if not args.skip_full and "full" not in entry:
            entry["full"] = full_cell(data, args.seeds)
            print(dataset, "full", json.dumps(entry["full"])[:300], flush=True)
            fresh.add((dataset, "full"))
            save(results, fresh)
        if not args.skip_dp and "dp_sgd" not in entry:
            entry["dp_sgd"] = dp_cell(data, args.seeds, args.epsilon)
            print(dataset, "dp_sgd", json.dumps(entry["dp_sgd"])[:300], flush=True)
            fresh.add((dataset, "dp_sgd"))
            save(results, fresh)


if __name__ == "__main__":
    main()
