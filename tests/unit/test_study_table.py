"""A study's table, resumability checks and figures, from made-up cell folders."""

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tdd_priv.study import CellOutcome, cell_is_complete, expand_cells, study_table
from tdd_priv.study.cells import remove_partial_folders, write_timing
from tdd_priv.study.figures import draw_study_figures, pareto_front
from tdd_priv.study.outputs import write_outputs
from tdd_priv.study.sweep import Cell, Sweep


def _sweep() -> Sweep:
    return Sweep.from_dict(
        {
            "name": "fake",
            "base": {
                "data": {"spec": "demo", "public_pool": "demo"},
                "method": "dm",
                "per_class": 2,
            },
            "grid": [
                {"method": ["dm"], "epsilon": [1, 8], "seed": [0, 1]},
                {"method": ["herding"], "epsilon": ["none"], "seed": [0, 1]},
            ],
        }
    )


def _report(cell: Cell, resolved: dict[str, Any], *, seed_shift: float) -> dict[str, Any]:
    config = cell.config
    dp = config.privacy.enabled
    epsilon = config.privacy.epsilon if dp else None
    accuracy = 0.6 + (0.02 * (epsilon or 16)) / 4 + seed_shift
    utility = {
        "realized": {"accuracy_mean": accuracy, "accuracy_std": 0.01},
        "synthetic": {"accuracy_mean": accuracy + 0.05, "accuracy_std": 0.01},
        "full_data": {"accuracy_mean": 0.85, "accuracy_std": 0.0},
    }
    if dp:
        utility["dp_sgd"] = {"accuracy_mean": 0.7 + 0.01 * (epsilon or 0), "accuracy_std": 0.0}
    digest = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()
    return {
        "schema_version": "1.0.0",
        "config_sha256": digest,
        "privacy": {
            "mode": "dp" if dp else "none",
            "epsilon": epsilon,
            "delta": 1e-5 if dp else None,
        },
        "utility": utility,
        "audits": {
            "membership": {"auc": 0.5 + accuracy / 10, "tpr_at_1pct_fpr": accuracy / 20},
            "fairness": {"accuracy_difference": 0.3 - accuracy / 10},
        },
    }


def _write_cell(cell: Cell, *, seed_shift: float = 0.0) -> None:
    folder = cell.config.out
    folder.mkdir(parents=True)
    resolved = yaml.safe_load(yaml.safe_dump(cell.config.to_dict()))
    (folder / "config.resolved.yaml").write_text(yaml.safe_dump(resolved), encoding="utf-8")
    report = _report(cell, resolved, seed_shift=seed_shift)
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")


@pytest.fixture
def cells(tmp_path: Path) -> list[Cell]:
    cells = expand_cells(_sweep(), tmp_path / "study")
    for cell in cells:
        _write_cell(cell, seed_shift=0.01 * cell.config.seed)
    return cells


def test_table_reads_each_report_and_leaves_absent_values_empty(
    cells: list[Cell], tmp_path: Path
) -> None:
    write_timing(cells[0], wall_s=12.5, worker="here:1")
    outcomes = {cells[0].id: CellOutcome(cells[0].id, "ran", wall_s=12.5)}
    table = study_table(cells, outcomes)
    rows = {row["cell"]: row for row in table.rows}
    dm = rows["method-dm_eps-8_seed-1"]
    assert dm["method"] == "dm" and dm["epsilon"] == 8 and dm["seed"] == 1 and dm["k"] == 2
    assert dm["realized_accuracy"] == pytest.approx(0.6 + 0.04 + 0.01)
    assert dm["dp_sgd_accuracy"] == pytest.approx(0.78)
    assert dm["epsilon_spent"] == 8 and dm["delta"] == 1e-5
    assert dm["canary_epsilon_lower_bound"] is None  # no canary section in that report
    herding = rows["method-herding_eps-none_seed-0"]
    assert herding["epsilon"] is None and herding["dp_sgd_accuracy"] is None
    assert herding["epsilon_spent"] is None
    assert rows[cells[0].id]["wall_s"] == 12.5 and rows[cells[0].id]["status"] == "ran"
    assert rows[cells[1].id]["wall_s"] is None and rows[cells[1].id]["status"] == "reused"

    out = tmp_path / "study"
    written = write_outputs(out, _sweep(), cells, outcomes, runner="local")
    with written.csv.open(encoding="utf-8") as handle:
        csv_rows = {row["cell"]: row for row in csv.DictReader(handle)}
    assert len(csv_rows) == len(cells)
    no_dp = csv_rows["method-herding_eps-none_seed-0"]
    assert no_dp["dp_sgd_accuracy"] == "" and no_dp["epsilon"] == ""  # empty, never 0
    assert float(csv_rows["method-dm_eps-8_seed-1"]["realized_accuracy"]) == pytest.approx(0.65)
    markdown = written.markdown.read_text(encoding="utf-8")
    assert "# Study: fake" in markdown
    assert markdown.count("| method-") == len(cells)
    assert "![" in markdown and "figures/accuracy_vs_epsilon.png" in markdown
    assert {p.name for p in written.figures} == {
        "accuracy_vs_epsilon.png",
        "pareto_utility_vs_mia.png",
        "fairness_gap_vs_epsilon.png",
    }
    assert json.loads((out / "study.json").read_text())["cells"][0]["status"] == "ran"


