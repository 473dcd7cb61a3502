"""Encoder throughput: tdd_priv's SentenceEncoder against plain sentence-transformers `encode`.

    python bench/encode.py [--n 2000] [--repeats 3] [--batch-size 64] [--out-dir docs/benchmarks]

Both encode the first N sentences of the SST-2 train split with the same model, batch size and
torch threads, after one warm-up each; repeats are interleaved (ours, theirs, ours, …) so drift in
machine load hits both alike. Budget (DESIGN.md): ours ≥ 0.9× theirs in sentences/s.
Writes OUT_DIR/encode.json (numbers, settings, commit, machine) and OUT_DIR/encode.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any HF import: never touch the network

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from tdd_priv.encode import EncoderConfig, SentenceEncoder

REPO = Path(__file__).resolve().parents[1]
SST2_CSV = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2" / "sst2.csv"
BUDGET_RATIO = 0.9


def read_sst2_train(path: Path, n: int) -> list[str]:
    """The first `n` texts of the train split, in file order."""
    texts: list[str] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["split"] == "train":
                texts.append(row["text"])
                if len(texts) == n:
                    break
    if len(texts) < n:
        raise SystemExit(f"{path} has only {len(texts)} train rows; use --n ≤ {len(texts)}")
    return texts


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None  # not a git checkout, or no commit yet
    return result.stdout.strip()


def plot(path: Path, seconds: dict[str, list[float]], n: int, ratio: float) -> None:
    """Strip plot of each repeat's throughput, a bar at each median, the budget line."""
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = list(seconds)
    for x, label in enumerate(labels):
        throughput = [n / s for s in seconds[label]]
        ax.bar(x, statistics.median(throughput), width=0.6, alpha=0.35, color=f"C{x}")
        ax.scatter([x] * len(throughput), throughput, color=f"C{x}", zorder=3)
    budget = BUDGET_RATIO * n / statistics.median(seconds[labels[1]])
    ax.axhline(budget, color="grey", linestyle="--", label=f"budget: {BUDGET_RATIO}× theirs")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("sentences / s (higher is better)")
    ax.set_title(f"Encoder throughput, {n} SST-2 sentences — ratio {ratio:.2f}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="sentences to encode")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each encoder")
    parser.add_argument("--batch-size", type=int, default=EncoderConfig().batch_size)
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs" / "benchmarks")
    args = parser.parse_args(argv)

    from sentence_transformers import SentenceTransformer

    texts = read_sst2_train(SST2_CSV, args.n)
    ours = SentenceEncoder(EncoderConfig(batch_size=args.batch_size))
    theirs = SentenceTransformer(str(ours.model_dir), device="cpu")
    runners: dict[str, Callable[[], np.ndarray]] = {
        "tdd_priv SentenceEncoder": lambda: ours.encode(texts, progress=False),
        "sentence-transformers": lambda: theirs.encode(
            texts, batch_size=args.batch_size, show_progress_bar=False
        ),
    }
    # Warm-up doubles as a check that both compute the same embeddings.
    outputs = [run() for run in runners.values()]
    reference = outputs[1] / np.linalg.norm(outputs[1], axis=1, keepdims=True)
    max_abs_diff = float(np.abs(outputs[0] - reference).max())

    seconds: dict[str, list[float]] = {label: [] for label in runners}
    for _ in range(args.repeats):
        for label, run in runners.items():
            seconds[label].append(timed(run))
            print(f"{label}: {seconds[label][-1]:.2f} s", file=sys.stderr)

    medians = {label: statistics.median(values) for label, values in seconds.items()}
    throughput = {label: args.n / median for label, median in medians.items()}
    ours_label, theirs_label = runners
    ratio = throughput[ours_label] / throughput[theirs_label]
    token_counts = [len(ids) for ids in theirs.tokenizer(texts)["input_ids"]]
    result: dict[str, Any] = {
        "benchmark": "encode",
        "commit": git_commit(),
        "settings": {
            "n": args.n,
            "repeats": args.repeats,
            "batch_size": args.batch_size,
            "order": "interleaved, one warm-up each",
            "dataset": f"{SST2_CSV.relative_to(REPO.parent)} (train split, first {args.n} rows)",
            "model": ours.config.model,
            "model_hash": ours.model_hash,
            "max_length": ours.config.max_length,
            "reference_max_seq_length": theirs.max_seq_length,
            "longest_text_tokens": max(token_counts),
            "torch_threads": torch.get_num_threads(),
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": version("transformers"),
            "sentence_transformers": version("sentence-transformers"),
        },
        "seconds": seconds,
        "median_seconds": medians,
        "sentences_per_second": throughput,
        "ratio": ratio,
        "budget_ratio": BUDGET_RATIO,
        "pass": ratio >= BUDGET_RATIO,
        "max_abs_diff_vs_reference": max_abs_diff,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "encode.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    plot(args.out_dir / "encode.png", seconds, args.n, ratio)
    print(json.dumps({"sentences_per_second": throughput, "ratio": ratio, "pass": result["pass"]}))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
