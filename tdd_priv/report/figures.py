"""Figures for the human-readable report (matplotlib, no display needed), drawn from
report.json's content only (so a figure can never show what the report does not hold).

Figures live in a registry: each says which report section it belongs to, when it applies and
how to draw itself. Audit sections add theirs with `register_figure` (ROC, accuracy by group,
toxicity histogram, ...); `draw_figures` writes every applicable one into `figures/`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from tdd_priv.evaluate import METRICS, PER_MODEL_KEYS
from tdd_priv.privacy.ledger import AccountingError, compute_epsilon
from tdd_priv.report.escape import printable

__all__ = [
    "BASELINE_SETS",
    "FIGURES",
    "FLOOR_WORDS",
    "UTILITY_SETS",
    "Figure",
    "draw_figures",
    "floor_words",
    "headline_metric",
    "metric_name",
    "plot_recall_by_class",
    "plot_utility",
    "register_figure",
    "shown_sets",
    "utility_label",
]


def _plain(name: str) -> str:
    """A name from the data as literal figure text: control characters become spaces and `$`
    is escaped, so matplotlib neither warns about glyphs nor reads it as mathtext."""
    return printable(name).replace("$", r"\$")


# report.json utility key -> label shown to people, in display order.
UTILITY_SETS = {
    "synthetic": "synthetic (vectors)",
    "realized": "synthetic (texts)",
    "realized_hard_labels": "synthetic (texts, hard labels)",
    "random": "random k / class",
    "herding": "herding k / class",
    "kcenter": "k-center k / class",
    "dp_sgd": "DP-SGD on private train (same ε)",
    "full_data": "full private train",
    "majority_class": "majority-class predictor",
}
# The sets a released set is compared with (not what the run releases).
BASELINE_SETS = ("random", "herding", "kcenter", "dp_sgd", "full_data")
# How a set whose headline does not beat `utility.protocol.headline_floor` is described.
FLOOR_WORDS = {
    "majority_class": "at or below the majority-class predictor",
    "chance": "at or below chance (1/C)",
}


def utility_label(key: str) -> str:
    """How an evaluated set of report.json's `utility` is called in the reports."""
    return UTILITY_SETS.get(key, key.replace("_", " "))


def metric_name(metric: str) -> str:
    """How a metric of report.json's utility entries is called ("macro_f1" -> "macro-F1")."""
    return METRICS.get(metric, metric.replace("_", " "))


def headline_metric(utility: Mapping[str, Any]) -> str:
    """The metric the report leads with: `utility.protocol.headline_metric`, accuracy for
    reports written before there was a choice."""
    return str(utility.get("protocol", {}).get("headline_metric", "accuracy"))


def floor_words(utility: Mapping[str, Any], key: str) -> str | None:
    """Why set `key` is marked ("at or below the majority-class predictor"), or None when its
    headline beats the floor (or the report predates floors)."""
    if not utility.get(key, {}).get("at_or_below_floor"):
        return None
    source = utility.get("protocol", {}).get("headline_floor", {}).get("source")
    return FLOOR_WORDS.get(source, "at or below the floor")


Report = Mapping[str, Any]


@dataclass(frozen=True)
class Figure:
    """A report figure: `figures/<name>.png`, shown in report section `section`."""

    name: str
    section: str
    caption: str
    applies: Callable[[Report], bool]
    draw: Callable[[Report, Path], None]


FIGURES: dict[str, Figure] = {}


def register_figure(figure: Figure) -> Figure:
    """Add a figure to the registry; names are unique."""
    if figure.name in FIGURES:
        raise ValueError(f"a figure named {figure.name!r} is already registered")
    FIGURES[figure.name] = figure
    return figure


