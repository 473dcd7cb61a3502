"""dpsgd-teacher end to end: the released texts are exactly the selected public ones and carry
the teacher's soft labels into the evaluation, under DP (CLI) and without (Python API)."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

import tdd_priv
from tdd_priv.cli import main
from tdd_priv.config import RunConfig
from tests.helpers import tiny_run_overrides


def _run(data: Path, out: Path, *privacy: str) -> dict[str, Any]:
    args = [
        "run",
        "--data",
        str(data),
        "--split-column",
        "split",
        "--method",
        "dpsgd-teacher",
        "--per-class",
        "3",
        *privacy,
        "--method-option",
        "epochs=5",
        "--eval-seeds",
        "1",
        "--heads",
        "linear",
        "--audit",
        "none",
        "--orchestrator",
        "local",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    return json.loads((out / "report.json").read_text())


def test_dp_teacher_run_releases_its_selection_with_soft_labels(
    tiny_ag_news: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    report = _run(tiny_ag_news, out, "--epsilon", "2", "--public-pool", "internal")
    assert report["method"]["name"] == "dpsgd-teacher"
    assert report["privacy"]["mode"] == "dp"
    tensors = load_file(str(out / "synthetic/embeddings.safetensors"))
    # Realization is exact: the released texts' embeddings are the selected vectors.
    assert (tensors["text_embeddings"] == tensors["embeddings"]).all()
    assert tensors["soft_labels"].shape == (12, 4)
    assert tensors["soft_labels"].sum(axis=1) == pytest.approx(1.0, rel=1e-5)
    released = [
        json.loads(line) for line in (out / "synthetic/data.jsonl").read_text().splitlines()
    ]
    assert [row["label"] for row in released] == tensors["labels"].tolist()
    # The released texts carry the soft labels their utility was measured with.
    soft = np.array([row["soft_label"] for row in released], dtype=np.float32)
    assert (soft == tensors["text_soft_labels"]).all()
    assert (soft == tensors["soft_labels"]).all()
    # Same vectors, same targets, same head seeds: heads trained on the realized texts score
    # exactly what heads trained on the synthetic set do only if the soft labels came along.
    utility = report["utility"]
    assert utility["realized"]["accuracy_mean"] == utility["synthetic"]["accuracy_mean"]


def test_non_private_teacher_run(tiny_ag_news: Path, tmp_path: Path) -> None:
    overrides = {
        **tiny_run_overrides(tiny_ag_news, tmp_path / "run"),
        "method": "dpsgd-teacher",
        "per_class": 3,
        "method_options": {"epochs": 5},
        "realize": "public-match",
        "evaluation.baselines": [],
        "evaluation.seeds": 1,
        "evaluation.heads": ["linear"],
        "audit.level": "none",
    }
    result = tdd_priv.run(RunConfig(out=tmp_path / "run").with_overrides(overrides))
    assert result.report["privacy"]["mode"] == "none"
    assert result.report["synthetic"]["soft_labels"] is True
    utility = result.report["utility"]
    assert utility["realized"]["accuracy_mean"] == utility["synthetic"]["accuracy_mean"]
