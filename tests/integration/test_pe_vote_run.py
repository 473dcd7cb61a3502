"""pe-vote end to end under the default DP mode (CLI, external pool), per-class allocation from
its noisy release, and reports that say who made the texts."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

import tdd_priv
from tdd_priv.cli import main
from tdd_priv.config import RunConfig
from tests.helpers import tiny_run_overrides


def _cli_run(data: Path, pool: Path, out: Path, *extra: str) -> dict[str, Any]:
    args = [
        "run",
        "--data",
        str(data),
        "--split-column",
        "split",
        "--method",
        "pe-vote",
        "--public-pool",
        str(pool),
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
        *extra,
    ]
    assert main(args) == 0
    return json.loads((out / "report.json").read_text())


def test_dp_pe_vote_releases_the_voted_pool_texts_with_a_frequency_allocation(
    tiny_ag_news: Path, ag_news_pool: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    # No --epsilon: the default mode is DP (ε = 4).
    report = _cli_run(
        tiny_ag_news, ag_news_pool, out, "--allocation", "frequency", "--total-size", "10"
    )
    privacy = report["privacy"]
    assert privacy["mode"] == "dp" and privacy["claim"]["status"] == "covered"
    assert [m["name"] for m in privacy["mechanisms"]] == ["class_vote_histogram"]
    synthetic = report["synthetic"]
    assert synthetic["texts_fitted_to"] == "method"
    allocation = synthetic["allocation"]
    assert allocation["mode"] == "frequency" and allocation["total"] == 10
    assert allocation["estimated_from"] == "the vote histogram pe-vote released"
    assert allocation["sizes"] == synthetic["label_counts"]
    assert min(allocation["sizes"].values()) >= 1 and synthetic["size"] == 10
    tensors = load_file(str(out / "synthetic/embeddings.safetensors"))
    assert (tensors["text_embeddings"] == tensors["embeddings"]).all()
    pool = set(pd.read_csv(ag_news_pool).text)
    released = [
        json.loads(line)["text"] for line in (out / "synthetic/data.jsonl").read_text().splitlines()
    ]
    assert len(set(released)) == 10 and all(text in pool for text in released)
    markdown = (out / "report.md").read_text()
    assert "pe-vote's own choice" in markdown
    assert "estimated from the vote histogram pe-vote released" in markdown


def test_allocation_is_refused_for_a_method_that_cannot_honour_it(
    tiny_ag_news: Path, ag_news_pool: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--data",
            str(tiny_ag_news),
            "--method",
            "dm",
            "--allocation",
            "difficulty",
            "--public-pool",
            str(ag_news_pool),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert "allocation" in error and "pe-vote" in error and "Traceback" not in error
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("method", "fitted_to", "phrase"),
    [
        ("dm", "release", "fitted by public-match to the set dm released"),
        ("public-coreset", "private-data", "selected against the private training records"),
    ],
)
def test_non_private_reports_attribute_the_texts(
    tiny_ag_news: Path, tmp_path: Path, method: str, fitted_to: str, phrase: str
) -> None:
    overrides = {
        **tiny_run_overrides(tiny_ag_news, tmp_path / "run"),
        "method": method,
        "per_class": 3,
        "method_options": {"iterations": 20} if method == "dm" else {},
        "evaluation.baselines": [],
        "evaluation.seeds": 1,
        "evaluation.heads": ["linear"],
        "audit.level": "none",
    }
    result = tdd_priv.run(RunConfig(out=tmp_path / "run").with_overrides(overrides))
    synthetic = result.report["synthetic"]
    assert synthetic["realization"] == "public-match"
    assert synthetic["texts_fitted_to"] == fitted_to
    assert np.sum(list(synthetic["label_counts"].values())) == 12
    assert phrase in (tmp_path / "run" / "report.md").read_text()
