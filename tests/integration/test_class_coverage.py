"""Every class stays predictable from a released set with soft labels, on real data: a set
with 60 classes and a set whose rare class is under 5 % of the rows. The rare-class set also
runs end to end, so its report must lead with macro-F1 and show every metric."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tdd_priv.cli import main
from tdd_priv.encode import EncoderConfig, encode_cached
from tdd_priv.evaluate import evaluate
from tdd_priv.heads import HeadTraining, LabeledArrays
from tdd_priv.methods import DistillInput, SyntheticSet, distill

DAVIDSON_NAMES = ("hate", "offensive", "neither")


@pytest.fixture(scope="module")
def templates(shared_datasets: Path) -> pd.DataFrame:
    """60 classes from HateCheck: each class is one template (a sentence frame written out for
    7 target groups), 3 of its cases private members, 2 public-pool texts, 2 test rows. The
    spelling-variation functionalities (spell_*) are left out: they are near-copies of other
    templates by design."""
    frame = pd.read_csv(shared_datasets / "hatecheck" / "hatecheck.csv")
    frame = frame[~frame.functionality.str.startswith("spell_")]
    sizes = frame.templ_id.value_counts()
    full = sorted(sizes[sizes == 7].index)
    chosen = full[:: len(full) // 60][:60]
    parts = []
    for label, template in enumerate(chosen):
        cases = frame[frame.templ_id == template].sample(frac=1, random_state=label)
        roles = ["member"] * 3 + ["pool"] * 2 + ["test"] * 2
        parts.append(cases.assign(label=label, role=roles))
    return pd.concat(parts, ignore_index=True)


def _embed(texts: pd.Series) -> np.ndarray:
    cache = Path(os.environ["TDD_PRIV_CACHE"])  # the session's cache (conftest)
    encoded = encode_cached(list(texts), config=EncoderConfig(), cache_dir=cache, progress=False)
    return encoded.embeddings


def _recall(released: SyntheticSet, targets: np.ndarray, test: LabeledArrays) -> dict[int, float]:
    """Mean test recall per class of fresh heads trained on the released vectors."""
    entry = evaluate(
        lambda _: LabeledArrays(released.embeddings, targets),
        test,
        heads=["linear", "mlp"],
        seeds=2,
        seed=0,
        training=HeadTraining(steps=300),
        progress=False,
    ).to_json()
    return {int(c): v["mean"] for c, v in entry["recall_by_class"].items()}


def test_sixty_classes_stay_predictable_with_calibrated_soft_labels(
    templates: pd.DataFrame,
) -> None:
    members = templates[templates.role == "member"]
    pool = templates[templates.role == "pool"].reset_index(drop=True)
    test_rows = templates[templates.role == "test"]
    x, pool_x = _embed(members.text), _embed(pool.text)
    test = LabeledArrays.from_labels(
        _embed(test_rows.text), np.array(test_rows.label, dtype=np.int64), 60
    )

    def released(calibration: str) -> tuple[SyntheticSet, set[int]]:
        """dpsgd-teacher's texts (1 per class) and the classes whose text truly is of that
        class (the teacher picks a wrong template for a few)."""
        inputs = DistillInput(
            x,
            np.array(members.label, dtype=np.int64),
            60,
            per_class=1,
            seed=3,
            options={"calibration": calibration},
            public_embeddings=pool_x,
        )
        chosen = distill("dpsgd-teacher", inputs)
        rows = [int(np.flatnonzero((pool_x == v).all(axis=1))[0]) for v in chosen.embeddings]
        taught = {
            int(c) for c, row in zip(chosen.labels, rows, strict=True) if pool.label[row] == c
        }
        return chosen, taught

    calibrated, taught = released("balanced")
    assert len(taught) >= 50  # the scenario: most classes have a text of their own
    soft = calibrated.soft_labels
    assert soft is not None and (soft.argmax(axis=1) == calibrated.labels).all()
    recall = _recall(calibrated, soft, test)
    assert {c for c in taught if recall[c] == 0} == set()  # every class taught is predicted
    assert sum(r > 0 for r in recall.values()) >= len(taught)

    # the failure the calibration removes: the teacher's raw probabilities over 60 classes are
    # so flat that heads trained on them never predict several classes they were taught
    raw, raw_taught = released("none")
    np.testing.assert_array_equal(raw.embeddings, calibrated.embeddings)  # same texts
    assert raw.soft_labels is not None
    raw_recall = _recall(raw, raw.soft_labels, test)
    assert {c for c in raw_taught if raw_recall[c] == 0}
    hard_recall = _recall(calibrated, np.eye(60, dtype=np.float32)[calibrated.labels], test)
    assert sum(recall.values()) > sum(hard_recall.values())  # soft labels still add something


@pytest.fixture(scope="module")
def rare_class_data(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Davidson tweets with the hate class cut to 4 % of the rows (its natural share is 6 %):
    1,200 train and 500 test rows, and a public pool of 800 other Davidson tweets (the natural
    mix, labels dropped)."""
    frame = pd.read_csv(shared_datasets / "davidson_hate_offensive" / "davidson.csv")
    train = frame[frame.split == "train"].sample(frac=1, random_state=1)

    def cut(rows: pd.DataFrame, n: int) -> pd.DataFrame:
        hate = rows[rows.label == 0].head(int(0.04 * n))
        return pd.concat([hate, rows[rows.label != 0].head(n - len(hate))])

    labeled = pd.concat(
        [
            cut(train.iloc[:8000], 1200).assign(split="train"),
            cut(frame[frame.split == "test"].sample(frac=1, random_state=2), 500).assign(
                split="test"
            ),
        ]
    )
    folder = tmp_path_factory.mktemp("davidson-rare")
    labeled[["text", "label", "split"]].to_csv(folder / "data.csv", index=False)
    train.iloc[8000:8800][["text"]].to_csv(folder / "pool.csv", index=False)
    return folder


