"""The leaderboard: every cell of every dataset's study, aggregated over runs, with its peers.

One row per (dataset, method, ε, k): the dataset's headline metric (macro-F1 where its classes
are imbalanced, else accuracy: `utility.protocol.headline_metric`) of heads trained on the
released texts, mean ± std over runs (seeds), the gap to heads trained on the full private data
and to DP-SGD at the same ε (both measured in the same runs), and the time per cell. Peer rows per
dataset: full data, the majority-class predictor, DP-SGD at each ε and any external release
scored under the same protocol. Written as CSV, JSON, Markdown and HTML, with figures (the metric
against k per dataset; against ε at one k).
"""

from __future__ import annotations

import csv
import html
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tdd_priv.evaluate import METRICS
from tdd_priv.report.escape import markdown_text, protect
from tdd_priv.report.figures import headline_metric

__all__ = [
    "CellResult",
    "Leaderboard",
    "Row",
    "cell_result",
    "leaderboard",
    "write_leaderboard",
]


@dataclass(frozen=True)
class CellResult:
    """What one cell measured (None where its report holds no such number)."""

    dataset: str
    method: str
    epsilon: float | None
    k: int
    seed: int
    metric: str
    texts: float | None
    vectors: float | None
    full_data: float | None
    dp_sgd: float | None
    majority: float | None
    wall_s: float | None
    texts_by: str


def _value(utility: Mapping[str, Any], key: str, metric: str) -> float | None:
    entry = utility.get(key)
    if not isinstance(entry, Mapping):
        return None
    value = entry.get(f"{metric}_mean")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def cell_result(
    dataset: str,
    settings: Mapping[str, Any],
    report: Mapping[str, Any],
    timing: Mapping[str, Any] | None,
) -> CellResult:
    """A cell's result from its grid settings, report.json and timing."""
    utility = report["utility"]
    metric = headline_metric(utility)
    synthetic = report.get("synthetic", {})
    texts_by = str(synthetic.get("texts_fitted_to") or synthetic.get("realization") or "")
    epsilon = settings.get("privacy.epsilon")
    return CellResult(
        dataset=dataset,
        method=str(settings.get("method", report["method"]["name"])),
        epsilon=None if epsilon is None else float(epsilon),
        k=int(settings.get("per_class", report["method"]["per_class"])),
        seed=int(settings.get("seed", report["environment"]["seed"])),
        metric=metric,
        texts=_value(utility, "realized", metric),
        vectors=_value(utility, "synthetic", metric),
        full_data=_value(utility, "full_data", metric),
        dp_sgd=_value(utility, "dp_sgd", metric),
        majority=_value(utility, "majority_class", metric),
        wall_s=float(timing["wall_s"]) if timing and "wall_s" in timing else None,
        texts_by=texts_by,
    )


@dataclass(frozen=True)
class Row:
    """One leaderboard row. `mean`/`std`: the headline metric over `runs`; `gap_full` and
    `gap_dp_sgd`: the mean per-run difference to full data and to DP-SGD at the same ε."""

    dataset: str
    method: str
    epsilon: float | None
    k: int | None
    metric: str
    runs: int
    mean: float | None
    std: float | None
    vectors_mean: float | None = None
    gap_full: float | None = None
    gap_dp_sgd: float | None = None
    time_s: float | None = None
    kind: str = "method"  # method | reference | peer | external
    texts_by: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _std(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.pstdev(present) if present else None


def _gap(results: Sequence[CellResult], other: str) -> float | None:
    return _mean(
        r.texts - getattr(r, other)
        for r in results
        if r.texts is not None and getattr(r, other) is not None
    )


@dataclass(frozen=True)
class Leaderboard:
    """Every row, and per dataset its headline metric."""

    rows: tuple[Row, ...]
    metrics: Mapping[str, str] = field(default_factory=dict)

    def for_dataset(self, dataset: str) -> list[Row]:
        return [row for row in self.rows if row.dataset == dataset]


def leaderboard(
    results: Sequence[CellResult], externals: Sequence[Row] = (), methods: Sequence[str] = ()
) -> Leaderboard:
    """Aggregate cell results over runs, and add the peers each dataset's cells measured."""
    groups: dict[tuple[str, str, float | None, int], list[CellResult]] = defaultdict(list)
    for result in results:
        groups[(result.dataset, result.method, result.epsilon, result.k)].append(result)
    rows = []
    for (dataset, method, epsilon, k), group in sorted(groups.items(), key=_group_order):
        rows.append(
            Row(
                dataset=dataset,
                method=method,
                epsilon=epsilon,
                k=k,
                metric=group[0].metric,
                runs=len(group),
                mean=_mean(r.texts for r in group),
                std=_std(r.texts for r in group),
                vectors_mean=_mean(r.vectors for r in group),
                gap_full=_gap(group, "full_data"),
                gap_dp_sgd=_gap(group, "dp_sgd") if epsilon is not None else None,
                time_s=_mean(r.wall_s for r in group),
                kind="method" if (not methods or method in methods) else "reference",
                texts_by=group[0].texts_by,
            )
        )
    rows += _peers(results)
    rows += list(externals)
    metrics = {r.dataset: r.metric for r in results}
    return Leaderboard(tuple(rows), metrics)


def _group_order(item: tuple[tuple[str, str, float | None, int], list[CellResult]]) -> tuple:
    (dataset, method, epsilon, k), _ = item
    return (dataset, method, math.inf if epsilon is None else epsilon, k)


def _per_seed(results: Sequence[CellResult], attribute: str) -> list[float]:
    """One value per distinct seed (a peer depends on a run's data and seed, not its cell)."""
    by_seed = {r.seed: getattr(r, attribute) for r in results}
    return [value for value in by_seed.values() if value is not None]


def _peers(results: Sequence[CellResult]) -> list[Row]:
    """Full data, majority class and DP-SGD at each ε, per dataset, averaged over seeds."""
    rows = []
    for dataset in sorted({r.dataset for r in results}):
        mine = [r for r in results if r.dataset == dataset]
        metric = mine[0].metric
        peers: list[tuple[str, float | None, list[float]]] = [
            ("full data", None, _per_seed(mine, "full_data")),
            ("majority class", None, _per_seed(mine, "majority")),
        ]
        for epsilon in sorted({r.epsilon for r in mine if r.epsilon is not None}):
            at = [r for r in mine if r.epsilon == epsilon]
            peers.append(("DP-SGD", epsilon, _per_seed(at, "dp_sgd")))
        rows += [
            Row(dataset, name, epsilon, None, metric, len(values), _mean(values), _std(values),
                kind="peer")
            for name, epsilon, values in peers
            if values
        ]  # fmt: skip
    return rows


# --- writing ----------------------------------------------------------------------------------


def _eps(epsilon: float | None) -> str:
    return "∞ (no DP)" if epsilon is None else f"{epsilon:g}"


def _score(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None and std > 0 else "")


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:+.1f}"