def draw_figures(report: Report, folder: Path) -> list[dict[str, str]]:
    """Draw every applicable registered figure into `folder` (the run's `figures/`).

    Returns report.json's `figures` entries: name, path (relative to the run folder), section
    and caption, in registry order.
    """
    folder.mkdir(exist_ok=True)
    drawn = []
    for figure in FIGURES.values():
        if not figure.applies(report):
            continue
        figure.draw(report, folder / f"{figure.name}.png")
        drawn.append(
            {
                "name": figure.name,
                "path": f"{folder.name}/{figure.name}.png",
                "section": figure.section,
                "caption": figure.caption,
            }
        )
    return drawn


def _save(figure: Any, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


# --- utility -------------------------------------------------------------------------------------


def shown_sets(utility: Mapping[str, Any]) -> list[str]:
    """The evaluated sets worth showing; the realized texts only when they differ from the
    synthetic vectors (for coresets they are the same records)."""
    keys = [key for key in UTILITY_SETS if key in utility]
    keys += [key for key, entry in utility.items() if key not in keys and "accuracy_mean" in entry]
    if "realized" in keys and utility["realized"] == utility.get("synthetic"):
        keys.remove("realized")
    return keys


def _utility_metrics(utility: Mapping[str, Any]) -> list[str]:
    """The metrics the report holds for the synthetic set, the headline first."""
    headline = headline_metric(utility)
    held = [m for m in METRICS if f"{m}_mean" in utility["synthetic"]] or ["accuracy"]
    return [headline, *(m for m in held if m != headline)] if headline in held else held


def plot_utility(utility: Mapping[str, Any], path: Path) -> None:
    """One panel per metric (the headline first): the metric per head for each training set,
    bars the mean and dots single models; dashed, the majority-class predictor; dotted, chance
    (1/C, for macro-F1 and balanced accuracy)."""
    heads = list(utility["synthetic"].get("by_head", {}))
    sets = [key for key in shown_sets(utility) if key != "majority_class"]
    metrics = _utility_metrics(utility)
    width = 0.8 / len(sets)
    figure, panels = plt.subplots(
        1, len(metrics), figsize=(4.2 * len(metrics) + 2.2, 3.6), dpi=120, squeeze=False
    )
    classes = len(utility["synthetic"].get("recall_by_class", {}))
    for axes, metric in zip(panels[0], metrics, strict=True):
        for i, key in enumerate(sets):
            by_head = utility[key].get("by_head", {})
            for h, head in enumerate(heads):
                scores = by_head.get(head, {})
                if f"{metric}_mean" not in scores:
                    continue
                x = h + (i - (len(sets) - 1) / 2) * width
                axes.bar(
                    x,
                    scores[f"{metric}_mean"],
                    width * 0.9,
                    color=f"C{i}",
                    label=utility_label(key) if h == 0 else None,
                )
                values = scores.get(PER_MODEL_KEYS[metric], [])
                axes.plot([x] * len(values), values, "k.", ms=3)
        majority = utility.get("majority_class", {}).get(f"{metric}_mean")
        if majority is not None:
            axes.axhline(
                majority, color="0.3", ls="--", lw=1, label=utility_label("majority_class")
            )
        if metric != "accuracy" and classes:
            axes.axhline(1.0 / classes, color="0.3", ls=":", lw=1, label="chance (1/C)")
        axes.set_xticks(range(len(heads)), heads)
        headline = " (headline)" if metric == metrics[0] and len(metrics) > 1 else ""
        axes.set_ylabel(f"test {metric_name(metric)}{headline}")
        axes.set_ylim(0, 1)
    legend: dict[str, Any] = {}  # label -> handle, over every panel (chance: not on accuracy)
    for axes in panels[0]:
        for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    figure.suptitle("Heads trained on each set, tested on the real test split", fontsize=10)
    panels[0][-1].legend(
        list(legend.values()),
        list(legend),
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
    )
    _save(figure, path)


register_figure(
    Figure(
        name="utility",
        section="utility",
        caption="Test metrics of fresh heads trained on each set, the headline metric first "
        "(bars: mean; dots: models; dashed: the majority-class predictor; dotted: chance).",
        applies=lambda report: "synthetic" in report.get("utility", {}),
        draw=lambda report, path: plot_utility(report["utility"], path),
    )
)


def plot_recall_by_class(utility: Mapping[str, Any], path: Path) -> None:
    """Mean test recall on each class (columns) of heads trained on each set (rows): a class
    no model of a set predicts is a 0 in its row."""
    sets = [
        key
        for key in shown_sets(utility)
        if key != "majority_class" and utility[key].get("recall_by_class")
    ]
    classes = list(utility["synthetic"]["recall_by_class"])
    grid = [
        [utility[key]["recall_by_class"].get(name, {}).get("mean", math.nan) for name in classes]
        for key in sets
    ]
    labelled = len(classes) <= 40
    figure, axes = plt.subplots(
        figsize=(min(max(3.5 + 0.45 * len(classes), 6.0), 14), 1.4 + 0.4 * len(sets)), dpi=120
    )
    image = axes.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    if len(classes) <= 12:  # few cells: write the recall into each
        for row, values in enumerate(grid):
            for column, value in enumerate(values):
                shade = "white" if value < 0.5 else "black"
                axes.text(
                    column, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color=shade
                )
    axes.set_yticks(range(len(sets)), [utility_label(key) for key in sets], fontsize=8)
    if labelled:
        axes.set_xticks(
            range(len(classes)), [_plain(c) for c in classes], rotation=45, ha="right", fontsize=7
        )
    else:
        axes.set_xlabel(f"{len(classes)} classes (names in report.json)")
        axes.set_xticks([])
    figure.colorbar(image, ax=axes, label="recall", fraction=0.03)
    axes.set_title("Test recall on each class", fontsize=10)
    _save(figure, path)


register_figure(
    Figure(
        name="utility_recall",
        section="utility",
        caption="Mean test recall on each class of heads trained on each set: a class no model "
        "of a set predicts shows as 0.",
        applies=lambda report: bool(
            report.get("utility", {}).get("synthetic", {}).get("recall_by_class")
        ),
        draw=lambda report, path: plot_recall_by_class(report["utility"], path),
    )
)


# --- privacy ledger ------------------------------------------------------------------------------


def _cumulative_epsilon(privacy: Mapping[str, Any]) -> list[float] | None:
    """ε after composing the first 1, 2, ... mechanisms (None if the accountant fails)."""
    mechanisms = list(privacy["mechanisms"])
    delta = privacy.get("delta")
    accountant: Literal["rdp", "prv"] = "prv" if privacy.get("accountant") == "prv" else "rdp"
    if not delta:
        return None
    try:
        epsilons = [
            compute_epsilon(mechanisms[: i + 1], delta=delta, accountant=accountant)
            for i in range(len(mechanisms))
        ]
    except (AccountingError, ValueError):
        return None
    return epsilons if all(math.isfinite(e) for e in epsilons) else None


def plot_privacy_ledger(privacy: Mapping[str, Any], path: Path) -> None:
    """ε spent after composing each mechanism of the ledger in turn, with the stated ε as a
    dashed line (each mechanism's noise multiplier instead, should the accountant fail)."""
    mechanisms = list(privacy["mechanisms"])
    shown = mechanisms[:40]
    labels = [
        f"{m['name']}\nσ={m['noise_multiplier']:.3g} q={m['sample_rate']:.3g} T={m['steps']}"
        for m in shown
    ]
    cumulative = _cumulative_epsilon({**privacy, "mechanisms": shown})
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.45 * len(shown)), dpi=120)
    rows = range(len(shown))
    if cumulative is not None:
        axes.barh(rows, cumulative, color="C0")
        axes.set_xlabel(f"ε after composing mechanisms 1..i (δ = {privacy['delta']:.1e})")
        if privacy.get("epsilon"):
            axes.axvline(privacy["epsilon"], color="C3", ls="--", label="stated ε")
            axes.legend(fontsize=8, loc="lower left", bbox_to_anchor=(1.01, 0.0), frameon=False)
        axes.set_title("Privacy ledger: cumulative ε")
    else:
        axes.barh(rows, [m["noise_multiplier"] for m in shown], color="C0")
        axes.set_xlabel("noise multiplier σ")
        axes.set_title("Privacy ledger: noise per mechanism")
    axes.set_yticks(list(rows), labels, fontsize=7)
    axes.invert_yaxis()
    if len(mechanisms) > len(shown):
        axes.text(
            1.0,
            -0.12,
            f"first {len(shown)} of {len(mechanisms)} mechanisms shown",
            transform=axes.transAxes,
            ha="right",
            fontsize=7,
        )
    _save(figure, path)


