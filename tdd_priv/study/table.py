"""A study's table: one row per cell, read from the cell's report.json, written as CSV and
markdown. A value a report does not hold (no DP-SGD baseline without DP, no canary bound
without canaries, a failed cell) stays empty: never a zero that could be mistaken for a result.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tdd_priv.policy import report_number, report_value
from tdd_priv.study.cells import CellOutcome, read_report, read_timing
from tdd_priv.study.sweep import Cell, axis_label, unique_settings

__all__ = ["COLUMNS", "StudyTable", "study_table", "write_csv", "write_markdown"]

Report = Mapping[str, Any]


def _reader(path: str) -> Callable[[Report], Any]:
    return lambda report: report_number(report, path)


@dataclass(frozen=True)
class Column:
    """A table column: its name, what it means, and how to read it from a report."""

    name: str
    meaning: str
    read: Callable[[Report], Any]


def _epsilon_spent(report: Report) -> float | None:
    return report_number(report, "privacy.epsilon") if _dp(report) else None


def _dp(report: Report) -> bool:
    return report_value(report, "privacy.mode") == "dp"


def _headline_metric(report: Report) -> str | None:
    """The report's headline metric; accuracy for reports written before there was a choice."""
    if report_value(report, "utility.realized") is None:
        return None
    return str(report_value(report, "utility.protocol.headline_metric") or "accuracy")


def _headline(key: str) -> Callable[[Report], Any]:
    def read(report: Report) -> float | None:
        metric = _headline_metric(report)
        return report_number(report, f"utility.{key}.{metric}_mean") if metric else None

    return read


# The measured columns, in order, each read from report.json.
COLUMNS: tuple[Column, ...] = (
    Column("headline_metric", "the metric the cell's report leads with (macro-F1 when the rarest "
           "class is under half a balanced share of the test split, else accuracy)",
           _headline_metric),
    Column("realized_headline", "that metric, heads trained on the released texts",
           _headline("realized")),
    Column("dp_sgd_headline", "that metric, DP-SGD on the private train split at the same ε",
           _headline("dp_sgd")),
    Column("majority_class_headline", "that metric, the majority-class predictor",
           _headline("majority_class")),
    Column("realized_at_or_below_floor", "the released texts' headline does not beat the "
           "majority-class predictor or chance",
           lambda report: report_value(report, "utility.realized.at_or_below_floor")),
    Column("realized_accuracy", "test accuracy, heads trained on the released texts",
           _reader("utility.realized.accuracy_mean")),
    Column("realized_accuracy_std", "its std over models",
           _reader("utility.realized.accuracy_std")),
    Column("synthetic_accuracy", "test accuracy, heads trained on the synthetic vectors",
           _reader("utility.synthetic.accuracy_mean")),
    Column("dp_sgd_accuracy", "DP-SGD on the private train split at the same ε",
           _reader("utility.dp_sgd.accuracy_mean")),
    Column("full_data_accuracy", "heads trained on the whole private train split",
           _reader("utility.full_data.accuracy_mean")),
    Column("random_accuracy", "k random private records per class",
           _reader("utility.random.accuracy_mean")),
    Column("realized_macro_f1", "test macro-F1, heads trained on the released texts",
           _reader("utility.realized.macro_f1_mean")),
    Column("realized_balanced_accuracy", "test balanced accuracy (mean recall over classes), "
           "released texts", _reader("utility.realized.balanced_accuracy_mean")),
    Column("realized_min_class_recall", "the lowest recall on any class, released texts",
           _reader("utility.realized.min_class_recall_mean")),
    Column("realized_hard_labels_macro_f1", "test macro-F1, the released texts with hard labels "
           "(when they carry soft labels)", _reader("utility.realized_hard_labels.macro_f1_mean")),
    Column("synthetic_macro_f1", "test macro-F1, heads trained on the synthetic vectors",
           _reader("utility.synthetic.macro_f1_mean")),
    Column("dp_sgd_macro_f1", "test macro-F1, DP-SGD at the same ε",
           _reader("utility.dp_sgd.macro_f1_mean")),
    Column("full_data_macro_f1", "test macro-F1, the whole private train split",
           _reader("utility.full_data.macro_f1_mean")),
    Column("random_macro_f1", "test macro-F1, k random private records per class",
           _reader("utility.random.macro_f1_mean")),
    Column("majority_class_accuracy", "test accuracy of the majority-class predictor",
           _reader("utility.majority_class.accuracy_mean")),
    Column("mia_auc", "membership inference: AUC of the strongest attack",
           _reader("audits.membership.auc")),
    Column("mia_tpr_at_1pct_fpr", "membership inference: TPR at 1 % FPR",
           _reader("audits.membership.tpr_at_1pct_fpr")),
    Column("mia_attack", "the strongest attack",
           lambda report: report_value(report, "audits.membership.best_attack")),
    Column("canary_epsilon_lower_bound", "empirical ε lower bound from canaries",
           _reader("audits.canary.epsilon_lower_bound")),
    Column("fairness_accuracy_gap", "largest accuracy gap between groups (release's model)",
           _reader("audits.fairness.accuracy_difference")),
    Column("fairness_equalized_odds_gap", "equalized-odds difference (release's model)",
           _reader("audits.fairness.equalized_odds_difference")),
    Column("epsilon_spent", "ε the accountant reports", _epsilon_spent),
    Column("delta", "δ", lambda report: report_number(report, "privacy.delta")
           if _dp(report) else None),
)  # fmt: skip

