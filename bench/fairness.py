"""Fairness mitigation benchmark: `--fairness none` vs `balanced` on HateCheck's target groups.

    python bench/fairness.py [--methods dm,dc] [--k 10,50] [--privacy none,4,1] [--seeds 0,1,2]
                             [--skip dc@1] [--skew "black people,Muslims:0.25"] [--threads 1]

HateCheck as `--data demo` prepares it (seed-0 split, MiniLM embeddings); the group column is
`group` (7 target groups and `none`). For each (data variant, privacy, k, method, fairness,
seed): the method's set (non-private, or DP at ε with δ = 1e-5; method defaults, except DP `dc`
with the cheaper DP_OPTIONS below: its per-example clipping dominates the CPU budget), realized
from the public pool by public-match (post-processing). A linear head is trained on the realized
texts' embeddings (and, for comparison, one on the synthetic vectors), and on the real test
split we measure its accuracy and the audit's group metrics (audits/fairness.py `group_report`:
worst-group accuracy, max accuracy gap, equalized-odds difference, over groups with >= 20 test
cases). The full-data model (a linear head on all members) is measured alike.
`--skew` adds a second data variant in which the members of the named groups are subsampled to
the given fraction (seeded; test split untouched), so minority groups exist inside each class.
Finished cells are saved to docs/benchmarks/fairness.json at once (a rerun skips them); the .md
table and the .png (group gap against accuracy, one panel per data variant and privacy) are
rewritten from it.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from common import DATASETS, REPO, Prepared, metadata, prepare

from audits.fairness import group_report
from tdd_priv.audit_context import fit_predict_proba
from tdd_priv.config import RunConfig
from tdd_priv.heads import HeadTraining
from tdd_priv.methods import DistillInput, GroupBalance, distill
from tdd_priv.pipeline import load_step, split_step
from tdd_priv.privacy.release import distill_privately
from tdd_priv.realize import RealizationInput, RealizeSettings, realize

OUT = REPO / "docs" / "benchmarks"
DELTA = 1e-5
MIN_GROUP_SIZE = 20  # the fairness audit's default
TRAINING = HeadTraining(steps=300)
DP_OPTIONS: dict[str, dict[str, Any]] = {"dc": {"iterations": 50, "hidden": 32}}


@dataclass(frozen=True)
class GroupedData:
    """HateCheck prepared as a run would, with the group of every member and test case."""

    data: Prepared
    member_rows: np.ndarray  # indices into data.members kept in this variant
    balance: GroupBalance  # groups of the kept members
    test_groups: np.ndarray


def grouped_hatecheck(skew: dict[str, float], seed: int = 0) -> GroupedData:
    data = prepare("hatecheck")
    config = RunConfig().with_overrides({**DATASETS["hatecheck"], "progress": False})
    loaded = load_step(config)
    splits = split_step(loaded, config)  # the same seeded split as prepare's
    assert np.array_equal(loaded.labels[splits.members], data.members.labels)
    groups = np.asarray(loaded.labeled.dataset["group"], dtype=str)
    member_groups = groups[splits.members]
    rng = np.random.default_rng(seed)
    keep = np.ones(len(member_groups), dtype=bool)
    for group, fraction in skew.items():
        rows = np.flatnonzero(member_groups == group)
        if not rows.size:
            raise SystemExit(f"--skew: no member is in group {group!r}")
        dropped = rng.permutation(rows)[round(fraction * rows.size) :]
        keep[dropped] = False
    kept = np.flatnonzero(keep)
    balance = GroupBalance.from_columns({"group": list(groups)}, splits.members[kept])
    return GroupedData(data, kept, balance, groups[splits.test])


def judge(grouped: GroupedData, x: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, Any]:
    """Accuracy and group metrics on the test split of a linear head trained on (x, labels)."""
    data = grouped.data
    targets = np.eye(data.classes, dtype=np.float32)[labels]
    probabilities = fit_predict_proba(x, targets, data.test.x, seed, training=TRAINING)
    predicted = probabilities.argmax(axis=1)
    truth = data.test.labels
    report = group_report(
        truth,
        predicted,
        grouped.test_groups,
        binary=data.classes == 2,
        min_group_size=MIN_GROUP_SIZE,
        n_boot=0,
        seed=seed,
    )
    large = {g: m for g, m in report.by_group.items() if not m["too_few_examples"]}
    worst = min(large, key=lambda g: large[g]["accuracy"])
    return {
        "accuracy": float(np.mean(predicted == truth)),
        "worst_group_accuracy": large[worst]["accuracy"],
        "worst_group": worst,
        "accuracy_difference": report.gaps["accuracy_difference"],
        "equalized_odds_difference": report.gaps.get("equalized_odds_difference"),
        "group_accuracy": {g: m["accuracy"] for g, m in large.items()},
    }


def run_cell(
    grouped: GroupedData, method: str, privacy: str, k: int, fairness: str, seed: int
) -> dict[str, Any]:
    data = grouped.data
    rows = grouped.member_rows
    inputs = DistillInput(
        data.members.x[rows],
        data.members.labels[rows],
        data.classes,
        k,
        seed=seed,
        options=DP_OPTIONS.get(method, {}) if privacy != "none" else {},
        balance=grouped.balance if fairness == "balanced" else None,
    )
    started = time.perf_counter()
    if privacy == "none":
        synthetic = distill(method, inputs)
    else:
        synthetic = distill_privately(
            method, inputs, epsilon=float(privacy), delta=DELTA, noise_seed=seed
        )
    seconds = time.perf_counter() - started
    pool = RealizationInput(data.pool_texts, data.pool_x)  # public only: post-processing
    realized = realize("public-match", synthetic, pool, RealizeSettings(seed=seed))
    cell = judge(grouped, realized.embeddings, realized.labels, seed)
    vectors = synthetic.training_arrays(data.classes)
    cell["vectors"] = judge(grouped, vectors.x, vectors.labels, seed)
    cell["seconds"] = seconds
    cell["epsilon_spent"] = synthetic.privacy["epsilon"] if synthetic.privacy else None
    cell["fallback_cells"] = synthetic.fairness["fallback_cells"] if synthetic.fairness else None
    return cell


def _key(privacy: str, k: int, method: str, fairness: str) -> str:
    return f"{privacy}|{k}|{method}|{fairness}"


METRICS = ("accuracy", "worst_group_accuracy", "accuracy_difference", "equalized_odds_difference")


def _summary(cells: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"n": len(cells)}
    if cells and "vectors" in cells[0]:
        summary["vectors"] = _summary([c["vectors"] for c in cells])
    for metric in METRICS:
        values = [c[metric] for c in cells if c[metric] is not None]
        summary[metric] = float(np.mean(values)) if values else None
        summary[f"{metric}_std"] = float(np.std(values)) if values else None
    return summary


def summarize(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    by_setting: dict[str, list[dict[str, Any]]] = {}
    for key, cell in entry["cells"].items():
        setting = key.rsplit("|", 1)[0]
        by_setting.setdefault(setting, []).append(cell)
    ordered = sorted(by_setting.items(), key=lambda item: _setting_order(item[0]))
    return {setting: _summary(cells) for setting, cells in ordered}


def _setting_order(setting: str) -> tuple[float, int, str, bool]:
    privacy, k, method, fairness = setting.split("|")
    return _privacy_order(privacy), int(k), method, fairness == "balanced"


def group_changes(entry: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per (privacy, k, method): mean per-group test accuracy, balanced − none."""
    changes: dict[str, dict[str, float]] = {}
    settings = sorted(
        {key.rsplit("|", 2)[0] for key in entry["cells"]},
        key=lambda s: _setting_order(s + "|none"),
    )
    for setting in settings:
        by_fairness = {
            fairness: [
                cell
                for key, cell in entry["cells"].items()
                if key.startswith(f"{setting}|{fairness}|")
            ]
            for fairness in ("none", "balanced")
        }
        if not all(by_fairness.values()):
            continue
        groups = by_fairness["none"][0]["group_accuracy"]
        changes[setting] = {
            group: float(
                np.mean([c["group_accuracy"][group] for c in by_fairness["balanced"]])
                - np.mean([c["group_accuracy"][group] for c in by_fairness["none"]])
            )
            for group in groups
        }
    return changes


