"""Soft-label calibration benchmark: per-class recall of heads trained on released texts with
their soft labels, calibrated or not, against the same texts with hard labels.

    python bench/soft_labels.py [--sets davidson_rare,sst2_13pct,hatecheck_groups6,ag_news]

Each set is cut from the shared datasets (below) and run end to end as `tdd-priv run` would:
dpsgd-teacher under DP (ε = 4, k = 10, one fixed noise seed, so both calibrations release the
same texts), evaluation heads linear and mlp with 3 seeds each. A run's report holds the
released texts with their soft labels (`utility.realized`) and with hard labels
(`utility.realized_hard_labels`). Results go to docs/benchmarks/soft_labels.{json,md}.

- davidson_rare: Davidson tweets, hate cut to 4 % of 3,000 train and 1,200 test rows;
- sst2_13pct: SST-2 with 13 % positives (3,000 train rows; dev cut to 490 rows);
- hatecheck_groups6: HateCheck's six target groups as classes, "disabled people" cut to 1.5 %
  of the train rows and 5.7 % of the test rows;
- ag_news: AG News, balanced (500 train and 250 test rows per class).
Each public pool is other rows of the same dataset (labels dropped).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, SHARED, metadata

import tdd_priv
from tdd_priv.config import RunConfig

OUT = REPO / "docs" / "benchmarks"
EPSILON, PER_CLASS, NOISE_SEED = 4.0, 10, 11


def _cut(rows: pd.DataFrame, n: int, label: int, share: float) -> pd.DataFrame:
    """n rows of which `share` have `label`."""
    rare = rows[rows.label == label].head(int(n * share))
    return pd.concat([rare, rows[rows.label != label].head(n - len(rare))])


def davidson_rare() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    frame = pd.read_csv(SHARED / "davidson_hate_offensive/davidson.csv")
    train = frame[frame.split == "train"].sample(frac=1, random_state=1)
    test = frame[frame.split == "test"].sample(frac=1, random_state=0)
    return (
        _cut(train.iloc[:12000], 3000, 0, 0.04),
        _cut(test, 1200, 0, 0.04),
        train.iloc[12000:14000],
        ["hate", "offensive", "neither"],
    )


def sst2_13pct() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    frame = pd.read_csv(SHARED / "sst2/sst2.csv")
    train = frame[frame.split == "train"].sample(frac=1, random_state=2)
    return (
        _cut(train.iloc[:20000], 3000, 1, 0.13),
        _cut(frame[frame.split != "train"], 490, 1, 0.13),
        train.iloc[20000:22000],
        ["negative", "positive"],
    )


def hatecheck_groups6() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    groups = ["women", "trans people", "gay people", "black people", "Muslims", "disabled people"]
    frame = pd.read_csv(SHARED / "hatecheck/hatecheck.csv")
    frame = frame[frame.group.isin(groups)].copy()
    frame["label"] = frame.group.map({name: i for i, name in enumerate(groups)})
    frame = frame.sample(frac=1, random_state=5)
    kept = pd.concat([frame[frame.label != 5], frame[frame.label == 5].head(70)])
    kept = kept.sample(frac=1, random_state=6)
    test = pd.concat(kept[kept.label == c].head(40 if c < 5 else 12) for c in range(6))
    rest = kept.drop(test.index)
    pool = rest.groupby("label").head(25)
    return rest.drop(pool.index), test, pool, groups


def ag_news() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    frame = pd.read_csv(SHARED / "ag_news/ag_news.csv")
    train, test = frame[frame.split == "train"], frame[frame.split == "test"]
    return (
        pd.concat(train[train.label == c].iloc[:500] for c in range(4)),
        pd.concat(test[test.label == c].iloc[:250] for c in range(4)),
        pd.concat(train[train.label == c].iloc[1000:1500] for c in range(4)),
        ["World", "Sports", "Business", "Sci/Tech"],
    )


SETS = {f.__name__: f for f in (davidson_rare, sst2_13pct, hatecheck_groups6, ag_news)}


def _summary(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "accuracy": entry["accuracy_mean"],
        "macro_f1": entry["macro_f1_mean"],
        "balanced_accuracy": entry["balanced_accuracy_mean"],
        "recall_by_class": {name: v["mean"] for name, v in entry["recall_by_class"].items()},
    }


def run_set(name: str, folder: Path) -> dict[str, Any]:
    train, test, pool, names = SETS[name]()
    labeled = pd.concat([train.assign(split="train"), test.assign(split="test")])
    labeled[["text", "label", "split"]].to_csv(folder / f"{name}.csv", index=False)
    pool[["text"]].to_csv(folder / f"{name}_pool.csv", index=False)
    result: dict[str, Any] = {}
    for calibration in ("none", "balanced"):
        out = folder / f"{name}-{calibration}"
        overrides = {
            "data.spec": str(folder / f"{name}.csv"),
            "data.split_column": "split",
            "data.label_names": names,
            "data.public_pool": str(folder / f"{name}_pool.csv"),
            "method": "dpsgd-teacher",
            "per_class": PER_CLASS,
            "privacy.epsilon": EPSILON,
            "privacy.noise_seed": NOISE_SEED,
            "method_options": {"calibration": calibration},
            "evaluation.seeds": 3,
            "evaluation.baselines": [],
            "evaluation.text_models": [],
            "audit.level": "none",
            "orchestrator": "local",
            "progress": False,
            "out": str(out),
        }
        report = tdd_priv.run(RunConfig(out=out).with_overrides(overrides)).report
        utility = report["utility"]
        result["headline_metric"] = utility["protocol"]["headline_metric"]
        result[f"soft ({calibration})"] = _summary(utility["realized"])
        result["hard labels"] = _summary(utility["realized_hard_labels"])
        result["dp_sgd"] = _summary(utility["dp_sgd"])
        result["majority_class"] = _summary(utility["majority_class"])
        print(name, calibration, json.dumps(result[f"soft ({calibration})"]), flush=True)
    return result


def write_markdown(results: dict[str, Any], meta: dict[str, Any]) -> None:
    lines = [
        "# Soft-label calibration",
        "",
        f"dpsgd-teacher under DP (ε = {EPSILON:g}, k = {PER_CLASS}, noise seed {NOISE_SEED}); "
        "heads (linear, mlp; 3 seeds each) trained on the released texts with their soft labels "
        "(uncalibrated / calibrated) or with hard labels; mean over the 6 models. `bench/"
        "soft_labels.py` builds the sets (see its docstring).",
        "",
        "| set | headline | trained on | accuracy | macro-F1 | balanced acc. | recall per class |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        for row in ("soft (none)", "soft (balanced)", "hard labels", "dp_sgd", "majority_class"):
            entry = result[row]
            recall = ", ".join(f"{c} {v:.2f}" for c, v in entry["recall_by_class"].items())
            lines.append(
                f"| {name} | {result['headline_metric']} | {row} | {entry['accuracy']:.3f} | "
                f"{entry['macro_f1']:.3f} | {entry['balanced_accuracy']:.3f} | {recall} |"
            )
    lines += ["", "```", json.dumps(meta, indent=2), "```", ""]
    (OUT / "soft_labels.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default=",".join(SETS))
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.sets.split(","):
            results[name] = run_set(name, Path(folder))
    meta = metadata({"epsilon": EPSILON, "per_class": PER_CLASS, "noise_seed": NOISE_SEED})
    (OUT / "soft_labels.json").write_text(
        json.dumps({"results": results, "meta": meta}, indent=2), encoding="utf-8"
    )
    write_markdown(results, meta)


if __name__ == "__main__":
    main()