register_figure(
    Figure(
        name="privacy_ledger",
        section="privacy",
        caption="Each mechanism of the privacy ledger and the ε spent once it is composed.",
        applies=lambda report: bool(report.get("privacy", {}).get("mechanisms")),
        draw=lambda report, path: plot_privacy_ledger(report["privacy"], path),
    )
)


# --- distillation --------------------------------------------------------------------------------


def plot_loss(loss_history: list[float | None], path: Path, *, method: str) -> None:
    """The distillation objective per outer step (log scale when it spans a decade); steps
    whose loss was not finite (null in report.json) are gaps."""
    figure, axes = plt.subplots(figsize=(8, 3.0), dpi=120)
    values = [math.nan if v is None else v for v in loss_history]
    axes.plot(range(1, len(values) + 1), values, color="C0", lw=1.2)
    positive = [v for v in values if v > 0]
    if len(positive) == len(values) and max(positive) > 10 * min(positive):
        axes.set_yscale("log")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(f"Distillation loss ({method})")
    axes.grid(alpha=0.3)
    _save(figure, path)


register_figure(
    Figure(
        name="loss",
        section="method",
        caption="The distillation method's objective over its optimisation steps.",
        applies=lambda report: bool(report.get("method", {}).get("loss_history")),
        draw=lambda report, path: plot_loss(
            list(report["method"]["loss_history"]), path, method=report["method"]["name"]
        ),
    )
)


