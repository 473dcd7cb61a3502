"""pe-vote against dpsgd-teacher and dm under DP, on AG News and SST-2.

    python bench/pe_vote.py [--datasets ag_news,sst2] [--epsilons 1,2,4] [--k 10]
                            [--methods pe-vote,dpsgd-teacher,dm] [--noise-seeds 3] [--seeds 2]
    python bench/pe_vote.py --tune [--datasets ag_news,sst2]   # pe-vote's options, validation

The public pool is simulated: bench/common.py cuts a disjoint 20 % of the train split (labels
dropped) and removes it from the private members, as `--public-pool internal` does; the methods
see it as an external pool. δ = 1e-5. Each cell: `--noise-seeds` DP runs (method and noise seed
0, 1, …), each realized with public-match against the released set (exact for pe-vote and
dpsgd-teacher, whose vectors are pool texts) and judged by `--seeds` fresh linear heads on the
test split. `--tune` compares pe-vote's options at ε = 4 on a validation split carved from the
members (10 %, never the test split): K with 100 survivors, the survivors per class with K = 8
(0: plain PE top-k, no fitting), then more survivors at the best K. Results:
docs/benchmarks/pe_vote.json and pe_vote.md (a rerun skips saved cells).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from common import REPO, Prepared, accuracy, metadata, prepare

from tdd_priv.heads import LabeledArrays
from tdd_priv.methods import DistillInput
from tdd_priv.privacy.release import distill_privately
from tdd_priv.realize import RealizationInput, RealizeSettings, realize
from tdd_priv.seeding import numpy_rng

OUT = REPO / "docs" / "benchmarks"
DELTA = 1e-5
NEIGHBORS = (1, 4, 16, 32)
SURVIVORS = (0, 25, 50, 100, 200, 400)
TUNING = {
    **{f"neighbors={k},survivors=100": {"neighbors": k, "survivors": 100} for k in NEIGHBORS},
    **{f"neighbors=8,survivors={m}": {"neighbors": 8, "survivors": m} for m in SURVIVORS},
    # second round, around the best of the first (K = 4; more survivors helped on both)
    **{f"neighbors=4,survivors={m}": {"neighbors": 4, "survivors": m} for m in (200, 400, 800)},
}


def dp_run(
    data: Prepared,
    method: str,
    epsilon: float,
    k: int,
    seeds: int,
    noise_seed: int,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One DP release, realized from the pool and judged on `data.test`."""
    members = DistillInput(
        data.members.x,
        data.members.targets.argmax(axis=1).astype(np.int64),
        data.classes,
        k,
        seed=noise_seed,
        options=options or {},
        public_embeddings=data.pool_x,
    )
    started = time.perf_counter()
    synthetic = distill_privately(
        method, members, epsilon=epsilon, delta=DELTA, noise_seed=noise_seed
    )
    seconds = time.perf_counter() - started
    pool = RealizationInput(data.pool_texts, data.pool_x)  # no private data: post-processing
    realized = realize("public-match", synthetic, pool, RealizeSettings(seed=noise_seed))
    texts = (
        LabeledArrays(realized.embeddings, realized.soft_labels)
        if realized.soft_labels is not None
        else LabeledArrays.from_labels(realized.embeddings, realized.labels, data.classes)
    )
    assert synthetic.privacy is not None
    return {
        "seconds": seconds,
        "epsilon_spent": synthetic.privacy["epsilon"],
        "mechanisms": synthetic.privacy["mechanisms"],
        "text": accuracy(data, texts, heads=("linear",), seeds=seeds)["linear"],
        "fitted_to": realized.fitted_to,
    }


def cell(runs: list[dict[str, Any]]) -> dict[str, Any]:
    texts = [run["text"] for run in runs]
    return {
        "text": statistics.fmean(texts),
        "text_std": statistics.pstdev(texts),
        "seconds": statistics.fmean(run["seconds"] for run in runs),
        "runs": runs,
    }


def validation_split(data: Prepared, share: float = 0.1) -> Prepared:
    """The members minus a seeded `share` of them, with that share as the test split."""
    n = len(data.members.x)
    held = np.zeros(n, dtype=bool)
    held[numpy_rng(0, "pe-vote-tuning").choice(n, size=int(share * n), replace=False)] = True
    keep = ~held
    return replace(
        data,
        members=LabeledArrays(data.members.x[keep], data.members.targets[keep]),
        member_texts=[t for t, k in zip(data.member_texts, keep, strict=True) if k],
        test=LabeledArrays(data.members.x[held], data.members.targets[held]),
    )


