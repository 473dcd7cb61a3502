"""report.md: the report for people, rendered from report.json's content."""

from __future__ import annotations

from typing import Any

from tdd_priv.report.figures import UTILITY_SETS, shown_sets

__all__ = ["render_markdown", "utility_rows"]


def utility_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(set label, "mean ± std (n models)") for every evaluated set, in display order."""
    utility = report["utility"]
    rows = []
    for key in shown_sets(utility):
        entry = utility[key]
        summary = f"{entry['accuracy_mean']:.3f} ± {entry['accuracy_std']:.3f}"
        rows.append((UTILITY_SETS[key], f"{summary} ({entry['n_models']} models)"))
    return rows


def render_markdown(report: dict[str, Any]) -> str:
    dataset, privacy, synthetic = report["dataset"], report["privacy"], report["synthetic"]
    encoder = report["encoder"]
    sizes = dataset["sizes"]
    protocol = report["utility"]["protocol"]
    heads = list(report["utility"]["synthetic"]["by_head"])
    lines = [
        f"# tdd-priv report — {report['run_id']}",
        "",
        "| | |",
        "|---|---|",
        f"| Dataset | {dataset['name']} ({sizes['rows']} rows; classes: "
        f"{', '.join(dataset['classes'])}) |",
        f"| Method | {report['method']['name']}, {synthetic['per_class']} per class "
        f"({synthetic['size']} texts, realized by {synthetic['realization']}) |",
        f"| Privacy | **{privacy['mode']}** — {privacy['statement']} |",
        f"| Encoder | {encoder['model']} (weights sha256 {encoder['model_sha256'][:12]}…) |",
        f"| Seed | {report['environment']['seed']} |",
        "",
        "## Utility",
        "",
        f"Test accuracy on the real test split ({protocol['test_split_size']} rows) of fresh "
        f"heads ({', '.join(heads)}; {protocol['seeds_per_head']} seeds each) trained on each set. "
        f"{protocol['note']}",
        "",
        "| trained on | accuracy | " + " | ".join(heads) + " |",
        "|---|---|" + "---|" * len(heads),
    ]
    for key in shown_sets(report["utility"]):
        label, entry = UTILITY_SETS[key], report["utility"][key]
        per_head = " | ".join(f"{entry['by_head'][head]['accuracy_mean']:.3f}" for head in heads)
        lines.append(
            f"| {label} | {entry['accuracy_mean']:.3f} ± {entry['accuracy_std']:.3f} | {per_head} |"
        )
    lines += [
        "",
        "![utility](figures/utility.png)",
        "",
        "## Data",
        "",
        f"Splits (seeded, recorded in `private/splits.json`, never released): "
        f"{sizes['members']} private training records (members), {sizes['audit']} held-out "
        f"audit records, {sizes['test']} test records, public pool of {sizes['public_pool']} "
        f"texts ({dataset['public_pool']['origin']}).",
        "",
        "Synthetic label counts: "
        + ", ".join(f"{name} {count}" for name, count in synthetic["label_counts"].items())
        + ".",
        "",
        "The SHA-256 of every released file is listed under `artifacts` in `report.json`.",
    ]
    return "\n".join(lines) + "\n"