# --- toxicity ------------------------------------------------------------------------------------


def plot_toxicity(toxicity: Mapping[str, Any], path: Path) -> None:
    """Histogram of each scorer label's scores: the texts screened (before filtering) and the
    texts released, with the label's threshold as a dashed line."""
    histogram = toxicity["score_histogram"]
    edges = histogram["bin_edges"]
    labels = list(histogram["screened"])
    shown = labels[:6]
    figure, axes_row = plt.subplots(
        1, len(shown), figsize=(min(4.0 * len(shown), 12), 3.0), dpi=120, squeeze=False
    )
    widths = [edges[i + 1] - edges[i] for i in range(len(edges) - 1)]
    for axes, label in zip(axes_row[0], shown, strict=True):
        for key, colour, name in (("screened", "C1", "screened"), ("released", "C0", "released")):
            axes.bar(
                edges[:-1],
                histogram[key][label],
                width=widths,
                align="edge",
                color=colour,
                alpha=0.55,
                label=name,
            )
        threshold = toxicity.get("thresholds", {}).get(label)
        if threshold is not None:
            axes.axvline(threshold, color="C3", ls="--", lw=1, label="threshold")
        axes.set_xlim(0, 1)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel(f"{label} score")
        axes.set_title(label, fontsize=9)
    axes_row[0][0].set_ylabel("texts")
    axes_row[0][-1].legend(fontsize=7, loc="upper right", frameon=False)
    scorer = toxicity.get("scorer", {}).get("name", "?")
    figure.suptitle(f"Toxicity scores ({scorer}, mode {toxicity.get('mode', '?')})", fontsize=10)
    _save(figure, path)


