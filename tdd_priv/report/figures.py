"""Figures for the human-readable report (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["UTILITY_SETS", "plot_utility", "shown_sets"]

# report.json utility key -> label shown to people, in display order.
UTILITY_SETS = {
    "synthetic": "synthetic (vectors)",
    "realized": "synthetic (texts)",
    "random": "random k / class",
    "full_data": "full private train",
}


def shown_sets(utility: dict[str, Any]) -> list[str]:
    """The evaluated sets worth showing; the realized texts only when they differ from the
    synthetic vectors (for coresets they are the same records)."""
    keys = [key for key in UTILITY_SETS if key in utility]
    if "realized" in keys and utility["realized"] == utility.get("synthetic"):
        keys.remove("realized")
    return keys


def plot_utility(utility: dict[str, Any], path: Path) -> None:
    """Test accuracy per head for each training set; dots are single models."""
    heads = list(utility["synthetic"]["by_head"])
    sets = shown_sets(utility)
    width = 0.8 / len(sets)
    figure, axes = plt.subplots(figsize=(8, 3.6), dpi=120)
    for i, key in enumerate(sets):
        for h, head in enumerate(heads):
            scores = utility[key]["by_head"][head]
            x = h + (i - (len(sets) - 1) / 2) * width
            axes.bar(x, scores["accuracy_mean"], width * 0.9, color=f"C{i}",
                     label=UTILITY_SETS[key] if h == 0 else None)  # fmt: skip
            axes.plot([x] * len(scores["accuracies"]), scores["accuracies"], "k.", ms=3)
    axes.set_xticks(range(len(heads)), heads)
    axes.set_ylabel("test accuracy")
    axes.set_ylim(0, 1)
    axes.set_title("Heads trained on each set, tested on the real test split")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
