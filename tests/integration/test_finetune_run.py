"""`--text-models tfidf-lr,finetune` through the CLI on real data (AG News) under DP: every text
set is fine-tuned from the bundled MiniLM (with the release's soft labels), the DP-SGD baseline
gets its own DP fine-tune at the run's ε, and the report shows both with what they trained on."""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tdd_priv.finetune
from tdd_priv.cli import main
from tests.helpers import QUICK_DP_OPTIONS, own_key


def test_finetune_evaluation_end_to_end(
    tiny_ag_news: Path,
    ag_news_pool: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    targets_seen: list[np.ndarray] = []
    real = tdd_priv.finetune.finetune_predict

    def spy(texts: Sequence[str], targets: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        targets_seen.append(targets)
        return real(texts, targets, *args, **kwargs)

    monkeypatch.setattr(tdd_priv.finetune, "finetune_predict", spy)
    config = tmp_path / "finetune.yaml"
    config.write_text(
        "evaluation:\n  baselines: [random]\n  finetune_max_train: 48\n", encoding="utf-8"
    )
    out = tmp_path / "run"
    args = [
        "run",
        "--config",
        str(config),
        "--data",
        str(tiny_ag_news),
        "--split-column",
        "split",
        "--method",
        "dpsgd-teacher",
        "--per-class",
        "3",
        "--epsilon",
        "4",
        "--public-pool",
        str(ag_news_pool),
        "--eval-seeds",
        "1",
        "--heads",
        "linear",
        "--text-models",
        "tfidf-lr,finetune",
        "--finetune-steps",
        "2",
        "--audit",
        "none",
        "--orchestrator",
        "local",
        "--no-progress",
        "--out",
        str(out),
    ]
    for key, value in QUICK_DP_OPTIONS["dpsgd-teacher"].items():
        args += ["--method-option", f"{key}={value}"]
    assert main(args) == 0

    report = json.loads((out / "report.json").read_text())
    utility = report["utility"]
    members = report["dataset"]["sizes"]["members"]
    for key in ("realized", "full_data", "random", "dp_sgd"):
        finetune = utility[key]["cross_architecture"]["finetune"]
        assert len(finetune["accuracies"]) == 1, key
        assert 0.0 <= finetune["accuracy_mean"] <= 1.0
        assert utility[key]["n_models"] == 1  # the fine-tune is not in the head aggregate
    assert "finetune" not in utility["synthetic"].get("cross_architecture", {})  # vectors only
    assert utility["full_data"]["cross_architecture"]["finetune"]["note"].startswith(
        f"each model trained on a seeded subsample of 48 of the set's {members} texts"
    )
    dp_note = utility["dp_sgd"]["cross_architecture"]["finetune"]["note"]
    assert dp_note.startswith("DP-SGD fine-tuning (opacus, RDP) at ε = 4, δ = ")
    assert f"seeded subsample of 48 of the {members} members" in dp_note
    assert "not released" in dp_note
    # dpsgd-teacher releases soft labels: the realized texts were fine-tuned on them
    soft = [t for t in targets_seen if not np.all(np.isin(t, (0.0, 1.0)))]
    assert soft and all(t.shape == (12, 4) for t in soft)
    assert np.allclose(soft[0].sum(axis=1), 1.0)

    markdown = (out / "report.md").read_text()
    assert "finetune (texts)" in markdown
    assert "finetune on DP-SGD on private train (same ε): DP-SGD fine-tuning" in markdown
    assert main(["verify", str(out), *own_key()]) == 0
