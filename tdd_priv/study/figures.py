"""A study's figures, drawn from its table only (matplotlib, no display needed).

Cells that differ only in their seed are one configuration: figures show the mean over seeds
with ± one standard deviation (of the per-seed means). Runs without DP sit at the right edge of
every ε axis, at a tick labelled "no DP".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from tdd_priv.evaluate import METRICS
from tdd_priv.study.table import StudyTable

__all__ = ["STUDY_FIGURES", "SeedSummary", "draw_study_figures", "summarize_over_seeds"]


@dataclass(frozen=True)
class SeedSummary:
    """One configuration (every setting but the seed): mean and std over its seeds."""

    settings: Mapping[str, Any]
    mean: Mapping[str, float | None]
    std: Mapping[str, float | None]
    seeds: int


def summarize_over_seeds(table: StudyTable, measured: Sequence[str]) -> list[SeedSummary]:
    """Group rows by every setting but `seed`; mean/std of each `measured` column over the rows
    that have it (None when none has it; std 0 for a single value)."""
    identity = [column for column in table.settings if column != "seed"]
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in table.rows:
        groups.setdefault(tuple(row.get(c) for c in identity), []).append(row)
    summaries = []
    for key, rows in groups.items():
        mean: dict[str, float | None] = {}
        std: dict[str, float | None] = {}
        for column in measured:
            values = [float(r[column]) for r in rows if isinstance(r.get(column), int | float)]
            mean[column] = float(np.mean(values)) if values else None
            std[column] = float(np.std(values)) if values else None
        summaries.append(SeedSummary(dict(zip(identity, key, strict=True)), mean, std, len(rows)))
    return summaries


def _series_label(settings: Mapping[str, Any], skip: Sequence[str]) -> str:
    parts = [str(settings["method"])]
    for column, value in settings.items():
        if column in ("method", *skip) or value is None:
            continue
        parts.append(f"{column}={value}")
    return ", ".join(parts)


def _epsilon_positions(summaries: Sequence[SeedSummary]) -> tuple[dict[Any, float], float]:
    """x position of each ε (log scale) and where runs without DP go."""
    epsilons = sorted({s.settings["epsilon"] for s in summaries if s.settings["epsilon"]})
    top = max(epsilons) if epsilons else 1.0
    return {eps: float(eps) for eps in epsilons}, top * 4.0


def _epsilon_axis(ax: Any, positions: Mapping[Any, float], no_dp_x: float, any_no_dp: bool) -> None:
    ax.set_xscale("log")
    ticks = [*positions.values(), *([no_dp_x] if any_no_dp else [])]
    labels = [f"{eps:g}" for eps in positions] + (["no DP"] if any_no_dp else [])
    if ticks:
        ax.set_xticks(ticks)
        ax.set_xticklabels(labels)
        ax.minorticks_off()
    ax.set_xlabel("ε (target)")
    ax.grid(True, alpha=0.3)


def _panels(summaries: Sequence[SeedSummary]) -> tuple[list[Any], Any, Any]:
    """One panel per k (sorted)."""
    ks = sorted({s.settings["k"] for s in summaries})
    fig, axes = plt.subplots(1, len(ks), figsize=(5.4 * len(ks), 5.0), squeeze=False, sharey=True)
    return ks, fig, axes[0]


def _series(
    summaries: Sequence[SeedSummary], k: Any, skip: Sequence[str]
) -> dict[str, list[SeedSummary]]:
    series: dict[str, list[SeedSummary]] = {}
    for summary in summaries:
        if summary.settings["k"] == k:
            series.setdefault(_series_label(summary.settings, skip), []).append(summary)
    return dict(sorted(series.items()))


def _x(summary: SeedSummary, positions: Mapping[Any, float], no_dp_x: float) -> float:
    eps = summary.settings["epsilon"]
    return positions[eps] if eps else no_dp_x


def _plot_against_epsilon(
    table: StudyTable, column: str, *, ylabel: str, title: str, baseline: str | None
) -> Any | None:
    measured = [c for c in (column, baseline) if c]
    summaries = [s for s in summarize_over_seeds(table, measured) if s.mean[column] is not None]
    if not summaries:
        return None
    positions, no_dp_x = _epsilon_positions(summaries)
    any_no_dp = any(not s.settings["epsilon"] for s in summaries)
    ks, fig, axes = _panels(summaries)
    colors = plt.get_cmap("tab10")
    for ax, k in zip(axes, ks, strict=True):
        for index, (label, group) in enumerate(_series(summaries, k, ("epsilon", "k")).items()):
            group = sorted(group, key=lambda s: _x(s, positions, no_dp_x))
            dp = [s for s in group if s.settings["epsilon"]]
            color = colors(index % 10)
            for part, style in ((dp, "-"), ([s for s in group if not s.settings["epsilon"]], "")):
                if not part:
                    continue
                ax.errorbar(
                    [_x(s, positions, no_dp_x) for s in part],
                    [s.mean[column] for s in part],
                    yerr=[s.std[column] or 0.0 for s in part],
                    color=color,
                    linestyle=style or "none",
                    marker="o",
                    capsize=3,
                    label=label if part is dp or not dp else None,
                )
        if baseline:
            _draw_baseline(ax, [s for s in summaries if s.settings["k"] == k], baseline, positions)
        _epsilon_axis(ax, positions, no_dp_x, any_no_dp)
        ax.set_title(f"{title}, k = {k} per class")
        # below the axes: inside, a legend hides points (the no-DP column sits at the edge)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    axes[0].set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def _draw_baseline(
    ax: Any, summaries: Sequence[SeedSummary], column: str, positions: Mapping[Any, float]
) -> None:
    """DP-SGD at each ε: the mean (± std) over every configuration at that ε (it does not
    depend on the distillation method)."""
    by_eps: dict[Any, list[float]] = {}
    for summary in summaries:
        eps, value = summary.settings["epsilon"], summary.mean[column]
        if eps and value is not None:
            by_eps.setdefault(eps, []).append(value)
    if not by_eps:
        return
    eps_sorted = sorted(by_eps)
    ax.errorbar(
        [positions[e] for e in eps_sorted],
        [float(np.mean(by_eps[e])) for e in eps_sorted],
        yerr=[float(np.std(by_eps[e])) for e in eps_sorted],
        color="black",
        linestyle="--",
        marker="x",
        capsize=3,
        label="DP-SGD, same ε (private train)",
    )


def plot_accuracy_vs_epsilon(table: StudyTable) -> Any | None:
    return _plot_against_epsilon(
        table,
        "realized_accuracy",
        ylabel="test accuracy (released texts)",
        title="accuracy vs ε",
        baseline="dp_sgd_accuracy",
    )


def plot_macro_f1_vs_epsilon(table: StudyTable) -> Any | None:
    """Macro-F1 of the released texts vs ε: every class counts alike, so a method that starves
    a rare class shows here even where its accuracy looks fine."""
    return _plot_against_epsilon(
        table,
        "realized_macro_f1",
        ylabel="test macro-F1 (released texts)",
        title="macro-F1 vs ε",
        baseline="dp_sgd_macro_f1",
    )


def _headline_name(table: StudyTable) -> str:
    """The headline metric's name when every cell's report leads with the same one."""
    metrics = {row.get("headline_metric") for row in table.rows} - {None}
    if len(metrics) == 1:
        metric = str(metrics.pop())
        return METRICS.get(metric, metric)
    return "headline metric"


def plot_fairness_vs_epsilon(table: StudyTable) -> Any | None:
    return _plot_against_epsilon(
        table,
        "fairness_accuracy_gap",
        ylabel="largest accuracy gap between groups",
        title="fairness gap vs ε",
        baseline=None,
    )


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points (risk, utility) no other point beats on both (lower risk, higher utility),
    sorted by risk."""
    front: list[tuple[float, float]] = []
    for risk, utility in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or utility > front[-1][1]:
            front.append((risk, utility))
    return front