def _fmt(summary: dict[str, Any], metric: str) -> str:
    value, std = summary[metric], summary[f"{metric}_std"]
    return "n/a" if value is None else f"{value:.3f} ± {std:.3f}"


def write_outputs(results: dict[str, Any]) -> None:
    (OUT / "fairness.json").write_text(json.dumps(results, indent=2) + "\n")
    meta = results["meta"]
    lines = [
        "# Fairness mitigation benchmark (`--fairness balanced`)",
        "",
        f"Commit `{meta['commit']}`"
        f"{' plus uncommitted changes' if meta.get('commit_dirty') else ''}, settings "
        f"`{json.dumps(meta['settings'])}`, "
        f"{meta['machine']['cpus']} CPUs, δ = {DELTA}. HateCheck (`--data demo`, seed-0 split), "
        "group column `group`. A linear head is trained on each realized set (public-match); "
        f"on the real test split: accuracy and the fairness audit's group metrics over groups "
        f"with ≥ {MIN_GROUP_SIZE} test cases (`audits/fairness.py` `group_report`). Mean ± std "
        "over the distillation seeds; Δ columns: balanced − none for the same setting "
        "(higher worst-group accuracy and lower gaps are better).",
        "",
    ]
    for variant, entry in results["variants"].items():
        full = entry["full_data"]
        lines += [
            f"## {variant}: {entry['description']}",
            "",
            f"Full-data model (linear head on all {entry['members']} members): accuracy "
            f"{_fmt(full, 'accuracy')}, worst-group accuracy {_fmt(full, 'worst_group_accuracy')}, "
            f"accuracy gap {_fmt(full, 'accuracy_difference')}, equalized-odds difference "
            f"{_fmt(full, 'equalized_odds_difference')}.",
            "",
            "| privacy | k | method | fairness | accuracy | worst-group acc | max acc gap | "
            "eq.-odds diff | Δ acc | Δ worst | Δ gap | Δ eq.-odds | cells fallen back |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        summaries = summarize(entry)
        for setting, summary in summaries.items():
            privacy, k, method, fairness = setting.split("|")
            other = summaries.get(_key(privacy, int(k), method, "none"))
            deltas = ["", "", "", ""]
            if fairness == "balanced" and other is not None:
                deltas = [
                    f"{summary[m] - other[m]:+.3f}"
                    if summary[m] is not None and other[m] is not None
                    else "n/a"
                    for m in METRICS
                ]
            fallbacks = sorted(
                {
                    str(c["fallback_cells"])
                    for key, c in entry["cells"].items()
                    if key.startswith(setting + "|") and c["fallback_cells"] is not None
                }
            )
            label = "non-private" if privacy == "none" else f"ε = {privacy}"
            lines.append(
                f"| {label} | {k} | {method} | {fairness} | {_fmt(summary, 'accuracy')} | "
                f"{_fmt(summary, 'worst_group_accuracy')} | "
                f"{_fmt(summary, 'accuracy_difference')} | "
                f"{_fmt(summary, 'equalized_odds_difference')} | {' | '.join(deltas)} | "
                f"{', '.join(fallbacks) or '–'} |"
            )
        changes = group_changes(entry)
        if changes:
            groups = list(next(iter(changes.values())))
            lines += [
                "",
                "Change of each group's test accuracy (realized texts), balanced − none, mean "
                "over seeds:",
                "",
                "| privacy | k | method | " + " | ".join(groups) + " |",
                "|---|---|---|" + "---|" * len(groups),
            ]
            for setting, change in changes.items():
                privacy, k, method = setting.split("|")
                label = "non-private" if privacy == "none" else f"ε = {privacy}"
                lines.append(
                    f"| {label} | {k} | {method} | "
                    + " | ".join(f"{change[g]:+.2f}" for g in groups)
                    + " |"
                )
        lines += [
            "",
            "The same, for a linear head trained on the synthetic vectors themselves (what the "
            "run's fairness audit looks at):",
            "",
            "| privacy | k | method | fairness | accuracy | worst-group acc | max acc gap | "
            "eq.-odds diff |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for setting, summary in summaries.items():
            privacy, k, method, fairness = setting.split("|")
            vectors = summary["vectors"]
            label = "non-private" if privacy == "none" else f"ε = {privacy}"
            lines.append(
                f"| {label} | {k} | {method} | {fairness} | "
                + " | ".join(_fmt(vectors, m) for m in METRICS)
                + " |"
            )
        lines.append("")
    (OUT / "fairness.md").write_text("\n".join(lines))
    plot(results)


def plot(results: dict[str, Any]) -> None:
    """Max group accuracy gap against accuracy, one panel per (data variant, privacy): a line
    from each setting's `none` point (open circle) to its `balanced` point (filled triangle)."""
    panels = [
        (variant, privacy)
        for variant, entry in results["variants"].items()
        for privacy in sorted({key.split("|")[0] for key in entry["cells"]}, key=_privacy_order)
    ]
    if not panels:
        return
    series = sorted(
        {tuple(k.split("|")[2:0:-1]) for e in results["variants"].values() for k in e["cells"]}
    )  # (method, k), one colour each in every panel
    colors = {s: f"C{i}" for i, s in enumerate(series)}
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.6 * columns, 3.8 * rows), squeeze=False, sharey=True
    )
    for ax, (variant, privacy) in zip(axes.flat, panels, strict=False):
        entry = results["variants"][variant]
        summaries = summarize(entry)
        for method, k in series:
            setting = f"{privacy}|{k}|{method}"
            if not all(f"{setting}|{f}" in summaries for f in ("none", "balanced")):
                continue  # not run (or not finished yet)
            points = {f: summaries[f"{setting}|{f}"] for f in ("none", "balanced")}
            color = colors[(method, k)]
            ax.plot(
                [p["accuracy"] for p in points.values()],
                [p["accuracy_difference"] for p in points.values()],
                "-",
                color=color,
                lw=1,
            )
            ax.plot(*_xy(points["none"]), "o", color=color, mfc="white", label=f"{method} k={k}")
            ax.plot(*_xy(points["balanced"]), "^", color=color)
        ax.plot(*_xy(entry["full_data"]), "k*", ms=11, label="full data")
        ax.set_title(
            f"{variant}, {'non-private' if privacy == 'none' else f'ε = {privacy}'}", fontsize=9
        )
        ax.set_xlabel("test accuracy (realized texts, linear head)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="○ none  ▲ balanced", title_fontsize=7)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel("max group accuracy gap (lower is better)")
    figure.tight_layout()
    figure.savefig(OUT / "fairness.png", dpi=110)
    plt.close(figure)


def _xy(summary: dict[str, Any]) -> tuple[float, float]:
    return summary["accuracy"], summary["accuracy_difference"]


def _privacy_order(privacy: str) -> float:
    return -math.inf if privacy == "none" else -float(privacy)


def _skew(text: str) -> dict[str, float]:
    if not text:
        return {}
    groups, _, fraction = text.rpartition(":")
    return {group.strip(): float(fraction) for group in groups.split(",")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="dm,dc")
    parser.add_argument("--k", default="10,50")
    parser.add_argument("--privacy", default="none,4,1", help="none (no DP) or ε values")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--skip", default="dc@1", help="METHOD@PRIVACY settings not to run (comma-separated)"
    )
    parser.add_argument(
        "--skew",
        default="black people,Muslims:0.25",
        help="GROUP[,GROUP]:FRACTION: a second variant keeping that fraction of those groups' "
        "members (empty: none)",
    )
    parser.add_argument("--skew-privacy", default="none,4", help="privacy settings of the skew")
    parser.add_argument("--skew-k", default="10", help="k values of the skewed variant")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = OUT / "fairness.json"
    results = json.loads(path.read_text()) if path.exists() else {"variants": {}}
    results["meta"] = metadata(
        {
            **vars(args),
            "dp_options": DP_OPTIONS,
            "delta": DELTA,
            "head": "linear",
            "head_steps": TRAINING.steps,
            "realize": "public-match",
            "min_group_size": MIN_GROUP_SIZE,
        }
    )
    results["meta"]["commit_dirty"] = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    skip = set(filter(None, args.skip.split(",")))
    variants = [("hatecheck", {}, args.privacy, args.k)]
    if args.skew:
        variants.append(("hatecheck-skewed", _skew(args.skew), args.skew_privacy, args.skew_k))
    seeds = [int(s) for s in args.seeds.split(",")]
    for name, skew, privacies, ks in variants:
        grouped = grouped_hatecheck(skew)
        entry = results["variants"].setdefault(name, {"cells": {}})
        entry["description"] = (
            "as distributed"
            if not skew
            else "members of "
            + " and ".join(f"`{g}` subsampled to {f:.0%}" for g, f in skew.items())
            + " (test split unchanged)"
        )
        entry["members"] = len(grouped.member_rows)
        entry["groups"] = list(grouped.balance.names)
        if "full_data" not in entry:
            members = grouped.data.members
            rows = grouped.member_rows
            entry["full_data"] = _summary(
                [judge(grouped, members.x[rows], members.labels[rows], seed) for seed in seeds]
            )
        for privacy in privacies.split(","):
            for k in (int(k) for k in ks.split(",")):
                for method in args.methods.split(","):
                    if f"{method}@{privacy}" in skip:
                        continue
                    for fairness in ("none", "balanced"):
                        for seed in seeds:
                            key = f"{_key(privacy, k, method, fairness)}|{seed}"
                            if key in entry["cells"]:
                                continue
                            cell = run_cell(grouped, method, privacy, k, fairness, seed)
                            entry["cells"][key] = cell
                            print(name, key, f"{cell['seconds']:.1f}s", flush=True)
                            write_outputs(results)
    write_outputs(results)


if __name__ == "__main__":
    main()
