"""Devices: encoding, distillation and evaluation timed on every device this machine has.

    python bench/device.py [--n 2000] [--repeats 3] [--methods dpsgd-teacher,dm,kip]
                           [--devices cpu,cuda] [--out-dir docs/benchmarks]

On each available device (the CPU always; CUDA when torch finds a GPU) and for AG News as the
pipeline prepares it (seed 0, members → test):
- encode: the first N SST-2 train sentences with the bundled encoder (`SentenceEncoder` on the
  device), after a warm-up;
- distill: each method on the AG News members at k = 10 (`dpsgd-teacher` under DP at ε = 4,
  the others without), with its tensors and generators on the device;
- evaluate: the evaluation protocol (linear and MLP heads, 5 models each, 300 steps) on the
  members' full data, heads on the device.
On the CPU the thread policy applies as in a run (tdd_priv.threads). Medians over repeats.
Results on CUDA are not bit-identical to CPU ones (tdd_priv.device); the JSON records how far
they differ: the largest embedding difference and each method's test accuracy per device.
Writes OUT_DIR/device.{json,md,png}.

Written to run unchanged on a GPU machine; on a machine without CUDA it measures the CPU only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# This checkout's tdd_priv (not an installed one).
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import REPO, SHARED, accuracy, metadata, prepare  # noqa: E402

from tdd_priv.encode import EncoderConfig, SentenceEncoder  # noqa: E402
from tdd_priv.evaluate import evaluate  # noqa: E402
from tdd_priv.methods import DistillInput, distill  # noqa: E402
from tdd_priv.privacy.release import distill_privately  # noqa: E402
from tdd_priv.threads import workload_for_rows, workload_threads  # noqa: E402

DP_METHODS = frozenset({"dpsgd-teacher"})


def _timed(run: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    result = run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started, result


def _sst2_texts(n: int) -> list[str]:
    import csv

    texts: list[str] = []
    with (SHARED / "sst2" / "sst2.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["split"] == "train":
                texts.append(row["text"])
                if len(texts) == n:
                    break
    return texts


def _devices(requested: list[str]) -> list[torch.device]:
    found = [torch.device("cpu")]
    if torch.cuda.is_available():
        found.append(torch.device("cuda"))
    chosen = [d for d in found if d.type in requested]
    missing = sorted(set(requested) - {d.type for d in found})
    if missing:
        print(f"not available here: {', '.join(missing)} (measuring {chosen})", file=sys.stderr)
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="sentences to encode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default="dpsgd-teacher,dm,kip")
    parser.add_argument("--devices", default="cpu,cuda")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs" / "benchmarks")
    args = parser.parse_args(argv)

    devices = _devices(args.devices.split(","))
    methods = [m for m in args.methods.split(",") if m]
    texts = _sst2_texts(args.n)
    data = prepare("ag_news")
    members = data.members
    pool_x = data.pool_x
    seconds: dict[str, dict[str, list[float]]] = {}
    quality: dict[str, dict[str, float]] = {}
    embeddings: dict[str, np.ndarray] = {}

    def record(task: str, device: torch.device, run: Callable[[], Any]) -> Any:
        elapsed, result = _timed(run, device)
        seconds.setdefault(task, {}).setdefault(device.type, []).append(elapsed)
        print(f"{task} on {device.type}: {elapsed:.2f} s", file=sys.stderr)
        return result

    for device in devices:
        encoder = SentenceEncoder(EncoderConfig(), device=device)
        with workload_threads("encoding"):
            encoder.encode(texts[:64], progress=False)  # warm-up
            for _ in range(args.repeats):
                embeddings[device.type] = record(
                    "encode", device, lambda e=encoder: e.encode(texts, progress=False)
                )
        for method in methods:
            inputs = DistillInput(
                members.x,
                members.labels,
                num_classes=data.classes,
                per_class=10,
                seed=0,
                public_embeddings=pool_x,
                device=device,
            )

            def run_method(method: str = method, inputs: DistillInput = inputs) -> Any:
                if method in DP_METHODS:
                    return distill_privately(method, inputs, epsilon=4.0, delta=1e-5, noise_seed=0)
                return distill(method, inputs)

            with workload_threads(workload_for_rows(len(members.x) + len(pool_x))):
                for _ in range(args.repeats):
                    synthetic = record(f"distill {method}", device, run_method)
            score = accuracy(
                data, synthetic.training_arrays(data.classes), heads=("linear",), seeds=3
            )
            quality.setdefault(f"distill {method}", {})[device.type] = score["all"]
        with workload_threads("small-models"):
            for _ in range(args.repeats):
                utility = record(
                    "evaluate",
                    device,
                    lambda d=device: evaluate(
                        lambda _: members,
                        data.test,
                        heads=["linear", "mlp"],
                        seeds=5,
                        seed=0,
                        progress=False,
                        device=d,
                    ),
                )
        quality.setdefault("evaluate full data", {})[device.type] = utility.to_json()[
            "accuracy_mean"
        ]

    medians = {
        task: {device: statistics.median(values) for device, values in by_device.items()}
        for task, by_device in seconds.items()
    }
    agreement: dict[str, Any] = {}
    if "cuda" in embeddings:
        agreement["encode_max_abs_diff_cuda_vs_cpu"] = float(
            np.abs(embeddings["cuda"] - embeddings["cpu"]).max()
        )
    result: dict[str, Any] = {
        "benchmark": "device",
        **metadata(
            {
                "n_encode": args.n,
                "repeats": args.repeats,
                "methods": methods,
                "devices": [d.type for d in devices],
                "data": "AG News (seed 0 split) members; SST-2 train sentences for encode",
                "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            }
        ),
        "seconds": seconds,
        "median_seconds": medians,
        "test_accuracy": quality,
        "agreement": agreement,
        "cuda_path_tested": any(d.type == "cuda" for d in devices),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "device.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (args.out_dir / "device.md").write_text(_markdown(result), encoding="utf-8")
    _plot(args.out_dir / "device.png", medians)
    print(json.dumps(medians, indent=2))
    return 0


def _markdown(result: dict[str, Any]) -> str:
    devices = result["settings"]["devices"]
    lines = [
        "# Devices: encode, distill and evaluate per device",
        "",
        f"Commit `{result['commit']}`; {result['machine']['cpus']} CPUs "
        f"({result['machine']['platform']}), torch {result['machine']['torch']}, CUDA device: "
        f"{result['settings']['cuda_device'] or 'none'}; load average "
        f"{result['machine']['load_average'][0]:.1f}; medians of {result['settings']['repeats']} "
        "repeats.",
        "",
        "| task | " + " | ".join(f"{d} (s)" for d in devices) + " | test accuracy |",
        "|---|" + "---|" * (len(devices) + 1),
    ]
    for task, by_device in result["median_seconds"].items():
        cells = [f"{by_device[d]:.2f}" if d in by_device else "" for d in devices]
        scores = result["test_accuracy"].get(task if task != "evaluate" else "evaluate full data")
        shown = ", ".join(f"{d} {v:.3f}" for d, v in (scores or {}).items())
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {shown} |")
    if not result["cuda_path_tested"]:
        lines += ["", "No CUDA device here: the CUDA path of this benchmark did not run."]
    lines.append("")
    return "\n".join(lines)


def _plot(path: Path, medians: dict[str, dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(medians)
    devices = sorted({d for by_device in medians.values() for d in by_device})
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(tasks)), 4))
    width = 0.8 / len(devices)
    for i, device in enumerate(devices):
        xs = [t + (i - (len(devices) - 1) / 2) * width for t in range(len(tasks))]
        ax.bar(xs, [medians[t].get(device, 0.0) for t in tasks], width=width, label=device)
    ax.set_xticks(range(len(tasks)), tasks, rotation=20, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("seconds (median, log scale)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
