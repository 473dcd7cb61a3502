"""Toxicity screening end to end: real runs whose candidate texts include toxic ones.

Every check of "no released text is over the threshold" re-scores the released files
independently (alt-profanity-check called directly, or the classifier artifact re-loaded), not
through the pipeline's own screening.
"""

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tdd_priv.cli import main
from tdd_priv.config import RunConfig
from tdd_priv.data import load_public_texts
from tdd_priv.pipeline import run
from tests.helpers import AG_NEWS_LABELS, own_key

pytestmark = pytest.mark.slow

QUICK_EVALUATION = {
    "heads": ["linear"],
    "seeds": 1,
    "steps": 100,
    "baselines": ["random"],
    "text_models": [],
}


def _rows(out: Path) -> list[dict[str, Any]]:
    lines = (out / "synthetic/data.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _profanity(texts: list[str]) -> np.ndarray:
    from profanity_check import predict_prob

    return np.asarray(predict_prob(texts))


@pytest.fixture(scope="module")
def davidson_sample(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 Davidson tweets (most of them offensive), with `toxic` and `split` columns."""
    frame = pd.read_csv(shared_datasets / "davidson_hate_offensive" / "davidson.csv")
    sample = pd.concat(
        [
            frame[frame.split == "train"].sample(220, random_state=0),
            frame[frame.split == "test"].sample(80, random_state=0),
        ]
    )
    path = tmp_path_factory.mktemp("data") / "davidson_sample.csv"
    sample[["text", "toxic", "split"]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def quick_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "quick.yaml"
    path.write_text(yaml.safe_dump({"evaluation": QUICK_EVALUATION}), encoding="utf-8")
    return path


def _ag_news_args(tiny_ag_news: Path, pool: Path, config: Path, out: Path) -> list[str]:
    return [
        "run",
        "--config", str(config),
        "--data", str(tiny_ag_news),
        "--split-column", "split",
        "--label-names", ",".join(AG_NEWS_LABELS),
        "--public-pool", str(pool),
        "--method", "herding",
        "--per-class", "5",
        "--realize", "public-nearest",
        "--no-dp",
        "--orchestrator", "local",
        "--no-progress",
        "--out", str(out),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def filtered_run(
    tiny_ag_news: Path,
    davidson_sample: Path,
    quick_config: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    out = tmp_path_factory.mktemp("runs") / "filtered"
    args = _ag_news_args(tiny_ag_news, davidson_sample, quick_config, out)
    assert main([*args, "--detox", "filter", "--detox-scorer", "profanity"]) == 0
    return out


def test_filter_releases_no_text_over_the_threshold_and_keeps_k_per_class(
    filtered_run: Path,
) -> None:
    rows = _rows(filtered_run)
    assert Counter(row["label_name"] for row in rows) == dict.fromkeys(AG_NEWS_LABELS, 5)
    assert (_profanity([row["text"] for row in rows]) < 0.5).all()  # independent re-scoring
    assert all(row["flagged"] is False for row in rows)
    assert set(rows[0]) == {"text", "label", "label_name", "flagged"}


def test_the_report_explains_what_was_replaced(filtered_run: Path, davidson_sample: Path) -> None:
    report = json.loads((filtered_run / "report.json").read_text())
    toxicity = report["audits"]["toxicity"]
    counts = toxicity["counts"]
    assert toxicity["scorer"]["name"] == "profanity"
    assert toxicity["scorer"]["version"].startswith("alt-profanity-check")
    assert toxicity["thresholds"] == {"profanity": 0.5}
    assert counts["flagged"] >= 1, "the Davidson pool should put toxic tweets near AG News"
    assert counts["replaced"] == counts["removed"] == counts["flagged"]
    assert counts["missing"] == counts["released_over_threshold"] == 0
    assert counts["scored"] > counts["screened"] == 20
    pool = load_public_texts(str(davidson_sample)).texts
    rows = _rows(filtered_run)
    removed = [pool[entry["removed_public_row"]] for entry in toxicity["replacements"]]
    assert (_profanity(removed) >= 0.5).all()  # what was removed was toxic, independently too
    for entry in toxicity["replacements"]:
        line = rows[entry["released_index"]]
        assert line["text"] == pool[entry["replacement_public_row"]]
        assert line["label_name"] == entry["label"]
    assert "unknown" in toxicity["groups_note"]  # public texts have no groups
    markdown = (filtered_run / "report.md").read_text()
    assert "## Toxicity" in markdown
    assert f"{counts['replaced']} were removed and replaced by the next-best clean" in markdown
    assert (filtered_run / "figures/toxicity.png").is_file()
    assert "figures/toxicity.png" in {item["path"] for item in report["artifacts"]}
    assert (
        main(["verify", str(filtered_run), *own_key()]) == 0
    )  # the extended data.jsonl is signed as is


@pytest.fixture(scope="module")
def tiny_hatecheck(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HateCheck cases with their target group; the non-hateful ones include profanity."""
    frame = pd.read_csv(shared_datasets / "hatecheck" / "hatecheck.csv")
    train, test = frame[frame.split == "train"], frame[frame.split == "test"]
    parts = [
        train[train.label == 1].sample(40, random_state=0),
        train[train.functionality == "profanity_nh"].head(20),
        train[(train.label == 0) & (train.functionality != "profanity_nh")].sample(
            20, random_state=0
        ),
        test.groupby("label").sample(20, random_state=0),
    ]
    path = tmp_path_factory.mktemp("data") / "hatecheck_tiny.csv"
    pd.concat(parts)[["text", "label", "group", "split"]].to_csv(path, index=False)
    return path


def test_private_coreset_filter_exempts_the_hateful_class_and_reports_groups(
    tiny_hatecheck: Path, tmp_path: Path
) -> None:
    from flows.extensions import build_extensions

    config = RunConfig().with_overrides(
        {
            "data.spec": str(tiny_hatecheck),
            "data.split_column": "split",
            "data.group_columns": ["group"],
            "data.label_names": ["non-hateful", "hateful"],
            "method": "herding",
            "per_class": 6,
            "privacy.enabled": False,
            "evaluation": QUICK_EVALUATION,
            "detox.mode": "filter",
            "detox.exempt_labels": ["hateful"],
            "orchestrator": "local",
            "progress": False,
            "out": str(tmp_path / "hatecheck"),
        }
    )
    report = run(config, extensions=build_extensions(config)).report
    rows = _rows(tmp_path / "hatecheck")
    assert [row["label_name"] for row in rows].count("non-hateful") == 6
    assert [row["label_name"] for row in rows].count("hateful") == 6
    scores = _profanity([row["text"] for row in rows])
    clean = [s for s, row in zip(scores, rows, strict=True) if row["label_name"] == "non-hateful"]
    assert (np.array(clean) < 0.5).all()
    for score, row in zip(scores, rows, strict=True):
        assert row["flagged"] == bool(score >= 0.5)  # exempt texts stay, marked
    toxicity = report["audits"]["toxicity"]
    assert toxicity["text_source"] == "private"
    assert set(toxicity["toxic_rate_by_group"]["group"]) <= {
        "women", "trans people", "gay people", "black people", "disabled people", "Muslims",
        "immigrants", "none",
    }  # fmt: skip
    assert toxicity["counts"]["exempt_kept"] == sum(
        row["flagged"] for row in rows if row["label_name"] == "hateful"
    )
    assert "removed_public_row" not in json.dumps(toxicity)


def test_detox_train_then_flag_with_the_trained_classifier(
    tiny_ag_news: Path,
    davidson_sample: Path,
    quick_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = tmp_path / "toxicity-classifier"
    train = ["detox", "train", "--data", str(davidson_sample), "--split-column", "split"]
    assert main([*train, "--no-progress", "--out", str(model)]) == 0
    assert "--detox-scorer classifier" in capsys.readouterr().out
    meta = json.loads((model / "classifier.json").read_text())
    assert meta["labels"] == ["toxicity"]
    assert meta["training"]["train_rows"] == 220 and meta["training"]["heldout_rows"] == 80
    assert meta["training"]["heldout_metrics_at_0.5"]["auc"] > 0.7

    out = tmp_path / "flagged"
    args = _ag_news_args(tiny_ag_news, davidson_sample, quick_config, out)
    detox = ["--detox", "flag", "--detox-scorer", "classifier", "--detox-model", str(model)]
    assert main([*args, *detox, "--detox-threshold", "0.6"]) == 0
    rows = _rows(out)
    assert len(rows) == 20
    # Independent re-scoring: the artifact re-loaded, with its own encoder.
    from audits.toxicity import load_classifier
    from flows.extensions import make_embed

    classifier, _ = load_classifier(model)
    scores = classifier.predict(make_embed(classifier.encoder)([row["text"] for row in rows]))
    np.testing.assert_array_equal([row["flagged"] for row in rows], scores[:, 0] >= 0.6)
    toxicity = json.loads((out / "report.json").read_text())["audits"]["toxicity"]
    assert toxicity["mode"] == "flag" and toxicity["thresholds"] == {"toxicity": 0.6}
    assert toxicity["counts"]["released_over_threshold"] == sum(row["flagged"] for row in rows)
    assert toxicity["counts"]["removed"] == 0