def _run(folder: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], str]:
    config = folder / "evaluation.yaml"
    config.write_text(
        # a fixed noise seed: the test checks one DP release, the same one every time
        "privacy:\n  noise_seed: 11\n"
        "evaluation:\n  baselines: [random]\n  text_models: []\n"
        + os.environ.get("TDD_PRIV_TEST_EXTRA_CONFIG", ""),
        encoding="utf-8",
    )
    args = [
        "run",
        "--config",
        str(config),
        "--data",
        str(folder / "data.csv"),
        "--split-column",
        "split",
        "--label-names",
        ",".join(DAVIDSON_NAMES),
        "--public-pool",
        str(folder / "pool.csv"),
        "--method",
        "dpsgd-teacher",
        "--epsilon",
        "4",
        "--per-class",
        "10",
        "--eval-seeds",
        "2",
        "--audit",
        "none",
        "--orchestrator",
        "local",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    return json.loads((out / "report.json").read_text()), capsys.readouterr().out


def test_rare_class_run_leads_with_macro_f1_and_predicts_the_rare_class(
    rare_class_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report, printed = _run(rare_class_data, tmp_path / "run", capsys)
    utility = report["utility"]
    protocol = utility["protocol"]
    assert protocol["headline_metric"] == "macro_f1"
    assert protocol["rarest_class"] == "hate" and protocol["rarest_class_share"] < 0.05
    assert protocol["headline_floor"]["source"] == "chance"
    assert protocol["headline_floor"]["value"] == pytest.approx(1 / 3)

    # the majority-class row, recomputed from the data: "offensive" on every test row
    data = pd.read_csv(rare_class_data / "data.csv")
    test_labels = data.label[data.split == "test"].to_numpy()
    majority = utility["majority_class"]
    assert majority["accuracy_mean"] == pytest.approx(np.mean(test_labels == 1))
    assert majority["recall_by_class"]["offensive"]["mean"] == 1.0
    assert majority["balanced_accuracy_mean"] == pytest.approx(1 / 3)

    for key in ("synthetic", "realized", "realized_hard_labels", "random", "dp_sgd", "full_data"):
        entry = utility[key]
        assert set(entry["recall_by_class"]) == set(DAVIDSON_NAMES), key
        for metric in ("accuracy", "macro_f1", "balanced_accuracy"):
            assert 0 <= entry[f"{metric}_mean"] <= 1, (key, metric)
        mean_recall = np.mean([v["mean"] for v in entry["recall_by_class"].values()])
        assert entry["balanced_accuracy_mean"] == pytest.approx(mean_recall), key
        floor = entry["macro_f1_mean"] <= protocol["headline_floor"]["value"] + 1e-9
        assert entry["at_or_below_floor"] is floor, key
    # the released texts, trained with their soft labels, predict every class, the rare one too
    # (uncalibrated, this run's soft labels give hate a recall of 0)
    realized = utility["realized"]["recall_by_class"]
    print({name: round(v["mean"], 3) for name, v in realized.items()})
    assert all(v["mean"] > 0 for v in realized.values())
    released = [
        json.loads(line)
        for line in (tmp_path / "run" / "synthetic" / "data.jsonl").read_text().splitlines()
    ]
    assert report["synthetic"]["soft_labels"] is True
    assert all(np.argmax(row["soft_label"]) == row["label"] for row in released)

    # people read the headline, named, with the reason
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "Headline metric: **macro-F1**, because the classes are imbalanced" in markdown
    assert "macro-F1 (headline)" in markdown and "majority-class predictor" in markdown
    assert "test scores, mean ± std over models (headline first: macro-F1)" in printed
    assert "majority-class predictor" in printed and "headline macro-F1, because" in printed