def _table(rows: Sequence[Row]) -> tuple[list[str], list[list[str]]]:
    header = ["method", "ε", "k", "runs", "score", "vectors", "vs full data (points)",
              "vs DP-SGD (points)", "s / cell", "texts by"]  # fmt: skip
    # a row that does not beat the majority-class predictor is marked, in words
    floor = next((r.mean for r in rows if r.kind == "peer" and r.method == "majority class"), None)

    def score(row: Row) -> str:
        shown = _score(row.mean, row.std)
        below = (
            row.kind != "peer" and row.mean is not None and floor is not None and row.mean <= floor
        )
        return shown + (" (≤ majority class)" if below else "")

    body = [
        [
            row.method,
            "" if row.kind == "peer" and row.epsilon is None else _eps(row.epsilon),
            "" if row.k is None else str(row.k),
            str(row.runs),
            score(row),
            "—" if row.vectors_mean is None else f"{row.vectors_mean:.3f}",
            _signed(row.gap_full),
            _signed(row.gap_dp_sgd),
            "—" if row.time_s is None else f"{row.time_s:.0f}",
            row.texts_by,
        ]
        for row in rows
    ]
    return header, body


def _markdown(board: Leaderboard, suite: Mapping[str, Any], figures: Sequence[Path]) -> str:
    lines = [
        f"# Leaderboard — {markdown_text(protect(str(suite.get('name', 'benchmark'))))}",
        "",
        "Score: the dataset's headline metric of fresh heads trained on the released texts "
        "(with their soft labels, if any) and tested on the real test split, mean ± std over "
        "runs; `vs full data` / `vs DP-SGD`: the mean per-run difference, in points, to heads "
        "trained on all private training records and to DP-SGD on them at the same ε. "
        "Peers: full data, the majority-class predictor, DP-SGD per ε; external releases "
        "scored the same way. See docs/benchmarks/README.md for the protocol.",
        "",
    ]
    for dataset in sorted({row.dataset for row in board.rows}):
        metric = board.metrics.get(dataset, "accuracy")
        lines += [f"## {markdown_text(protect(dataset))} — {METRICS.get(metric, metric)}", ""]
        header, body = _table(board.for_dataset(dataset))
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(markdown_text(protect(c), table=True) for c in row) + " |"
                  for row in body]  # fmt: skip
        lines.append("")
        for figure in figures:
            if figure.name.startswith(f"{dataset}-"):
                lines += [f"![{figure.stem}](figures/{figure.name})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _html(board: Leaderboard, suite: Mapping[str, Any]) -> str:
    sections = []
    for dataset in sorted({row.dataset for row in board.rows}):
        header, body = _table(board.for_dataset(dataset))
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body
        )
        metric = board.metrics.get(dataset, "accuracy")
        sections.append(
            f"<h2>{html.escape(dataset)} — {html.escape(METRICS.get(metric, metric))}</h2>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        )
    title = html.escape(f"Leaderboard — {suite.get('name', 'benchmark')}")
    style = (
        "body{font:14px/1.5 sans-serif;margin:24px}table{border-collapse:collapse}"
        "td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}"
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{style}</style></head><body><h1>{title}</h1>{''.join(sections)}</body></html>\n"
    )


def _line(rows: Iterable[Row], x: str) -> tuple[list[float], list[float], list[float]]:
    """(x, mean, std) of rows that have a mean, sorted by x."""
    points = sorted(
        (float(getattr(row, x)), row.mean, row.std or 0.0)
        for row in rows
        if row.mean is not None and getattr(row, x) is not None
    )
    return [p[0] for p in points], [p[1] for p in points], [p[2] for p in points]


def _epsilon_order(epsilon: float | None) -> float:
    return math.inf if epsilon is None else epsilon


def _figures(board: Leaderboard, folder: Path) -> list[Path]:
    """Per dataset: the score against k (one panel per ε), and against ε at the k nearest 10."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for dataset in sorted({row.dataset for row in board.rows}):
        rows = [r for r in board.for_dataset(dataset) if r.k is not None and r.mean is not None]
        if not rows:
            continue
        metric = METRICS.get(board.metrics.get(dataset, "accuracy"), "score")
        epsilons = sorted({r.epsilon for r in rows}, key=_epsilon_order)
        figure, axes = plt.subplots(
            1, len(epsilons), figsize=(4.2 * len(epsilons), 3.4), squeeze=False, sharey=True
        )
        for axis, epsilon in zip(axes[0], epsilons, strict=True):
            for method in sorted({r.method for r in rows if r.epsilon == epsilon}):
                xs, means, stds = _line(
                    (r for r in rows if r.epsilon == epsilon and r.method == method), "k"
                )
                axis.errorbar(xs, means, yerr=stds, marker="o", ms=3, capsize=2, label=method)
            for peer in board.for_dataset(dataset):
                shown = peer.epsilon is None or peer.epsilon == epsilon
                if peer.kind == "peer" and peer.mean is not None and shown:
                    axis.axhline(peer.mean, ls="--", lw=0.8, color="grey")
                    axis.text(min(xs or [1.0]), peer.mean, peer.method, fontsize=7, color="grey")
            axis.set_xscale("log")
            axis.set_xlabel("k per class")
            axis.set_title(f"ε = {_eps(epsilon)}")
            axis.grid(alpha=0.3)
        axes[0][0].set_ylabel(metric)
        axes[0][-1].legend(fontsize=7)
        figure.suptitle(f"{dataset}: {metric} of the released texts against k")
        figure.tight_layout()
        path = folder / f"{dataset}-vs-k.png"
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
        written += _vs_epsilon(board, dataset, rows, metric, folder)
    return written


def _vs_epsilon(
    board: Leaderboard, dataset: str, rows: Sequence[Row], metric: str, folder: Path
) -> list[Path]:
    finite = [r for r in rows if r.epsilon is not None]
    if len({r.epsilon for r in finite}) < 2:
        return []
    k = min({r.k for r in finite if r.k is not None}, key=lambda value: abs(value - 10))
    figure, axis = plt.subplots(figsize=(5.5, 3.6))
    for method in sorted({r.method for r in finite}):
        xs, means, stds = _line((r for r in finite if r.method == method and r.k == k), "epsilon")
        axis.errorbar(xs, means, yerr=stds, marker="o", ms=3, capsize=2, label=method)
    xs, means, _ = _line((r for r in board.for_dataset(dataset) if r.method == "DP-SGD"), "epsilon")
    if xs:
        axis.plot(xs, means, "k--", label="DP-SGD")
    axis.set_xscale("log")
    axis.set_xlabel("ε")
    axis.set_ylabel(metric)
    axis.set_title(f"{dataset}: {metric} against ε at k = {k}")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    path = folder / f"{dataset}-vs-epsilon.png"
    figure.savefig(path)
    plt.close(figure)
    return [path]


def write_leaderboard(
    out: Path, board: Leaderboard, suite: Mapping[str, Any], metadata: Mapping[str, Any]
) -> list[Path]:
    """Write leaderboard.{csv,json,md,html} and figures/ into `out`; returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(board, out / "figures")
    rows = [row.to_json() for row in board.rows]
    with (out / "leaderboard.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(Row.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(rows)
    payload = {
        "suite": dict(suite),
        "metadata": dict(metadata),
        "metrics": dict(board.metrics),
        "rows": rows,
    }
    (out / "leaderboard.json").write_text(
        json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    (out / "leaderboard.md").write_text(_markdown(board, suite, figures), encoding="utf-8")
    (out / "leaderboard.html").write_text(_html(board, suite), encoding="utf-8")
    return [out / f"leaderboard.{ext}" for ext in ("csv", "json", "md", "html")] + figures
