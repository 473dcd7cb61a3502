"""A study's table and figures carry the headline metric and macro-F1 of every cell, read
from reports that hold them, and stay empty for reports that do not."""

import json
from pathlib import Path

import pytest

from tdd_priv.study import expand_cells, study_table
from tdd_priv.study.figures import draw_study_figures
from tests.unit.test_study_table import _sweep, _write_cell


def test_table_and_figures_read_the_headline_and_macro_f1(tmp_path: Path) -> None:
    cells = expand_cells(_sweep(), tmp_path / "study")
    for index, cell in enumerate(cells):
        _write_cell(cell)
        path = cell.config.out / "report.json"
        report = json.loads(path.read_text())
        if index == 0:  # one report written before the metrics existed
            path.write_text(json.dumps(report))
            continue
        utility = report["utility"]
        utility["protocol"] = {"headline_metric": "macro_f1"}
        for key, entry in utility.items():
            if key != "protocol":
                entry["macro_f1_mean"] = entry["accuracy_mean"] - 0.2
        utility["realized"].update(min_class_recall_mean=0.1, at_or_below_floor=False)
        utility["majority_class"] = {"accuracy_mean": 0.88, "macro_f1_mean": 0.47}
        path.write_text(json.dumps(report))
    rows = study_table(cells, {}).rows
    old, new = rows[0], rows[1]
    assert old["headline_metric"] == "accuracy"  # what old reports led with
    assert old["realized_headline"] == old["realized_accuracy"]
    assert old["realized_macro_f1"] is None and old["majority_class_accuracy"] is None
    assert new["headline_metric"] == "macro_f1"
    assert new["realized_headline"] == pytest.approx(new["realized_accuracy"] - 0.2)
    assert new["realized_macro_f1"] == new["realized_headline"]
    assert new["majority_class_headline"] == 0.47 and new["majority_class_accuracy"] == 0.88
    assert new["realized_min_class_recall"] == 0.1 and new["realized_at_or_below_floor"] is False
    written = draw_study_figures(study_table(cells, {}), tmp_path / "figures")
    assert "macro_f1_vs_epsilon.png" in [path.name for _, path in written]