def test_a_missing_report_gives_an_empty_row(cells: list[Cell]) -> None:
    (cells[2].config.out / "report.json").unlink()
    row = study_table(cells, {cells[2].id: CellOutcome(cells[2].id, "failed", error="boom")}).rows[
        2
    ]
    assert row["status"] == "failed"
    assert row["realized_accuracy"] is None and row["mia_auc"] is None


def test_figures_skip_what_the_table_cannot_support(tmp_path: Path, cells: list[Cell]) -> None:
    for cell in cells:  # no membership audit anywhere: no Pareto figure
        report = json.loads((cell.config.out / "report.json").read_text())
        del report["audits"]["membership"]
        (cell.config.out / "report.json").write_text(json.dumps(report))
    written = draw_study_figures(study_table(cells, {}), tmp_path / "figures")
    assert [path.name for _, path in written] == [
        "accuracy_vs_epsilon.png",
        "fairness_gap_vs_epsilon.png",
    ]


def test_pareto_front_keeps_only_undominated_points() -> None:
    points = [(0.1, 0.7), (0.05, 0.6), (0.2, 0.65), (0.3, 0.8), (0.05, 0.55)]
    assert pareto_front(points) == [(0.05, 0.6), (0.1, 0.7), (0.3, 0.8)]


def test_a_finished_cell_is_complete_only_for_its_own_config(cells: list[Cell]) -> None:
    cell = cells[0]
    assert cell_is_complete(cell)
    # the same id under another base (more evaluation seeds) must be recomputed
    changed = Cell(cell.id, cell.settings, cell.config.with_overrides({"evaluation.seeds": 7}))
    assert not cell_is_complete(changed)
    # execution-only settings do not matter
    moved = Cell(cell.id, cell.settings, cell.config.with_overrides({"progress": True}))
    assert cell_is_complete(moved)


@pytest.mark.parametrize("damage", ["missing", "not json", "other config", "no schema"])
def test_a_damaged_cell_is_not_complete(cells: list[Cell], damage: str) -> None:
    cell = cells[1]
    report_file = cell.config.out / "report.json"
    report = json.loads(report_file.read_text())
    if damage == "missing":
        report_file.unlink()
    elif damage == "not json":
        report_file.write_text('{"schema_version": "1.0.0", "utility": {')
    elif damage == "other config":
        report["config_sha256"] = "0" * 64
        report_file.write_text(json.dumps(report))
    else:
        del report["schema_version"]
        report_file.write_text(json.dumps(report))
    assert not cell_is_complete(cell)


def test_partial_folders_of_a_killed_cell_are_removed(cells: list[Cell]) -> None:
    cell = cells[0]
    partial = cell.config.out.parent / f".{cell.id}.partial-abc"
    partial.mkdir()
    other = cell.config.out.parent / f".{cells[1].id}.partial-abc"
    other.mkdir()
    assert remove_partial_folders(cell) == [partial]
    assert not partial.exists() and other.exists()
