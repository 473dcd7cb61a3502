"""Distillation benchmark: every method × k on SST-2, AG News and HateCheck (non-private).

    python bench/distill.py [--datasets sst2,ag_news,hatecheck] [--k 1,10,50] [--seeds 3]

For each cell: wall time of the method (after encoding), test accuracy of heads trained on the
embedding-level set, and of heads trained on the re-embedded realized texts (public-nearest and
public-match for learned methods, fitted to the method's release; the records themselves for
coresets; the method's own texts for dpsgd-teacher, pe-vote and public-coreset), plus TF-IDF +
logistic regression on the realized texts; full-data accuracy per dataset. Each realization
records what its texts were fitted to (`fitted_to`: method, release or private-data), and the
table says it. Results are saved after every cell to docs/benchmarks/distill.json (a rerun
skips finished cells unless `--redo`), then distill.md and distill.png (accuracy against k per
dataset) are written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from common import REPO, Prepared, accuracy, metadata, prepare, text_accuracy

from tdd_priv.heads import LabeledArrays
from tdd_priv.methods import METHODS, DistillInput, distill
from tdd_priv.realize import RealizationInput, RealizeSettings, realize

OUT = REPO / "docs" / "benchmarks"


def run_cell(data: Prepared, method: str, k: int, seeds: int) -> dict[str, Any]:
    members = data.members
    inputs = DistillInput(
        members.x,
        members.labels,
        data.classes,
        k,
        seed=0,
        public_embeddings=data.pool_x,  # public: dpsgd-teacher selects from it
    )
    started = time.perf_counter()
    synthetic = distill(method, inputs)
    seconds = time.perf_counter() - started
    cell: dict[str, Any] = {
        "seconds": seconds,
        "vectors": accuracy(
            data, synthetic.training_arrays(data.classes), heads=("linear",), seeds=seeds
        ),
        "realized": {},
    }
    pool = RealizationInput(
        data.pool_texts, data.pool_x, data.member_texts, members.x, members.labels
    )
    strategies = (
        ["private-coreset"]
        if METHODS[method].releases_private_records
        else ["public-nearest", "public-match"]
    )
    for strategy in strategies:
        started = time.perf_counter()
        realized = realize(strategy, synthetic, pool, RealizeSettings(seed=0))
        # Soft labels go with the texts when the method released them (as in the pipeline).
        vectors = (
            LabeledArrays(realized.embeddings, realized.soft_labels)
            if realized.soft_labels is not None
            else LabeledArrays.from_labels(realized.embeddings, realized.labels, data.classes)
        )
        cell["realized"][strategy] = {
            "seconds": time.perf_counter() - started,
            "fitted_to": realized.fitted_to,
            **accuracy(data, vectors, heads=("linear", "mlp"), seeds=seeds),
            "tfidf-lr": text_accuracy(data, list(realized.texts), realized.labels),
        }
    return cell


def write_outputs(results: dict[str, Any]) -> None:
    (OUT / "distill.json").write_text(json.dumps(results, indent=2) + "\n")
    meta = results["meta"]
    lines = [
        "# Distillation benchmark (non-private)",
        "",
        f"Commit `{meta['commit']}`; settings: `{json.dumps(meta['settings'])}`; "
        f"machine: {meta['machine']['cpus']} CPUs, load average at start "
        f"{meta['machine']['load_average'][0]:.1f}. Accuracy = test accuracy of a linear "
        "head (mean over seeds) unless stated; `text` = realized texts re-embedded "
        "(best realization), `tfidf` = TF-IDF + LR on the same texts; time = method only. "
        "`fitted to` says who made the texts: `method` (the method chose them itself), "
        "`release` (fitted by the realization to the method's released vectors), "
        "`private-data` (selected against the private records directly: public-coreset, the "
        "same texts whatever method one would name). Cells measured before realizations "
        "recorded it show `?`; the learned methods' public-match cells of that time were "
        "fitted to the private data (docs/benchmarks/attribution.md).",
        "",
    ]
    for dataset, entry in results["datasets"].items():
        lines += [
            f"## {dataset} (full data: {entry['full_data']['linear']:.3f})",
            "",
            "| method | k | time s | vectors | text (linear) | text (mlp) | tfidf | realization "
            "| fitted to |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for key, cell in sorted(
            entry["cells"].items(), key=lambda kv: (kv[0].split("@")[0], int(kv[0].split("@")[1]))
        ):
            method, k = key.split("@")
            best = max(cell["realized"], key=lambda s: cell["realized"][s]["linear"])
            text = cell["realized"][best]
            lines.append(
                f"| {method} | {k} | {cell['seconds']:.1f} | {cell['vectors']['linear']:.3f} | "
                f"{text['linear']:.3f} | {text['mlp']:.3f} | {text['tfidf-lr']:.3f} | {best} | "
                f"{text.get('fitted_to', '?')} |"
            )
        lines.append("")
    (OUT / "distill.md").write_text("\n".join(lines))
    datasets = list(results["datasets"])
    figure, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        entry = results["datasets"][dataset]
        methods = sorted({key.split("@")[0] for key in entry["cells"]})
        for i, method in enumerate(methods):
            ks = sorted(
                int(key.split("@")[1]) for key in entry["cells"] if key.startswith(method + "@")
            )
            cells = [entry["cells"][f"{method}@{k}"] for k in ks]
            text = [max(c["realized"][s]["linear"] for s in c["realized"]) for c in cells]
            ax.plot(ks, text, "o-", color=f"C{i}", label=f"{method} (text)")
            if not METHODS[method].releases_private_records:
                ax.plot(
                    ks, [c["vectors"]["linear"] for c in cells], "x--", color=f"C{i}", alpha=0.6
                )
        ax.axhline(entry["full_data"]["linear"], color="k", lw=1, label="full data")
        ax.set_xscale("log")
        ax.set_title(dataset)
        ax.set_xlabel("k per class")
        ax.set_ylabel("test accuracy (linear head)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    figure.suptitle("Realized texts (solid) and embedding-level sets (dashed)")
    figure.tight_layout()
    figure.savefig(OUT / "distill.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="ag_news,hatecheck,sst2")
    parser.add_argument("--k", default="1,10,50")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: these small tensors gain nothing from more)",
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--redo", action="store_true", help="recompute the selected cells even when saved"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = OUT / "distill.json"
    results = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
    results["meta"] = metadata(vars(args))
    for dataset in args.datasets.split(","):
        data = prepare(dataset)
        entry = results["datasets"].setdefault(dataset, {"cells": {}})
        entry["full_data"] = accuracy(data, data.members, heads=("linear",), seeds=1)
        for k in map(int, args.k.split(",")):
            for method in args.methods.split(","):
                key = f"{method}@{k}"
                if key in entry["cells"] and not args.redo:
                    continue
                entry["cells"][key] = run_cell(data, method, k, args.seeds)
                print(dataset, key, json.dumps(entry["cells"][key]), flush=True)
                write_outputs(results)
    write_outputs(results)


if __name__ == "__main__":
    main()
