"""`tdd-priv run --fairness balanced`: refused early where it cannot work, and a real DP run on
the demo data (HateCheck, with its target-group column) that records the balancing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdd_priv.cli import main
from tdd_priv.verify import verify_run


def _run(*options: str, out: Path) -> list[str]:
    return ["run", *options, "--orchestrator", "local", "--no-progress", "--out", str(out)]


def test_balanced_without_a_group_column_fails_before_reading_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The data file does not exist: the fairness check must come first, before any read.
    argv = _run(
        "--data", str(tmp_path / "missing.csv"), "--method", "dm", "--fairness", "balanced",
        "--no-dp", out=tmp_path / "run",
    )  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "--fairness balanced needs a sensitive-group column" in error
    assert "--group-column" in error
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("method", ["kip", "mtt", "herding"])
def test_balanced_with_a_method_other_than_dm_or_dc_fails(
    method: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _run(
        "--data", str(tmp_path / "missing.csv"), "--group-column", "group", "--method", method,
        "--fairness", "balanced", "--no-dp", out=tmp_path / "run",
    )  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert f"--fairness balanced is not available for method '{method}'" in error
    assert "dm, dc" in error


@pytest.mark.slow
def test_dp_balanced_run_on_the_demo_data(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "evaluation:\n  heads: [linear]\n  text_models: []\n  baselines: []\n"
        "  seeds: 1\n  steps: 100\n",
        encoding="utf-8",
    )
    out = tmp_path / "run"
    argv = _run(
        "--config", str(config), "--data", "demo", "--method", "dm", "--fairness", "balanced",
        "--method-option", "iterations=30", "--method-option", "feature_maps=4",
        "--epsilon", "4", "--public-pool", "demo", "--audit", "none", out=out,
    )  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == "2.2.0"
    fairness = report["method"]["fairness"]
    assert fairness["mode"] == "balanced"
    assert fairness["group_columns"] == ["group"]
    assert len(fairness["groups"]) == 8 and "women" in fairness["groups"]
    assert fairness["cells"] == 2 * 8
    # HateCheck has no hateful case without a target group: that cell is (noisily) empty.
    assert {"label": 1, "group": "none"} in [
        {"label": f["label"], "group": f["group"]} for f in fairness["fallback"]
    ]
    assert fairness["fallback_cells"] == len(fairness["fallback"])
    names = {m["name"] for m in report["privacy"]["mechanisms"]}
    assert names == {"cell_statistic_sums", "cell_counts"}
    assert report["privacy"]["epsilon"] <= 4.0
    assert "Group-balanced matching" in (out / "report.md").read_text()
    assert "fairness: balanced" in (out / "config.resolved.yaml").read_text()
    verification = verify_run(out)
    assert verification.passed, verification.failures
