"""`tdd-priv benchmark --suite quick` end to end: studies as Prefect flows, a leaderboard with
its peers, resumable, and every cell an ordinary signed run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdd_priv.cli import main
from tdd_priv.verify import verify_run


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "quick"
    assert main(["benchmark", "--suite", "quick", "--out", str(out)]) == 0
    return out


def test_the_quick_suite_writes_a_leaderboard_with_its_peers(quick: Path) -> None:
    payload = json.loads((quick / "leaderboard.json").read_text(encoding="utf-8"))
    rows = {(row["method"], row["kind"]): row for row in payload["rows"]}
    teacher = rows[("dpsgd-teacher", "method")]
    assert teacher["epsilon"] == 4.0 and teacher["k"] == 5 and teacher["runs"] == 1
    assert 0.0 <= teacher["mean"] <= 1.0 and teacher["gap_dp_sgd"] is not None
    assert rows[("random", "reference")]["epsilon"] is None
    assert {("full data", "peer"), ("majority class", "peer"), ("DP-SGD", "peer")} <= set(rows)
    for name in ("leaderboard.csv", "leaderboard.md", "leaderboard.html", "suite.yaml"):
        assert (quick / name).is_file(), name
    assert (quick / "figures" / "hatecheck-vs-k.png").is_file()
    private = quick.with_name("quick.private")  # the cells' private records stay outside
    assert private.is_dir() and not list(quick.rglob("splits.json"))
    cells = sorted((quick / "studies" / "hatecheck" / "cells").iterdir())
    assert len(cells) == 2 and all(verify_run(cell).passed for cell in cells)


def test_a_second_invocation_reuses_every_cell(quick: Path) -> None:
    before = (quick / "leaderboard.json").read_text(encoding="utf-8")
    assert main(["benchmark", "--suite", "quick", "--out", str(quick)]) == 0
    study = json.loads((quick / "studies" / "hatecheck" / "study.json").read_text())
    assert {cell["status"] for cell in study["cells"]} == {"reused"}
    after = json.loads((quick / "leaderboard.json").read_text(encoding="utf-8"))
    assert after["rows"] == json.loads(before)["rows"]


def test_a_folder_that_is_not_a_benchmark_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    assert main(["benchmark", "--suite", "quick", "--out", str(tmp_path)]) == 2
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"
