"""What report.json says about soft labels is true for the released texts: a kip set's learned
soft labels reach synthetic/data.jsonl only when the texts are the set's own nearest texts
(public-nearest), and public-match, which chooses texts anew with hard labels, claims none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import tdd_priv
from tdd_priv.config import RunConfig
from tests.helpers import tiny_run_overrides


@pytest.mark.parametrize("realize", ["public-match", "public-nearest"])
def test_kip_report_claims_soft_labels_only_where_the_texts_carry_them(
    tiny_ag_news: Path, tmp_path: Path, realize: str
) -> None:
    out = tmp_path / realize
    overrides = {
        **tiny_run_overrides(tiny_ag_news, out),
        "method": "kip",
        "per_class": 3,
        "method_options": {"iterations": 10, "learning_rate": 0.05},
        "realize": realize,
        "evaluation.baselines": [],
        "evaluation.text_models": [],
        "evaluation.seeds": 1,
        "evaluation.heads": ["linear"],
        "audit.level": "none",
    }
    report = tdd_priv.run(RunConfig(out=out).with_overrides(overrides)).report
    rows = [json.loads(line) for line in (out / "synthetic/data.jsonl").read_text().splitlines()]
    tensors = load_file(str(out / "synthetic/embeddings.safetensors"))
    vectors = tensors["soft_labels"]  # the learned set's own soft labels, released calibrated
    assert (vectors.argmax(axis=1) == tensors["labels"]).all()
    texts_have_them = realize == "public-nearest"
    assert report["synthetic"]["soft_labels"] is texts_have_them
    assert all(("soft_label" in row) is texts_have_them for row in rows)
    assert ("text_soft_labels" in tensors) is texts_have_them
    # the texts were evaluated with exactly the labels they are released with
    assert ("realized_hard_labels" in report["utility"]) is texts_have_them
    if texts_have_them:
        soft = np.array([row["soft_label"] for row in rows], dtype=np.float32)
        np.testing.assert_array_equal(soft, tensors["text_soft_labels"])
        assert (soft.argmax(axis=1) == [row["label"] for row in rows]).all()
