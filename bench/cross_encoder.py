"""Cross-encoder check: do the realized texts train models on an encoder they were not made with?

    python bench/cross_encoder.py --encoder PATH [--datasets ag_news,hatecheck,sst2] [--k 10]
                                  [--full-sample 8000] [--seeds 3]

Each dataset is split and embedded with MiniLM exactly as `tdd-priv run` does (seed 0); sets of
k texts per class are made as in bench/distill.py (non-private): `dm` and `kip` realized by
public-match, `dpsgd-teacher` (its own public texts, with soft labels), and the `herding` and
`random` private coresets. Each set's texts and the test split are then embedded with a second
encoder (`--encoder`, a local sentence-transformers folder such as all-mpnet-base-v2), and
linear heads trained on them are tested; full data is a seeded sample of up to `--full-sample`
members embedded by the same encoder. Writes docs/benchmarks/cross_encoder.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from common import REPO, Prepared, accuracy, metadata, prepare

from tdd_priv.config import default_cache_dir
from tdd_priv.encode import EncoderConfig, encode_cached
from tdd_priv.heads import LabeledArrays
from tdd_priv.methods import METHODS, DistillInput, distill
from tdd_priv.realize import RealizationInput, RealizeSettings, realize

OUT = REPO / "docs" / "benchmarks"
SETS = ("dm", "kip", "dpsgd-teacher", "herding", "random")


def _texts_and_targets(data: Prepared, method: str, k: int) -> tuple[list[str], LabeledArrays]:
    """The released texts of one non-private run and its MiniLM training arrays."""
    members = data.members
    inputs = DistillInput(
        members.x, members.labels, data.classes, k, seed=0, public_embeddings=data.pool_x
    )
    synthetic = distill(method, inputs)
    pool = RealizationInput(
        data.pool_texts, data.pool_x, data.member_texts, members.x, members.labels
    )
    strategy = "private-coreset" if METHODS[method].releases_private_records else "public-match"
    realized = realize(strategy, synthetic, pool, RealizeSettings(seed=0))
    targets = (
        realized.soft_labels
        if realized.soft_labels is not None
        else np.eye(data.classes, dtype=np.float32)[realized.labels]
    )
    return list(realized.texts), LabeledArrays(realized.embeddings, targets)


def run_dataset(
    name: str, *, encoder: EncoderConfig, k: int, full_sample: int, seeds: int
) -> dict[str, Any]:
    data = prepare(name)
    cache = default_cache_dir()

    def embed(texts: list[str]) -> np.ndarray:
        return encode_cached(texts, config=encoder, cache_dir=cache, progress=True).embeddings

    started = time.perf_counter()
    second = replace(
        data,
        test=LabeledArrays(embed(list(data.test_texts.texts)), data.test.targets),
    )
    rows = np.random.default_rng(0).permutation(len(data.member_texts))[:full_sample]
    rows.sort()
    full = LabeledArrays(embed([data.member_texts[i] for i in rows]), data.members.targets[rows])
    result: dict[str, Any] = {
        "full_data": {
            "minilm": accuracy(data, data.members, heads=("linear",), seeds=1)["linear"],
            "second": accuracy(second, full, heads=("linear",), seeds=1)["linear"],
            "second_rows": len(rows),
        },
        "sets": {},
    }
    for method in SETS:
        texts, minilm = _texts_and_targets(data, method, k)
        moved = LabeledArrays(embed(texts), minilm.targets)
        result["sets"][method] = {
            "minilm": accuracy(data, minilm, heads=("linear",), seeds=seeds)["linear"],
            "second": accuracy(second, moved, heads=("linear",), seeds=seeds)["linear"],
        }
        print(name, method, json.dumps(result["sets"][method]), flush=True)
    result["seconds"] = time.perf_counter() - started
    return result


def write_outputs(results: dict[str, Any]) -> None:
    (OUT / "cross_encoder.json").write_text(json.dumps(results, indent=2) + "\n")
    meta = results["meta"]
    lines = [
        f"# Cross-encoder check (non-private, k = {meta['settings']['k']} per class)",
        "",
        f"Commit `{meta['commit']}`; settings `{json.dumps(meta['settings'])}`. Sets are made "
        "with MiniLM embeddings (the encoder the methods and realization saw); their texts are "
        f"then embedded with `{Path(meta['settings']['encoder']).name}` and linear heads "
        "trained on them are tested on the test split embedded the same way (mean over "
        "seeds). `% of full` is against full data on the same encoder.",
        "",
    ]
    for dataset, entry in results["datasets"].items():
        full = entry["full_data"]
        lines += [
            f"## {dataset}",
            "",
            f"Full data: MiniLM {full['minilm']:.3f}; second encoder {full['second']:.3f} "
            f"({full['second_rows']} members).",
            "",
            "| set | MiniLM | second encoder | % of full (MiniLM) | % of full (second) |",
            "|---|---|---|---|---|",
        ]
        for method, cell in entry["sets"].items():
            lines.append(
                f"| {method} | {cell['minilm']:.3f} | {cell['second']:.3f} | "
                f"{100 * cell['minilm'] / full['minilm']:.1f} % | "
                f"{100 * cell['second'] / full['second']:.1f} % |"
            )
        lines.append("")
    (OUT / "cross_encoder.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoder", required=True, help="a local sentence-transformers folder")
    parser.add_argument("--datasets", default="ag_news,hatecheck,sst2")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--full-sample", type=int, default=8000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    encoder = EncoderConfig(model=args.encoder)
    results: dict[str, Any] = {"meta": metadata(vars(args)), "datasets": {}}
    for dataset in args.datasets.split(","):
        results["datasets"][dataset] = run_dataset(
            dataset, encoder=encoder, k=args.k, full_sample=args.full_sample, seeds=args.seeds
        )
        write_outputs(results)


if __name__ == "__main__":
    main()