register_figure(
    Figure(
        name="toxicity",
        section="toxicity",
        caption="Toxicity scores of the realized texts before screening and of the released "
        "texts, per scorer label; dashed: the threshold.",
        applies=lambda report: "score_histogram" in report.get("audits", {}).get("toxicity", {}),
        draw=lambda report, path: plot_toxicity(report["audits"]["toxicity"], path),
    )
)


# --- audits --------------------------------------------------------------------------------------


def plot_membership_roc(membership: Mapping[str, Any], path: Path) -> None:
    """ROC of each membership attack on log-log axes (low FPRs are what matter), with chance."""
    figure, axes = plt.subplots(figsize=(5.2, 4.2), dpi=120)
    lowest = 1.0
    for i, (name, roc) in enumerate(membership["roc"].items()):
        points = [(f, t) for f, t in zip(roc["fpr"], roc["tpr"], strict=True) if f > 0 and t > 0]
        if not points:
            continue
        fpr, tpr = zip(*points, strict=True)
        lowest = min(lowest, *fpr)
        auc = membership.get("attacks", {}).get(name, {}).get("auc")
        label = f"{name} (AUC {auc:.3f})" if auc is not None else name
        axes.plot(fpr, tpr, color=f"C{i}", lw=1.3, label=label, drawstyle="steps-post")
    axes.plot([lowest, 1.0], [lowest, 1.0], "k--", lw=0.8, label="chance")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(lowest, 1.0)
    axes.set_ylim(lowest, 1.05)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("Membership inference ROC (log-log)")
    axes.legend(fontsize=7, loc="lower right", frameon=False)
    axes.grid(alpha=0.3, which="both")
    _save(figure, path)


register_figure(
    Figure(
        name="membership_roc",
        section="membership",
        caption="ROC of each membership-inference attack on log-log axes; the dashed line is "
        "chance. What matters is the TPR at low FPR.",
        applies=lambda report: bool(report.get("audits", {}).get("membership", {}).get("roc")),
        draw=lambda report, path: plot_membership_roc(report["audits"]["membership"], path),
    )
)


def plot_accuracy_by_group(fairness: Mapping[str, Any], path: Path) -> None:
    """Test accuracy per group of the model trained on the release and of the one trained on
    full data, for each group view (at most three); hatched bars: too few examples."""
    views = list(fairness["by"].items())[:3]
    figure, axes_row = plt.subplots(
        1, len(views), figsize=(min(5.0 * len(views), 14), 3.6), dpi=120, squeeze=False
    )
    for axes, (view, entry) in zip(axes_row[0], views, strict=True):
        groups = list(entry["synthetic"]["groups"])
        for i, model in enumerate(("synthetic", "full_data")):
            by_group = entry[model]["groups"]
            for g, group in enumerate(groups):
                metrics = by_group[group]
                axes.bar(
                    g + (i - 0.5) * 0.4,
                    metrics.get("accuracy") or 0.0,
                    0.38,
                    color=f"C{i}",
                    hatch="//" if metrics.get("too_few_examples") else None,
                    label=utility_label(model) if g == 0 else None,
                )
        axes.set_xticks(
            range(len(groups)), [_plain(g) for g in groups], rotation=45, ha="right", fontsize=7
        )
        axes.set_ylim(0, 1)
        axes.set_title(view, fontsize=9)
    axes_row[0][0].set_ylabel("test accuracy")
    axes_row[0][-1].legend(fontsize=7, loc="lower right", frameon=False)
    figure.suptitle("Accuracy by group (hatched: too few test examples)", fontsize=10)
    _save(figure, path)


register_figure(
    Figure(
        name="fairness_accuracy",
        section="fairness",
        caption="Test accuracy by group of a model trained on the released set and of one "
        "trained on the full private data.",
        applies=lambda report: bool(report.get("audits", {}).get("fairness", {}).get("by")),
        draw=lambda report, path: plot_accuracy_by_group(report["audits"]["fairness"], path),
    )
)