def plot_pareto(table: StudyTable) -> Any | None:
    """Each configuration's released texts: their headline metric (accuracy or macro-F1, as
    the reports chose) against membership risk."""
    risk, utility = "mia_tpr_at_1pct_fpr", "realized_headline"
    if all(row.get(utility) is None for row in table.rows):  # reports without a headline
        utility = "realized_accuracy"
    summaries = [
        s
        for s in summarize_over_seeds(table, [risk, utility])
        if s.mean[risk] is not None and s.mean[utility] is not None
    ]
    if not summaries:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    methods = sorted({str(s.settings["method"]) for s in summaries})
    colors = plt.get_cmap("tab10")
    for summary in summaries:
        x, y = summary.mean[risk], summary.mean[utility]
        assert x is not None and y is not None
        color = colors(methods.index(str(summary.settings["method"])) % 10)
        dp = bool(summary.settings["epsilon"])
        ax.errorbar(
            x,
            y,
            xerr=summary.std[risk] or 0.0,
            yerr=summary.std[utility] or 0.0,
            color=color,
            marker="o" if dp else "s",
            markerfacecolor=color if dp else "white",
            capsize=2,
            elinewidth=0.7,
            ecolor=(*color[:3], 0.35),  # the points matter more than their spread
        )
        eps = summary.settings["epsilon"]
        ax.annotate(
            f"ε={eps:g}" if eps else "no DP",
            (x, y),
            textcoords="offset points",
            xytext=(4, 3),
            fontsize=6,
        )
    front = pareto_front([(s.mean[risk] or 0.0, s.mean[utility] or 0.0) for s in summaries])
    ax.step(
        [p[0] for p in front],
        [p[1] for p in front],
        where="post",
        color="gray",
        linestyle=":",
        label="Pareto front",
    )
    for method in methods:
        ax.plot([], [], "o", color=colors(methods.index(method) % 10), label=method)
    ax.plot([], [], "s", color="gray", markerfacecolor="white", label="no DP")
    ax.set_xlabel("membership inference TPR at 1 % FPR (lower is safer)")
    name = _headline_name(table) if utility == "realized_headline" else "accuracy"
    ax.set_ylabel(f"test {name} (released texts)")
    ax.set_title("utility vs membership risk (mean over seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


# name -> (caption, drawer); a drawer returns None when the table holds nothing to draw.
STUDY_FIGURES = {
    "accuracy_vs_epsilon": (
        "Accuracy vs ε per method, DP-SGD beside it (mean ± std over seeds)",
        plot_accuracy_vs_epsilon,
    ),
    "macro_f1_vs_epsilon": (
        "Macro-F1 vs ε per method, DP-SGD beside it (mean ± std over seeds)",
        plot_macro_f1_vs_epsilon,
    ),
    "pareto_utility_vs_mia": (
        "Utility (each report's headline metric) vs membership-inference TPR at 1 % FPR, with "
        "the Pareto front",
        plot_pareto,
    ),
    "fairness_gap_vs_epsilon": (
        "Largest accuracy gap between groups vs ε (mean ± std over seeds)",
        plot_fairness_vs_epsilon,
    ),
}


def draw_study_figures(table: StudyTable, folder: Path) -> list[tuple[str, Path]]:
    """Write every figure the table can support to `folder`/<name>.png; (caption, path) each."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (caption, draw) in STUDY_FIGURES.items():
        fig = draw(table)
        if fig is None:
            continue
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append((caption, path))
    return written