# Identity columns, read from the config the cell ran with, and the grid settings they show.
_CONFIG_COLUMNS = ("method", "epsilon", "k", "fairness", "seed")
_MAPPED_SETTINGS = ("method", "privacy.epsilon", "per_class", "fairness", "seed")


@dataclass(frozen=True)
class StudyTable:
    """Rows of {column: value or None}, with the column order; `settings` are the columns
    that say what a cell ran (method, ε, k, fairness, seed and any other grid setting)."""

    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    settings: tuple[str, ...]


def _identity(cell: Cell) -> dict[str, Any]:
    config = cell.config
    return {
        "method": config.method,
        "epsilon": config.privacy.epsilon if config.privacy.enabled else None,
        "k": config.per_class,
        "fairness": config.fairness,
        "seed": config.seed,
    }


def _setting(cell: Cell, setting: str) -> Any:
    if setting in cell.settings:
        value = cell.settings[setting]
        return value if isinstance(value, str | int | float | bool) or value is None else str(value)
    return None


def study_table(cells: Sequence[Cell], outcomes: Mapping[str, CellOutcome]) -> StudyTable:
    """One row per cell: its grid settings, every measured column from its report.json (empty
    when absent), wall time (from DIR/timings) and status in this invocation."""
    extra = [s for s in unique_settings(cells) if s not in _MAPPED_SETTINGS]
    settings = (*_CONFIG_COLUMNS, *(axis_label(s) for s in extra))
    columns = (
        "cell",
        *settings,
        *(column.name for column in COLUMNS),
        "wall_s",
        "status",
    )
    rows = []
    for cell in cells:
        report = read_report(cell.config.out)
        outcome = outcomes.get(cell.id)
        timing = read_timing(cell)
        row: dict[str, Any] = {"cell": cell.id, **_identity(cell)}
        row.update({axis_label(s): _setting(cell, s) for s in extra})
        row.update({column.name: column.read(report) if report else None for column in COLUMNS})
        row["wall_s"] = report_number(timing, "wall_s") if timing else None
        row["status"] = outcome.status if outcome else ("reused" if report else None)
        rows.append(row)
    return StudyTable(columns, tuple(rows), settings)


def _text(value: Any, *, digits: int | None) -> str:
    """'' for None; floats rounded to `digits` decimals (None: shortest exact repr)."""
    if value is None:
        return ""
    if isinstance(value, float) and digits is not None:
        tiny = value != 0 and abs(value) < 10**-digits  # δ: 4.1e-05, not 0.000
        return f"{value:.1e}" if tiny else f"{value:.{digits}f}"
    return str(value)


def write_csv(table: StudyTable, path: Path) -> None:
    """CSV, full precision; empty fields where a report holds no value."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table.columns))
        writer.writeheader()
        for row in table.rows:
            writer.writerow({key: _text(row.get(key), digits=None) for key in table.columns})


def write_markdown(
    table: StudyTable,
    path: Path,
    *,
    title: str,
    intro: Sequence[str] = (),
    figures: Sequence[tuple[str, str]] = (),
) -> None:
    """study.md: a title, intro lines, the figures (caption, relative path), the table (3
    decimals; empty cells where a report holds no value), and what the columns mean."""
    lines = [f"# {title}", "", *intro]
    for caption, figure in figures:
        lines += ["", f"![{caption}]({figure})"]
    lines += [
        "",
        "| " + " | ".join(table.columns) + " |",
        "|" + "|".join("---" for _ in table.columns) + "|",
    ]
    for row in table.rows:
        lines.append("| " + " | ".join(_text(row.get(c), digits=3) for c in table.columns) + " |")
    lines += ["", "Columns (from each cell's report.json; empty: the report holds no value):", ""]
    lines += [f"- `{column.name}`: {column.meaning}" for column in COLUMNS]
    lines += [
        "- `wall_s`: seconds the cell took to compute (its run, not counting reuse)",
        "- `status`: ran (computed in the last invocation), reused (found finished), failed",
        "",
        "Utility and audit numbers are measured on private data and lie outside the DP "
        "guarantee (see each cell's report).",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
