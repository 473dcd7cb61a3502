"""A run on data whose texts are single-character tokens: the TF-IDF text model has no
vocabulary, and the run still finishes with a report that says so (it used to crash in the
evaluation, after every expensive step)."""

import csv
import json
from pathlib import Path

import numpy as np

from tdd_priv.cli import main
from tdd_priv.report import schema_errors
from tests.helpers import own_key


def _single_character_texts(path: Path, rows: int = 120) -> None:
    rng = np.random.default_rng(0)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(rows):
            label = i % 2
            letters = "abcde" if label == 0 else "fghij"
            writer.writerow([" ".join(rng.choice(list(letters), size=6)), label])


def test_a_run_on_single_character_tokens_writes_its_report(tmp_path: Path) -> None:
    data = tmp_path / "letters.csv"
    _single_character_texts(data)
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--data",
            str(data),
            "--no-dp",
            "--method",
            "herding",
            "--per-class",
            "3",
            "--eval-seeds",
            "1",
            "--audit",
            "none",
            "--orchestrator",
            "local",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert schema_errors(report) == []
    for key in ("realized", "full_data", "random"):
        entry = report["utility"][key]
        assert entry["cross_architecture"]["tfidf-lr"]["not_computable"].startswith(
            "empty vocabulary"
        ), key
        assert 0 <= entry["accuracy_mean"] <= 1  # the embedding heads were still trained
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "Not computable on this data" in markdown and "empty vocabulary" in markdown
    assert main(["verify", str(out), *own_key()]) == 0
