"""The detox step: score the released texts for toxicity, then filter-and-replace or flag them.

The scorer comes from the caller (`Extensions.toxicity_scorers`, built by flows from
`audits.toxicity`); this module only applies it. A text is *over threshold* when any of the
scorer's labels scores at or above that label's threshold.

- `filter`: each over-threshold text not of an exempt class is replaced by the first clean
  candidate in its slot's ranked spares (`RealizedSet.spares`: same source, same class, ranked by
  the realizer), so the set keeps k per class. Only the realized set's own source is searched,
  so a public realization stays public (DP post-processing). A slot whose spares are exhausted
  is dropped and reported as missing.
- `flag`: texts are kept; over-threshold ones are marked (`flagged` in synthetic/data.jsonl).

Either way the result carries report.json's `audits.toxicity` section (`RealizedSet.screening`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tdd_priv.config import DetoxConfig
from tdd_priv.errors import ConfigError
from tdd_priv.extensions import ToxicityScorer
from tdd_priv.realize import RealizedSet

__all__ = ["HISTOGRAM_BINS", "Candidates", "resolve_thresholds", "screen"]

HISTOGRAM_BINS = 20  # equal-width score bins over [0, 1] in the report's histogram
_BATCH = 16  # spare candidates scored per scorer call while searching for a clean one


@dataclass(frozen=True)
class Candidates:
    """The texts that `RealizedSet.rows` and `.spares` index (the public pool, or the private
    members for a coreset), their embeddings (n, d), and per group column each row's group
    (private members only: public texts have no groups). `public_rows`: the rows index an
    external public pool, so the report may name them (never rows of the user's data)."""

    texts: Sequence[str]
    embeddings: np.ndarray
    groups: Mapping[str, Sequence[str]] | None = None
    public_rows: bool = False


def resolve_thresholds(config: DetoxConfig, labels: Sequence[str]) -> np.ndarray:
    """(L,) threshold per scorer label; ConfigError for a threshold naming an unknown label."""
    unknown = sorted(set(config.thresholds) - set(labels))
    if unknown:
        raise ConfigError(
            f"detox threshold(s) for {', '.join(unknown)}, which the scorer does not produce; "
            f"its labels are {', '.join(labels)} (e.g. --detox-threshold {labels[0]}=0.5)."
        )
    return np.array([config.thresholds.get(label, config.default_threshold) for label in labels])


def _exempt_classes(config: DetoxConfig, label_names: Sequence[str]) -> set[int]:
    unknown = sorted(set(config.exempt_labels) - set(label_names))
    if unknown:
        raise ConfigError(
            f"--detox-exempt-labels names {', '.join(unknown)}, which is not a class of the "
            f"dataset; its classes are {', '.join(label_names)}."
        )
    return {label_names.index(name) for name in config.exempt_labels}


def _score(scorer: ToxicityScorer, texts: Sequence[str]) -> np.ndarray:
    scores = np.asarray(scorer.score(list(texts)), dtype=np.float64)
    expected = (len(texts), len(scorer.labels))
    if scores.shape != expected or (
        len(texts) and not (np.isfinite(scores).all() and 0 <= scores.min() <= scores.max() <= 1)
    ):
        raise ValueError(
            f"toxicity scorer {scorer.name!r} returned {scores.shape} scores (expected "
            f"{expected}, values in [0, 1])"
        )
    return scores


@dataclass
class _Search:
    """Scores seen so far (by candidate row), so no text is scored twice."""

    scorer: ToxicityScorer
    candidates: Candidates
    thresholds: np.ndarray
    seen: dict[int, np.ndarray]

    def clean(self, row: int) -> bool:
        return bool((self.seen[row] < self.thresholds).all())

    def first_clean(self, spares: np.ndarray, in_use: set[int]) -> tuple[int, int] | None:
        """(row, rank in `spares`) of the best spare not in use that scores clean, or None."""
        pending = [(rank, int(row)) for rank, row in enumerate(spares) if row >= 0]
        pending = [(rank, row) for rank, row in pending if row not in in_use]
        for start in range(0, len(pending), _BATCH):
            batch = pending[start : start + _BATCH]
            new = [row for _, row in batch if row not in self.seen]
            if new:
                scores = _score(self.scorer, [self.candidates.texts[row] for row in new])
                self.seen.update(zip(new, scores, strict=True))
            for rank, row in batch:
                if self.clean(row):
                    return row, rank
        return None


def screen(
    realized: RealizedSet,
    candidates: Candidates,
    scorer: ToxicityScorer,
    config: DetoxConfig,
    label_names: Sequence[str],
) -> RealizedSet:
    """Score `realized`'s texts with `scorer` and apply `config.mode` (filter or flag).

    Returns the released set (replacements in place, unreplaceable slots dropped) with `flagged`
    and `screening` (report.json's audits.toxicity) set.
    """
    if config.mode not in ("filter", "flag"):
        raise ValueError(f"screen() needs detox mode filter or flag, got {config.mode!r}")
    thresholds = resolve_thresholds(config, scorer.labels)
    exempt = _exempt_classes(config, label_names)
    initial = _score(scorer, realized.texts)
    seen = dict(zip(realized.rows.tolist(), initial, strict=True))
    search = _Search(scorer, candidates, thresholds, seen)
    over = np.asarray((initial >= thresholds).any(axis=1), dtype=bool)
    rows = realized.rows.astype(np.int64).copy()
    keep = np.ones(len(rows), dtype=bool)
    replaced: dict[int, int] = {}  # slot -> rank of its replacement among the slot's spares
    if config.mode == "filter":
        in_use = set(rows.tolist())  # removed texts stay here: never chosen again
        for slot in np.flatnonzero(over):
            if int(realized.labels[slot]) in exempt:
                continue
            spares = realized.spares[slot] if realized.spares is not None else np.empty(0, int)
            found = search.first_clean(spares, in_use)
            if found is None:
                keep[slot] = False
                continue
            rows[slot], replaced[int(slot)] = found
            in_use.add(found[0])
    final_scores = np.array([search.seen[int(row)] for row in rows[keep]]).reshape(
        -1, len(scorer.labels)
    )
    flagged = np.asarray((final_scores >= thresholds).any(axis=1), dtype=bool)
    released = replace(
        realized,
        texts=tuple(candidates.texts[int(row)] for row in rows[keep]),
        labels=realized.labels[keep],
        embeddings=candidates.embeddings[rows[keep]],
        rows=rows[keep],
        soft_labels=None if realized.soft_labels is None else realized.soft_labels[keep],
        spares=None if realized.spares is None else realized.spares[keep],
        flagged=flagged,
    )
    section = _section(
        realized=realized,
        released=released,
        initial=initial,
        final=final_scores,
        over=over,
        keep=keep,
        replaced=replaced,
        scored=len(search.seen),
        scorer=scorer,
        thresholds=thresholds,
        config=config,
        candidates=candidates,
        label_names=label_names,
        exempt=exempt,
    )
    return replace(released, screening=section)


# --- report.json's audits.toxicity ----------------------------------------------------------------


def _histogram(scores: np.ndarray, labels: Sequence[str]) -> dict[str, list[int]]:
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    return {
        label: np.histogram(scores[:, j], bins=edges)[0].astype(int).tolist()
        for j, label in enumerate(labels)
    }


def _named(scores: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    return {label: round(float(value), 4) for label, value in zip(labels, scores, strict=True)}


def _groups(
    candidates: Candidates,
    realized: RealizedSet,
    released: RealizedSet,
    over: np.ndarray,
) -> tuple[dict[str, dict[str, float]] | None, list[dict[str, Any]], str]:
    """Toxic rate of the released texts per group, entries per group, and a note."""
    if realized.source != "private":
        origin = (
            "a release made outside tdd-priv"
            if realized.source == "external"
            else "the public pool"
        )
        unknown = (
            f"Groups of the released texts are unknown: they come from {origin}, which carries "
            "no group labels."
        )
        return None, [], unknown
    if not candidates.groups:
        return None, [], "The dataset has no group column, so no rate per group is given."
    assert released.flagged is not None
    rates: dict[str, dict[str, float]] = {}
    entries: list[dict[str, Any]] = []
    for column, values in candidates.groups.items():
        screened = np.array([values[int(row)] for row in realized.rows])
        final = np.array([values[int(row)] for row in released.rows])
        rates[column] = {}
        for group in sorted(set(screened.tolist()) | set(final.tolist())):
            n, toxic = int((final == group).sum()), int(released.flagged[final == group].sum())
            rates[column][group] = round(toxic / n, 4) if n else 0.0
            entries.append(
                {
                    "column": column,
                    "group": group,
                    "screened": int((screened == group).sum()),
                    "screened_over_threshold": int(over[screened == group].sum()),
                    "released": n,
                    "released_over_threshold": toxic,
                }
            )
    return rates, entries, "Rates are over the released texts of each group."


def _section(
    *,
    realized: RealizedSet,
    released: RealizedSet,
    initial: np.ndarray,
    final: np.ndarray,
    over: np.ndarray,
    keep: np.ndarray,
    replaced: Mapping[int, int],
    scored: int,
    scorer: ToxicityScorer,
    thresholds: np.ndarray,
    config: DetoxConfig,
    candidates: Candidates,
    label_names: Sequence[str],
    exempt: set[int],
) -> dict[str, Any]:
    labels = scorer.labels
    assert released.flagged is not None
    exempt_over = int(sum(over[i] and int(realized.labels[i]) in exempt for i in range(len(over))))
    missing_slots = np.flatnonzero(~keep)
    missing_by_label = {
        label_names[c]: int((realized.labels[missing_slots] == c).sum())
        for c in sorted({int(realized.labels[i]) for i in missing_slots})
    }
    released_index = np.cumsum(keep) - 1  # slot -> line of synthetic/data.jsonl
    replacements = []
    for slot, rank in sorted(replaced.items()):
        entry: dict[str, Any] = {
            "released_index": int(released_index[slot]),
            "label": label_names[int(realized.labels[slot])],
            "removed_scores": _named(initial[slot], labels),
            "replacement_scores": _named(final[released_index[slot]], labels),
            "spare_rank": rank,
        }
        if candidates.public_rows:  # external pool rows are public; rows of the data never are
            entry["removed_public_row"] = int(realized.rows[slot])
            entry["replacement_public_row"] = int(released.rows[released_index[slot]])
        replacements.append(entry)
    rates, group_entries, groups_note = _groups(candidates, realized, released, over)
    counts = {
        "screened": len(realized.texts),
        "scored": scored,
        "flagged": int(over.sum()),
        "exempt_kept": exempt_over,
        "removed": len(replaced) + len(missing_slots),
        "replaced": len(replaced),
        "missing": len(missing_slots),
        "released": len(released.texts),
        "released_over_threshold": int(released.flagged.sum()),
    }
    return {
        "scorer": {"name": scorer.name, "version": scorer.version, "labels": list(labels)},
        "mode": config.mode,
        "thresholds": {label: float(t) for label, t in zip(labels, thresholds, strict=True)},
        "exempt_labels": list(config.exempt_labels),
        "text_source": realized.source,
        "statement": _statement(counts, config, scorer, thresholds, missing_by_label, realized),
        "counts": counts,
        "missing_by_label": missing_by_label,
        "max_released_score": _named(
            final.max(axis=0) if len(final) else np.zeros(len(labels)), labels
        ),
        "toxic_rate_by_group": rates,
        "groups_note": groups_note,
        "groups": group_entries,
        "replacements": replacements,
        "score_histogram": {
            "bin_edges": np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1).round(4).tolist(),
            "screened": _histogram(initial, labels),
            "released": _histogram(final, labels),
        },
    }


def _statement(
    counts: Mapping[str, int],
    config: DetoxConfig,
    scorer: ToxicityScorer,
    thresholds: np.ndarray,
    missing_by_label: Mapping[str, int],
    realized: RealizedSet,
) -> str:
    limits = ", ".join(
        f"{label} ≥ {t:g}" for label, t in zip(scorer.labels, thresholds, strict=True)
    )
    source = "public pool" if realized.source == "public" else "private training records"
    what = (
        "released texts of the audited release"
        if realized.source == "external"
        else "realized texts"
    )
    parts = [
        f"Scored the {counts['screened']} {what} with {scorer.name} ({scorer.version}); "
        f"a text is over threshold when {limits}.",
        f"{counts['flagged']} were over threshold.",
    ]
    if config.mode == "filter":
        parts.append(
            f"{counts['replaced']} were removed and replaced by the next-best clean candidate for "
            f"the same slot and class from the {source} ({counts['scored']} texts scored in all)."
        )
        if counts["missing"]:
            missing = ", ".join(f"{name} {n}" for name, n in missing_by_label.items())
            parts.append(
                f"{counts['missing']} could not be replaced (no clean candidate left among their "
                f"slot's spares) and were removed: the set has {counts['missing']} texts fewer "
                f"than k per class ({missing})."
            )
        if counts["exempt_kept"]:
            parts.append(
                f"{counts['exempt_kept']} over-threshold texts of exempt classes "
                f"({', '.join(config.exempt_labels)}) were kept."
            )
    else:
        parts.append("Flag mode: none were removed.")
    parts.append(
        f"{counts['released_over_threshold']} of the {counts['released']} released texts are over "
        'threshold; each is marked "flagged": true in synthetic/data.jsonl.'
        if counts["released_over_threshold"]
        else f"None of the {counts['released']} released texts is over threshold."
    )
    return " ".join(parts)