def write_outputs(results: dict[str, Any]) -> None:
    (OUT / "pe_vote.json").write_text(json.dumps(results, indent=2) + "\n")
    meta = results["meta"]
    lines = [
        "# pe-vote against dpsgd-teacher and dm under DP",
        "",
        f"Last run: commit `{meta['commit']}`, settings `{json.dumps(meta['settings'])}`, "
        f"{meta['machine']['cpus']} CPUs (shared with other jobs: times are inflated). "
        f"δ = {DELTA}. **Simulated public pool**: a disjoint 20 % of the train split (labels "
        "dropped), removed from the private members (bench/common.py). Test accuracy of a "
        "linear head trained on the released texts (public-match against the release; exact "
        "for pe-vote and dpsgd-teacher), mean ± std over DP runs (noise seeds 0, 1, …), each "
        "judged by fresh heads. `time` = the DP release only.",
        "",
    ]
    for dataset, entry in results["datasets"].items():
        lines += [
            f"## {dataset} (non-private full data: {entry['full_data']:.3f})",
            "",
            "| ε | k | " + " | ".join(entry["methods"]) + " |",
            "|---|---|" + "---|" * len(entry["methods"]),
        ]
        keys = sorted({key.rsplit("|", 1)[0] for key in entry["cells"]}, key=_eps_k)
        for eps_k in keys:
            eps, k = eps_k.split("|")
            values = []
            for method in entry["methods"]:
                c = entry["cells"].get(f"{eps_k}|{method}")
                values.append(
                    "–"
                    if c is None
                    else f"{c['text']:.3f} ± {c['text_std']:.3f} ({c['seconds']:.0f} s)"
                )
            lines.append(f"| {eps} | {k} | " + " | ".join(values) + " |")
        lines.append("")
        if entry.get("tuning"):
            lines += [
                "pe-vote options at ε = 4, k = 10, on a validation split (10 % of the members, "
                "held out; the test split is not used), mean over 3 DP runs:",
                "",
                "| options | validation acc |",
                "|---|---|",
                *(
                    f"| {name} | {c['text']:.3f} ± {c['text_std']:.3f} |"
                    for name, c in entry["tuning"].items()
                ),
                "",
            ]
    (OUT / "pe_vote.md").write_text("\n".join(lines))


def _eps_k(key: str) -> tuple[float, int]:
    eps, k = key.split("|")
    return (math.inf if eps == "inf" else float(eps), int(k))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="ag_news,sst2")
    parser.add_argument("--epsilons", default="1,2,4")
    parser.add_argument("--k", default="10")
    parser.add_argument("--methods", default="pe-vote,dpsgd-teacher,dm")
    parser.add_argument("--noise-seeds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=2, help="fresh heads per released set")
    parser.add_argument("--tune", action="store_true", help="pe-vote's options on validation")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = OUT / "pe_vote.json"
    results = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
    results["meta"] = metadata(vars(args))
    for dataset in args.datasets.split(","):
        data = prepare(dataset)
        entry = results["datasets"].setdefault(dataset, {"cells": {}, "methods": []})
        entry["full_data"] = accuracy(data, data.members, heads=("linear",), seeds=1)["linear"]
        if args.tune:
            held = validation_split(data)
            tuning = entry.setdefault("tuning", {})
            for name, options in TUNING.items():
                if name in tuning:
                    continue
                runs = [dp_run(held, "pe-vote", 4.0, 10, args.seeds, i, options) for i in range(3)]
                tuning[name] = cell(runs)
                print(dataset, "tune", name, json.dumps(tuning[name]["text"]), flush=True)
                write_outputs(results)
            continue
        for method in args.methods.split(","):
            if method not in entry["methods"]:
                entry["methods"].append(method)
        for eps in args.epsilons.split(","):
            for k in args.k.split(","):
                for method in args.methods.split(","):
                    key = f"{eps}|{k}|{method}"
                    if key in entry["cells"]:
                        continue
                    runs = [
                        dp_run(data, method, float(eps), int(k), args.seeds, i)
                        for i in range(args.noise_seeds)
                    ]
                    entry["cells"][key] = {**cell(runs), "commit": results["meta"]["commit"]}
                    print(dataset, key, json.dumps(entry["cells"][key]["text"]), flush=True)
                    write_outputs(results)
    write_outputs(results)


if __name__ == "__main__":
    main()
