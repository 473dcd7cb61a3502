"""Benchmark suites are checked before anything runs; the leaderboard aggregates runs and
compares each row with its peers from the same runs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tdd_priv.benchmark import (
    CellResult,
    SimulatedPool,
    leaderboard,
    load_suite,
    parse_external,
    write_leaderboard,
)
from tdd_priv.errors import ConfigError
from tests.conftest import SHARED_DATASETS


def test_the_shipped_suites_load(tmp_path: Path) -> None:
    quick = load_suite("quick", datasets=tmp_path)
    assert [entry.name for entry in quick.datasets] == ["hatecheck"]
    assert quick.epsilons == (4.0,) and quick.k == (5,) and quick.runs == 1
    if SHARED_DATASETS.is_dir():
        standard = load_suite("standard", datasets=SHARED_DATASETS)
        assert {e.name for e in standard.datasets} == {"sst2", "ag_news", "hatecheck"}
        assert standard.k == (1, 10, 50) and None in standard.epsilons
        assert standard.runs >= 3
        full = load_suite("full", datasets=SHARED_DATASETS)
        assert full.k == (1, 5, 10, 20, 50) and set(standard.methods) < set(full.methods)
        assert any(isinstance(e.public_pool, SimulatedPool) for e in standard.datasets)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("datasets: {}\nk: [5]\nepsilon: [4]\nmethods: [dm]\n", "datasets must map"),
        ("datasets: {d: {data: {spec: demo}}}\nk: [5]\nepsilon: [4]\nmethods: [dm]\n",
         "public_pool"),
        ("datasets: {d: {data: {spec: demo}, public_pool: demo}}\nk: [0]\nepsilon: [4]\n"
         "methods: [dm]\n", "k: 0"),
        ("datasets: {d: {data: {spec: demo}, public_pool: demo}}\nk: [5]\nepsilon: [-1]\n"
         "methods: [dm]\n", "epsilon: -1"),
        ("datasets: {d: {data: {spec: '{datasets}/x.csv'}, public_pool: demo}}\nk: [5]\n"
         "epsilon: [4]\nmethods: [dm]\n", "--datasets"),
        ("datasets: {d: {data: {spec: demo}, public_pool: demo}}\nk: [5]\nepsilon: [4]\n"
         "colour: red\n", "unknown key(s) colour"),
    ],
)  # fmt: skip
def test_a_bad_suite_is_refused_with_the_key_and_the_fix(
    text: str, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_suite(str(path), datasets=tmp_path)


def _result(
    method: str, epsilon: float | None, seed: int, texts: float, **peers: float
) -> CellResult:
    return CellResult(
        dataset="d",
        method=method,
        epsilon=epsilon,
        k=10,
        seed=seed,
        metric="macro_f1",
        texts=texts,
        vectors=None,
        full_data=peers.get("full_data"),
        dp_sgd=peers.get("dp_sgd"),
        majority=peers.get("majority"),
        wall_s=10.0 + seed,
        texts_by="public-match",
    )


def test_rows_aggregate_runs_and_gaps_come_from_the_same_runs(tmp_path: Path) -> None:
    results = [
        _result("dm", 4.0, 0, 0.70, full_data=0.80, dp_sgd=0.75, majority=0.3),
        _result("dm", 4.0, 1, 0.74, full_data=0.82, dp_sgd=0.73, majority=0.3),
        _result("random", None, 0, 0.25, full_data=0.80, majority=0.3),
    ]
    board = leaderboard(results, methods=["dm"])
    dm = next(r for r in board.rows if r.method == "dm")
    assert dm.runs == 2 and dm.mean == pytest.approx(0.72) and dm.std == pytest.approx(0.02)
    assert dm.gap_full == pytest.approx(((0.70 - 0.80) + (0.74 - 0.82)) / 2)
    assert dm.gap_dp_sgd == pytest.approx(((0.70 - 0.75) + (0.74 - 0.73)) / 2)
    assert dm.time_s == pytest.approx(10.5) and dm.kind == "method"
    random = next(r for r in board.rows if r.method == "random")
    assert random.kind == "reference" and random.gap_dp_sgd is None
    peers = {(r.method, r.epsilon): r for r in board.rows if r.kind == "peer"}
    assert peers[("full data", None)].mean == pytest.approx(0.81)  # one value per seed
    assert peers[("DP-SGD", 4.0)].mean == pytest.approx(0.74)
    assert peers[("majority class", None)].mean == pytest.approx(0.3)
    written = write_leaderboard(tmp_path, board, {"name": "t"}, {"commit": None})
    assert {p.name for p in written} >= {"leaderboard.csv", "leaderboard.md", "d-vs-k.png"}
    markdown = (tmp_path / "leaderboard.md").read_text(encoding="utf-8")
    assert "## d — macro-F1" in markdown and "| dm | 4 | 10 | 2 | 0.720 ± 0.020 |" in markdown
    assert "| random | ∞ (no DP) | 10 | 1 | 0.250 (≤ majority class) |" in markdown
    assert not math.isnan(dm.mean or math.nan)


def test_external_releases_are_named_by_dataset_and_file(tmp_path: Path) -> None:
    release = tmp_path / "llm.jsonl"
    release.write_text('{"text": "a", "label": 0}\n', encoding="utf-8")
    external = parse_external(f"ag_news:llm={release}")
    assert (external.dataset, external.name, external.path) == ("ag_news", "llm", release)
    for bad in ("ag_news=x", f"llm={release}", "ag_news:llm=/no/such/file"):
        with pytest.raises(ConfigError, match="--external"):
            parse_external(bad)
