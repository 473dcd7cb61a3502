"""The report for people as an ordered list of sections, built from report.json's content.

report.md and report.html render the same sections in the same order, so they cannot drift
apart: a summary box, what was audited (for a release made outside tdd-priv), utility, one
section per audit that ran, verdicts, the privacy ledger, data, method, environment, what the
privacy guarantee covers, and integrity (signature).
Everything comes from report.json, which never holds private records.

Inline text may use `code` and **bold** (Markdown syntax); the HTML renderer converts them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tdd_priv.report.claim import PrivacyClaim
from tdd_priv.report.escape import protect
from tdd_priv.report.figures import (
    BASELINE_SETS,
    floor_words,
    headline_metric,
    metric_name,
    shown_sets,
    utility_label,
)

__all__ = [
    "AUDIT_SECTIONS",
    "AuditSection",
    "Badge",
    "Block",
    "Cell",
    "FigureRef",
    "Paragraph",
    "Section",
    "Table",
    "build_sections",
    "utility_rows",
]

Tone = Literal["pass", "fail", "warn", "info"]


@dataclass(frozen=True)
class Badge:
    """A short coloured label: PASS (green), FAIL / NOT PRIVATE (red), ..."""

    text: str
    tone: Tone


Cell = str | Badge | tuple[Badge | str, ...]


@dataclass(frozen=True)
class Paragraph:
    text: str
    tone: Literal["plain", "warn", "note"] = "plain"


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class FigureRef:
    path: str
    caption: str


Block = Paragraph | Table | FigureRef


@dataclass(frozen=True)
class Section:
    """`key` is a stable anchor; the summary section is drawn as a box."""

    key: str
    title: str
    blocks: tuple[Block, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class AuditSection:
    """How an audit's section of report.json is introduced: its title, its headline metric
    (a key of the section) and a sentence on what the metric means."""

    title: str
    headline: str | None
    explanation: str


# Audit key in report.json -> its section, in display order. Audits not listed still render,
# titled by their key.
AUDIT_SECTIONS: dict[str, AuditSection] = {
    "membership": AuditSection(
        "Membership inference",
        "auc",
        "How well an attacker tells private training records from held-out ones using models "
        "trained on the released set; AUC 0.5 is chance.",
    ),
    "canary": AuditSection(
        "Canary audit",
        None,  # the bound is shown with its ceiling by _canary_blocks
        "An empirical lower bound on ε from canaries inserted with probability ½; it must stay "
        "below the accountant's ε, else the DP implementation is broken. The ceiling is the most "
        "these canaries could show: at or below ε the audit cannot fail and proves nothing.",
    ),
    "leakage": AuditSection(
        "Leakage",
        "exact_duplicates",
        "Released texts that equal or nearly copy a row of the labeled data (members, held-out "
        "and test rows, the internal pool, canaries), counted per part; the texts and row ids "
        "themselves are never in this report.",
    ),
    "fairness": AuditSection(
        "Fairness by group",
        None,
        "Metrics of models trained on the released set, broken down by sensitive group.",
    ),
    "toxicity": AuditSection(
        "Toxicity",
        None,
        "Toxicity scores of the released texts and what the filter did with them.",
    ),
}


# --- formatting ----------------------------------------------------------------------------------


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def _score(entry: Mapping[str, Any], metric: str = "accuracy") -> str:
    """ "mean ± std" of a metric over a set's models; "—" where the report lacks the metric
    (older reports hold accuracy only)."""
    if "accuracy_mean" not in entry:  # no model could be trained on the set
        return "not computable"
    if f"{metric}_mean" not in entry:
        return "—"
    if entry.get("n_models") == 1:  # one model (the majority-class predictor): no spread
        return f"{entry[f'{metric}_mean']:.3f}"
    return f"{entry[f'{metric}_mean']:.3f} ± {entry[f'{metric}_std']:.3f}"


def _fraction(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"


_SECONDARY = ("accuracy", "macro_f1", "balanced_accuracy")


def _scalars(payload: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Flatten the scalar (and short-list) values of a nested mapping into dotted keys."""
    rows: list[tuple[str, str]] = []
    for key, value in payload.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += _scalars(value, prefix=f"{name}.")
        elif isinstance(value, list):
            if len(value) <= 8 and all(not isinstance(v, Mapping | list) for v in value):
                rows.append((name, ", ".join(_number(v) for v in value) or "none"))
            else:
                rows.append((name, f"{len(value)} entries (in report.json)"))
        else:
            rows.append((name, _number(value)))
    return rows


def _figures(report: Mapping[str, Any], section: str) -> tuple[FigureRef, ...]:
    return tuple(
        FigureRef(entry["path"], entry["caption"])
        for entry in report.get("figures", [])
        if entry["section"] == section
    )


def utility_rows(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(set label, its scores) for every evaluated set, in display order: the headline metric
    first, then the other metrics the report holds, the lowest recall on a class, the number
    of models, and a mark when the headline does not beat the majority-class predictor or
    chance ("— at or below the majority-class predictor")."""
    utility = report["utility"]
    headline = headline_metric(utility)
    rows = []
    for key in shown_sets(utility):
        entry = utility[key]
        parts = [f"{metric_name(headline)} {_score(entry, headline)}"]
        if "accuracy_mean" in entry:
            parts += [
                f"{metric_name(metric)} {_score(entry, metric)}"
                for metric in _SECONDARY
                if metric != headline and f"{metric}_mean" in entry
            ]
            if "min_class_recall_mean" in entry:
                parts.append(f"lowest class recall {entry['min_class_recall_mean']:.3f}")
        models = "constant" if key == "majority_class" else f"{entry['n_models']} models"
        text = " · ".join(parts) + f" ({models})"
        if words := floor_words(utility, key):
            text += f" — {words}"
        rows.append((utility_label(key), text))
    return rows


def _privacy_cell(claim: PrivacyClaim) -> Cell:
    budget = claim.cumulative
    spent = (
        f"; this dataset's budget ledger: {budget['runs']} run(s), ε = {budget['epsilon']:.3g}"
        if budget
        else ""
    )
    return (
        Badge(claim.badge, "pass" if claim.private else "fail"),
        f"{claim.headline}{spent} (see *What the privacy guarantee covers*)",
    )


_VERDICT_TONES: dict[str, Tone] = {
    "PASS": "pass",
    "FAIL": "fail",
    "INCONCLUSIVE": "warn",
    "SKIPPED": "info",
}


def _verdict_badge(verdict: Mapping[str, Any]) -> Badge:
    status = str(verdict.get("status", "?"))
    return Badge(status, _VERDICT_TONES.get(status, "warn"))


# --- sections ------------------------------------------------------------------------------------


def _method_cell(report: Mapping[str, Any]) -> str:
    method, synthetic = report["method"], report["synthetic"]
    release = report.get("release")
    if release is not None:
        return (
            f"a release made outside tdd-priv: `{release['file']}`, {synthetic['size']} texts; "
            f"baselines at k = {method['per_class']} per class (see *Release audited*)"
        )
    return (
        f"{method['name']}, {per_class_words(synthetic)} "
        f"({synthetic['size']} texts, realized by {synthetic.get('realization', '?')})"
    )


def per_class_words(synthetic: Mapping[str, Any]) -> str:
    """How many texts each class got: "k = K per class", or the sizes of an allocation."""
    allocation = synthetic.get("allocation")
    if allocation and allocation.get("mode") != "equal":
        sizes = ", ".join(f"{name} {n}" for name, n in allocation["sizes"].items())
        return f"{allocation['mode']} allocation ({sizes})"
    return f"k = {synthetic['per_class']} per class"


def _utility_cell(utility: Mapping[str, Any]) -> str:
    """The summary's utility line: the headline metric, named, for the released set against
    DP-SGD, full data, random k and the majority-class predictor; the sets at or below the
    floor are named in words."""
    headline = headline_metric(utility)
    key = f"{headline}_mean"
    synthetic_mean = utility["synthetic"].get(key)

    def difference(entry: Mapping[str, Any]) -> str:
        if synthetic_mean is None or key not in entry:
            return ""
        return f" ({synthetic_mean - entry[key]:+.3f})"

    versus = [
        f"{utility_label(name)} {_score(utility[name], headline)}{difference(utility[name])}"
        for name in ("dp_sgd", "full_data", "random")
        if name in utility
    ]
    if key in utility.get("majority_class", {}):
        versus.append(f"majority-class predictor {utility['majority_class'][key]:.3f}")
    released = f"synthetic **{_score(utility['synthetic'], headline)}**"
    if "realized" in shown_sets(utility):
        released += f" (as texts **{_score(utility['realized'], headline)}**)"
    protocol = utility.get("protocol", {})
    cell = (
        f"{released} vs " + "; ".join(versus) + f" — test {metric_name(headline)}, mean ± std "
        f"over {utility['synthetic']['n_models']} models (difference in brackets)."
    )
    if "headline_reason" in protocol:
        cell += (
            f" Headline metric: **{metric_name(headline)}**, because {protocol['headline_reason']}."
        )
    marked = [name for name in shown_sets(utility) if floor_words(utility, name)]
    released_sets = [name for name in marked if name not in BASELINE_SETS]
    if released_sets:
        cell += (
            " **" + ", ".join(utility_label(name) for name in released_sets) + ": "
            f"{floor_words(utility, released_sets[0])}** "
            f"({protocol.get('headline_floor', {}).get('statement', '')})."
        )
    baselines = [name for name in marked if name in BASELINE_SETS]
    if baselines:
        cell += (
            " Baselines "
            + f"{floor_words(utility, baselines[0])}: "
            + ", ".join(utility_label(name) for name in baselines)
            + "."
        )
    return cell


def _summary(report: Mapping[str, Any]) -> Section:
    dataset, utility = report["dataset"], report["utility"]
    utility_cell = _utility_cell(utility)
    verdicts = report.get("verdicts", {})
    audits_cell: Cell = (
        tuple(item for name, v in verdicts.items() for item in (_verdict_badge(v), f"{name}  "))
        if verdicts
        else "no audit ran for this run"
    )
    rows: list[tuple[Cell, ...]] = [
        (
            "Dataset",
            f"{dataset['name']} — {dataset['sizes']['rows']:,} rows, "
            f"{len(dataset['classes'])} classes ({', '.join(dataset['classes'])})",
        ),
        ("Method", _method_cell(report)),
        ("Privacy", _privacy_cell(PrivacyClaim.from_report(report))),
        ("Utility", utility_cell),
        ("Audits", audits_cell),
    ]
    signing = report.get("signing")
    if signing:
        signed = (
            f"Ed25519 key id `{signing['key_id'][:16]}…` (`{signing['envelope']}`; check with "
            "`tdd-priv verify`)"
        )
        rows.append(("Signed", signed))
    return Section("summary", "Summary", (Table(("", ""), tuple(rows)),))


_RECALL_CLASSES_SHOWN = 30  # more classes: only the ones the released set recalls least


def _recall_blocks(utility: Mapping[str, Any], sets: list[str]) -> list[Block]:
    """Recall on each class per set (classes as rows), and the classes a set never recalls."""
    sets = [k for k in sets if k != "majority_class" and utility[k].get("recall_by_class")]
    if not sets:
        return []
    released = "realized" if "realized" in sets else sets[0]
    classes = list(utility[released]["recall_by_class"])

    def recall(key: str, name: str) -> float | None:
        value = utility[key]["recall_by_class"].get(name, {}).get("mean")
        return None if value is None else float(value)

    note = ""
    if len(classes) > _RECALL_CLASSES_SHOWN:
        classes = sorted(classes, key=lambda name: recall(released, name) or 0.0)
        classes = classes[:_RECALL_CLASSES_SHOWN]
        note = (
            f" The {_RECALL_CLASSES_SHOWN} classes {utility_label(released)} recalls least are "
            "shown; every class is in report.json (`recall_by_class`)."
        )
    rows = tuple((name, *(_number(recall(key, name)) for key in sets)) for name in classes)
    blocks: list[Block] = [
        Paragraph(
            "Recall on each class (the share of its test rows a model gets right; mean over the "
            "models). A class no model of a set predicts scores 0, whatever the accuracy." + note
        ),
        Table(("class", *(utility_label(key) for key in sets)), rows),
    ]
    never = {
        key: [name for name in utility[key]["recall_by_class"] if recall(key, name) == 0.0]
        for key in sets
    }
    if any(never.values()):
        blocks.append(
            Paragraph(
                "Classes no model trained on the set gets right: "
                + "; ".join(
                    f"{utility_label(key)}: {', '.join(names)}"
                    for key, names in never.items()
                    if names
                )
                + ".",
                tone="warn",
            )
        )
    return blocks


def _utility(report: Mapping[str, Any]) -> Section:
    utility = report["utility"]
    protocol = utility.get("protocol", {})
    headline = headline_metric(utility)
    sets = shown_sets(utility)
    heads = list(utility["synthetic"].get("by_head", {}))
    text_models = list(
        dict.fromkeys(name for key in sets for name in utility[key].get("cross_architecture", {}))
    )
    metrics = [headline] + [
        m for m in _SECONDARY if m != headline and any(f"{m}_mean" in utility[k] for k in sets)
    ]
    lowest = any("min_class_recall_mean" in utility[k] for k in sets)
    marks = {key: words for key in sets if (words := floor_words(utility, key))}
    # (what, why) -> the sets it was not computable on, for the note below the table
    unavailable: dict[tuple[str, str], list[str]] = {}
    # (model, how it was trained) -> the sets whose models were trained so (a subsample, DP)
    notes: dict[tuple[str, str], list[str]] = {}

    def score(key: str, models: Mapping[str, Any], name: str) -> str:
        if name not in models:
            return "—"
        if models[name].get("note"):
            notes.setdefault((name, str(models[name]["note"])), []).append(utility_label(key))
        if "not_computable" in models[name]:
            if "accuracy_mean" in utility[key]:  # else the whole set's note says it
                why = str(models[name]["not_computable"])
                unavailable.setdefault((name, why), []).append(utility_label(key))
            return "not computable"
        value = models[name].get(f"{headline}_mean")
        return "—" if value is None else f"{value:.3f}"

    rows = []
    for key in sets:
        entry = utility[key]
        if "accuracy_mean" not in entry:
            why = str(entry.get("not_computable", "?"))
            unavailable.setdefault(("every head", why), []).append(utility_label(key))
        by_head = entry.get("by_head", {})
        texts = entry.get("cross_architecture", {})
        rows.append(
            (
                utility_label(key),
                *(_score(entry, metric) for metric in metrics),
                *((_fraction(entry.get("min_class_recall_mean")),) if lowest else ()),
                "constant" if key == "majority_class" else str(entry["n_models"]),
                *(score(key, by_head, head) for head in heads),
                *(score(key, texts, name) for name in text_models),
                *((Badge(marks[key], "warn") if key in marks else "",) if marks else ()),
            )
        )
    intro = (
        f"Test {', '.join(metric_name(m) for m in metrics)} on the real test split "
        f"({protocol.get('test_split_size', '?')} rows) of fresh heads ({', '.join(heads)}; "
        f"{protocol.get('seeds_per_head', '?')} seeds each) trained on each set, mean ± std over "
        f"the models; the per-head columns show {metric_name(headline)}. "
        f"{protocol.get('note', '')}"
    )
    if "headline_reason" in protocol:
        intro += (
            f" Headline metric: **{metric_name(headline)}**, because {protocol['headline_reason']}."
        )
    if "majority_class" in sets:
        intro += (
            " The majority-class predictor gives every test row the most frequent class of the "
            "private training members; a set whose headline does not beat it, or chance (1/C "
            "for macro-F1), is marked."
        )
    if text_models:
        intro += (
            f" Text models ({', '.join(text_models)}) learn from the texts themselves, not from "
            "the embeddings; they are not in the aggregate."
        )
    if "finetune" in text_models:
        intro += (
            " finetune fine-tunes a pretrained transformer end to end on each set's texts (with "
            "the set's soft labels where it has them), one model per seed; in the DP-SGD row it "
            "is fine-tuned by DP-SGD on the private members at the run's (ε, δ)."
        )
    if "realized_hard_labels" in sets:
        intro += (
            " The released texts carry soft labels; heads trained on the same texts with hard "
            "labels show what the soft labels do to each class."
        )
    header = (
        "trained on",
        *(f"{metric_name(m)} (headline)" if m == headline else metric_name(m) for m in metrics),
        *(("lowest class recall",) if lowest else ()),
        "models",
        *heads,
        *(f"{m} (texts)" for m in text_models),
        *(("",) if marks else ()),
    )
    blocks: list[Block] = [Paragraph(intro.strip()), Table(header, tuple(rows))]
    if notes:
        blocks.append(
            Paragraph(
                "How some of these models were trained: "
                + "; ".join(
                    f"{name} on {', '.join(labels)}: {note}"
                    for (name, note), labels in notes.items()
                )
                + "."
            )
        )
    if marks:
        floor = protocol.get("headline_floor", {})
        blocks.append(
            Paragraph(
                "; ".join(f"{utility_label(key)}: {words}" for key, words in marks.items())
                + (f" ({floor['statement']})." if floor.get("statement") else "."),
                tone="warn",
            )
        )
    if unavailable:
        blocks.append(
            Paragraph(
                "Not computable on this data (no number is shown rather than a made-up one): "
                + "; ".join(
                    f"{what} on {', '.join(labels)}: {why}"
                    for (what, why), labels in unavailable.items()
                )
                + ".",
                tone="warn",
            )
        )
    blocks += _recall_blocks(utility, sets)
    return Section("utility", "Utility", (*blocks, *_figures(report, "utility")))


# --- audit tables --------------------------------------------------------------------------------


def _tpr_cell(metrics: Mapping[str, Any], key: str) -> str:
    """A TPR at a low FPR; "≥" where too few non-members measure it (the TPR at zero false
    positives, a lower estimate)."""
    measured = metrics.get("power", {}).get(f"{key}_measurable", True)
    return ("" if measured else "≥ ") + _number(metrics.get(key))


def _membership_blocks(payload: Mapping[str, Any]) -> list[Block]:
    attacks = payload.get("attacks", {})
    rows = tuple(
        (
            f"**{name}**" if name == payload.get("best_attack") else name,
            _number(m.get("auc"))
            + (
                f" [{_number(m['auc_ci95'][0])}, {_number(m['auc_ci95'][1])}]"
                if "auc_ci95" in m
                else ""
            ),
            _number(m.get("balanced_accuracy")),
            _tpr_cell(m, "tpr_at_0.1pct_fpr"),
            _tpr_cell(m, "tpr_at_1pct_fpr"),
        )
        for name, m in attacks.items()
    )
    power = payload.get("power", {})
    unmeasured = [
        label
        for label, key in (
            ("0.1 %", "tpr_at_0.1pct_fpr_measurable"),
            ("1 %", "tpr_at_1pct_fpr_measurable"),
        )
        if power.get(key) is False
    ]
    text = (
        f"{payload.get('n_members', '?')} members against {payload.get('n_nonmembers', '?')} "
        f"held-out non-members ({payload.get('shadows', 0)} shadow re-runs); with these "
        f"non-members no FPR below {_number(payload.get('min_fpr'))} is measurable"
        + (
            f", so TPR at {' and '.join(unmeasured)} FPR is the TPR at zero false positives, a "
            "lower estimate. "
            if unmeasured
            else ". "
        )
        + str(payload.get("note", ""))
    )
    blocks: list[Block] = [Paragraph(text.strip())]
    if rows:
        header = ("attack", "AUC [95 %]", "balanced accuracy", "TPR at 0.1 % FPR", "TPR at 1 % FPR")
        blocks.append(Table(header, rows))
    return blocks


def _canary_blocks(payload: Mapping[str, Any]) -> list[Block]:
    bound, ceiling = payload.get("epsilon_lower_bound"), payload.get("epsilon_ceiling")
    m = payload.get("canaries", 0)
    confidence, delta = _number(payload.get("confidence")), _number(payload.get("delta"))
    blocks: list[Block] = [
        Paragraph(
            f"**ε lower bound: {_number(bound)} — ceiling: {_number(ceiling)}** (the most a "
            f"perfect attack on these {m} canaries could show, at {confidence} confidence and "
            f"δ = {delta})"
        )
    ]
    sizing = payload.get("sizing", {})
    if sizing.get("reason"):
        requested = sizing.get("requested")
        how = "sized from the claimed ε" if requested == "auto" else "as configured"
        blocks.append(Paragraph(f"Canaries {how}: {sizing['reason']}."))
    guess = payload.get("one_run")
    if guess:
        grid = payload.get("grid", {})
        blocks.append(
            Table(
                ("canaries", "inserted", "best guess", "correct", "score", "grid (k per side)"),
                (
                    (
                        str(m),
                        str(payload.get("inserted", "?")),
                        f"{guess.get('guessed_in', '?')} in + {guess.get('guessed_out', '?')} out"
                        if guess.get("guesses")
                        else "none beats chance",
                        f"{guess.get('correct', '?')} of {guess.get('guesses', '?')}",
                        str(guess.get("score", "?")) if guess.get("guesses") else "—",
                        f"{', '.join(map(str, grid.get('guesses_per_side', [])))} "
                        f"({grid.get('hypotheses', '?')} hypotheses)",
                    ),
                ),
            )
        )
    if payload.get("note"):
        blocks.append(Paragraph(str(payload["note"])))
    return blocks


def _leakage_blocks(payload: Mapping[str, Any]) -> list[Block]:
    shown = {"worst", "distance_to_closest_record", "by_part", "note"}
    blocks: list[Block] = [
        Table(
            ("measure", "value"),
            tuple((k, v) for k, v in _scalars(payload) if k.split(".")[0] not in shown),
        )
    ]
    parts = payload.get("by_part", {})
    if parts:
        rows = tuple(
            (
                part,
                _number(entry.get("records")),
                _number(entry.get("exact")),
                _number(entry.get("near_ngram")),
                _number(entry.get("near_embedding")),
            )
            for part, entry in parts.items()
        )
        header = ("labeled rows", "rows", "exact", "near (n-grams)", "near (embeddings)")
        blocks.append(Table(header, rows))
    if payload.get("may_contain_private_rows") is False:
        blocks.append(
            Paragraph(
                "A DP release from an external public pool: it cannot contain a private row, so "
                "resemblance to one is information, not a verdict; the distance test below says "
                "whether the release depends on which records are members."
            )
        )
    dcr = payload.get("distance_to_closest_record")
    if dcr:
        blocks.append(
            Paragraph(
                f"Distance to closest record: the nearest record of "
                f"{_number(dcr.get('nearest_is_member_share'))} of the released texts is a member "
                f"(expected {_number(dcr.get('expected_share'))} if the release did not depend on "
                f"membership). Permutation test over the records (member/held-out labels "
                f"permuted within each class, {_number(dcr.get('permutations'))} permutations, "
                f"{_number(dcr.get('nearest_records'))} distinct nearest records): p = "
                f"{_number(dcr.get('p_value'))}; the smallest p this release could give is "
                f"{_number(dcr.get('p_value_floor'))}. Median cosine distance to members "
                f"{_number(dcr.get('median_distance_to_members'))}, to held-out records "
                f"{_number(dcr.get('median_distance_to_held_out'))}."
            )
        )
    worst = payload.get("worst", [])
    if worst:
        rows = tuple(
            (
                str(w["released_index"]),
                str(w.get("closest_part", "?")),
                _number(w.get("ngram_jaccard")),
                _number(w.get("embedding_cosine")),
                _number(w.get("exact")),
            )
            for w in worst
        )
        header = ("released row", "closest labeled rows", "n-gram Jaccard", "cosine", "exact")
        blocks.append(Table(header, rows))
    return blocks


_GAP_NAMES = (
    "accuracy_difference",
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "equalized_odds_difference",
)
_GROUP_COLUMNS = (
    "accuracy",
    "selection_rate",
    "tpr",
    "fpr",
    "subgroup_auc",
    "bpsn_auc",
    "bnsp_auc",
)


def _fairness_blocks(payload: Mapping[str, Any]) -> list[Block]:
    blocks: list[Block] = []
    if payload.get("positive_label") is not None:
        blocks.append(
            Paragraph(
                f"Positive class: {payload['positive_label']}. Groups with fewer than "
                f"{payload.get('min_group_size', '?')} test examples are marked and left out of "
                f"the gaps; intervals: {_number(payload.get('confidence'))} bootstrap."
            )
        )
    for view, entry in payload.get("by", {}).items():
        synthetic, full = entry.get("synthetic", {}), entry.get("full_data", {})
        intervals = synthetic.get("confidence_intervals", {})
        gap_rows = []
        for gap in _GAP_NAMES:
            if gap not in synthetic:
                continue
            interval = intervals.get(gap)
            shown = _number(synthetic[gap]) + (
                f" [{_number(interval[0])}, {_number(interval[1])}]" if interval else ""
            )
            change = entry.get("gap_change", {}).get(gap)
            gap_rows.append((gap, shown, _number(full.get(gap)), _number(change)))
        blocks.append(Paragraph(f"**By {view}**"))
        if gap_rows:
            header = ("gap", "synthetic-trained", "full-data-trained", "change")
            blocks.append(Table(header, tuple(gap_rows)))
        groups = synthetic.get("groups", {})
        columns = [c for c in _GROUP_COLUMNS if any(c in m for m in groups.values())]
        rows = []
        for group, metrics in groups.items():
            full_accuracy = full.get("groups", {}).get(group, {}).get("accuracy")
            flag: Cell = Badge("too few", "warn") if metrics.get("too_few_examples") else ""
            rows.append(
                (
                    group,
                    str(metrics.get("n", "?")),
                    *(_number(metrics.get(c)) for c in columns),
                    _number(full_accuracy),
                    flag,
                )
            )
        if rows:
            group_header = ("group", "n", *columns, "accuracy (full data)", "")
            blocks.append(Table(group_header, tuple(rows)))
    return blocks


AUDIT_DETAILS: dict[str, Callable[[Mapping[str, Any]], list[Block]]] = {
    "membership": _membership_blocks,
    "canary": _canary_blocks,
    "leakage": _leakage_blocks,
    "fairness": _fairness_blocks,
}


def _audit_sections(report: Mapping[str, Any]) -> list[Section]:
    audits = report.get("audits", {})
    order = [name for name in AUDIT_SECTIONS if name in audits]
    order += [name for name in audits if name not in AUDIT_SECTIONS]
    sections = []
    for name in order:
        known = AUDIT_SECTIONS.get(name)
        payload = audits[name]
        blocks: list[Block] = []
        if known is not None:
            blocks.append(Paragraph(known.explanation))
            if known.headline and known.headline in payload:
                blocks.append(
                    Paragraph(f"**{known.headline}: {_number(payload[known.headline])}**")
                )
        detail = AUDIT_DETAILS.get(name)
        if detail is not None:  # audits with their own tables
            blocks += detail(payload)
        else:
            scalars = [(k, v) for k, v in _scalars(payload) if known is None or k != known.headline]
            if scalars:
                blocks.append(Table(("measure", "value"), tuple(scalars)))
        blocks += _figures(report, name)
        sections.append(Section(f"audit-{name}", known.title if known else name, tuple(blocks)))
    verdicts = report.get("verdicts", {})
    if verdicts:
        rows = tuple(
            (
                name,
                _verdict_badge(v),
                _number(v.get("value")),
                _number(v.get("threshold")),
                _interval_cell(v.get("interval")),
                _power_cell(v),
                str(v.get("note", "")),
            )
            for name, v in verdicts.items()
        )
        sections.append(
            Section(
                "verdicts",
                "Verdicts",
                (
                    Paragraph(
                        "Each check of the policy: the measured value, the threshold, the value's "
                        "interval, and whether the test could have failed. INCONCLUSIVE: it could "
                        "not settle the question (too few canaries or records); SKIPPED: no "
                        "measurement, or not applicable."
                    ),
                    Table(
                        (
                            "check",
                            "verdict",
                            "value",
                            "threshold",
                            "interval",
                            "could fail",
                            "note",
                        ),
                        rows,
                    ),
                ),
            )
        )
    return sections


def _interval_cell(interval: Any) -> str:
    if isinstance(interval, list | tuple) and len(interval) == 2:
        return f"[{_number(interval[0])}, {_number(interval[1])}]"
    return "—"


def _power_cell(verdict: Mapping[str, Any]) -> str:
    """Whether the test could fail, with the ceiling (floor) that decided it when declared."""
    can_fail = verdict.get("can_fail")
    answer = "—" if can_fail is None else "yes" if can_fail else "no"
    for key in ("ceiling", "floor"):
        if verdict.get(key) is not None:
            answer += f" ({key} {_number(verdict[key])})"
    return answer


_MECHANISM_COLUMNS = ("name", "noise_multiplier", "sample_rate", "steps")


def _prv_cross_check(privacy: Mapping[str, Any]) -> tuple[Paragraph, ...]:
    if privacy.get("prv_epsilon") is not None:
        return (
            Paragraph(
                f"Cross-check: the PRV accountant gives ε = {privacy['prv_epsilon']:.4g} for the "
                "same mechanisms (the stated ε is the RDP bound)."
            ),
        )
    if privacy.get("prv_note"):
        return (Paragraph(f"Cross-check: {privacy['prv_note']}."),)
    return ()


def _privacy(report: Mapping[str, Any]) -> Section:
    privacy = report["privacy"]
    mechanisms = privacy["mechanisms"]
    if not mechanisms:
        lead = (
            "**No ledger: the release was made outside tdd-priv.** "
            if "release" in report
            else "**Not private: the ledger is empty.** "
        )
        return Section(
            "privacy",
            "Privacy ledger",
            (Paragraph(lead + privacy.get("statement", ""), tone="warn"),),
        )
    extra = sorted({k for m in mechanisms for k in m} - set(_MECHANISM_COLUMNS))
    rows = tuple(
        tuple(_number(m.get(column)) for column in (*_MECHANISM_COLUMNS, *extra))
        for m in mechanisms
    )
    header = ("mechanism", "noise multiplier σ", "sample rate q", "steps", *extra)
    claim = PrivacyClaim.from_report(report)
    return Section(
        "privacy",
        "Privacy ledger",
        (
            Paragraph(
                f"(ε = {privacy['epsilon']:.4g}, δ = {privacy['delta']:.2e}) composed over the "
                f"mechanisms below with the {privacy['accountant'].upper()} accountant of opacus."
            ),
            *((Paragraph(claim.statement, tone="warn"),) if not claim.private else ()),
            Table(header, rows),
            *_prv_cross_check(privacy),
            Paragraph(
                "Anyone can recompute ε from this table with opacus; `tdd-priv verify` does.",
                tone="note",
            ),
            *_figures(report, "privacy"),
        ),
    )


def _data(report: Mapping[str, Any]) -> Section:
    if "release" in report:
        return _release_data(report)
    dataset, synthetic = report["dataset"], report["synthetic"]
    sizes = dataset["sizes"]
    pool = dataset.get("public_pool", {})
    counts = ", ".join(f"{name} {n}" for name, n in synthetic["label_counts"].items())
    claim = PrivacyClaim.from_report(report)
    if claim.pool_origin == "none":
        source_note = Paragraph(
            "The released texts are records of the private training set (a coreset), copied "
            "verbatim.",
            tone="warn",
        )
    elif claim.pool_origin == "internal":
        source_note = Paragraph(
            f"The released texts are {claim.unprotected_texts} unprotected rows of the input "
            "data: the public pool was cut from the train split (labels dropped).",
            tone="warn",
        )
    else:
        source_note = Paragraph(f"The released texts come from the public pool {pool['name']}.")
    keyed = " (keyed: only its owner can match it)" if dataset.get("fingerprint_keyed") else ""
    origin = {"external": "external", "internal": "cut from the train split"}.get(
        pool.get("origin"), pool.get("origin", "unknown origin")
    )
    return Section(
        "data",
        "Data",
        (
            Paragraph(
                f"Dataset {dataset['name']} (fingerprint `{dataset['fingerprint'][:16]}…`{keyed}). "
                f"Seeded splits, recorded in the run's private folder and never released: "
                f"{sizes.get('members', '?'):,} private training records (members), "
                f"{sizes.get('audit', 0):,} held-out audit records, {sizes.get('test', 0):,} "
                f"test records; public pool of {sizes.get('public_pool', 0):,} texts ({origin})."
                + claim.pool_sentence
            ),
            Paragraph(
                f"Synthetic set: {synthetic['size']} texts; per label: {counts}."
                + _allocation_sentence(synthetic.get("allocation"))
            ),
            source_note,
        ),
    )


def _release_data(report: Mapping[str, Any]) -> Section:
    """Data of an audited release: which labeled rows count as the maker's input (members)."""
    dataset, synthetic, release = report["dataset"], report["synthetic"], report["release"]
    sizes, membership = dataset["sizes"], release["membership"]
    counts = ", ".join(f"{name} {n}" for name, n in synthetic["label_counts"].items())
    keyed = " (keyed: only its owner can match it)" if dataset.get("fingerprint_keyed") else ""
    pool = dataset.get("public_pool")
    pool_text = (
        f" Public pool {pool['name']}: {sizes.get('public_pool', 0):,} texts."
        + PrivacyClaim.from_report(report).pool_sentence
        if pool
        else ""
    )
    return Section(
        "data",
        "Data",
        (
            Paragraph(
                f"Dataset {dataset['name']} (fingerprint `{dataset['fingerprint'][:16]}…`{keyed}), "
                f"{sizes['rows']:,} rows. {membership['note']} Members: {membership['members']:,} "
                f"rows; non-members: {membership['nonmembers']:,} rows; test (utility): "
                f"{sizes.get('test', 0):,} rows of split {membership['test_split']!r}." + pool_text
            ),
            Paragraph(f"Released set: {synthetic['size']} texts; per label: {counts}."),
            Paragraph(
                "Where the released texts come from is unknown: the release was made outside "
                "tdd-priv. The leakage audit counts those that copy a labeled row.",
                tone="warn",
            ),
        ),
    )


def _release(report: Mapping[str, Any]) -> Section:
    """What was audited: the file, how it was read, and how its sizes set the baselines."""
    release = report["release"]
    per_class = release["per_class"]
    labels = {
        "names": "class names",
        "ids": "class ids",
        "names-and-ids": "class names and, where a label is no class name, class ids",
        "ids-with-names": "class ids with their names (tdd-priv's own format)",
    }.get(release["labels"], release["labels"])
    blocks: list[Block] = [
        Paragraph(
            f"`{release['file']}` ({release['format']}, {release['rows']:,} rows, SHA-256 "
            f"`{release['sha256']}`) was made outside tdd-priv and audited here. It is copied "
            f"byte for byte as `{release['copy']}`, so the signature covers exactly what was "
            f"audited. Labels read as {labels}; "
            + (
                "soft labels given (heads train on them)."
                if release["soft_labels"]
                else "no soft labels."
            )
        ),
        Paragraph(
            f"Texts per class: {per_class['min']} to {per_class['max']} "
            f"({'even' if per_class['even'] else 'uneven'}). Random, herding and k-center "
            f"baselines: k = {per_class['baselines']} per class; {per_class['rule']}."
        ),
    ]
    matches = release.get("public_pool")
    if matches is not None:
        blocks.append(
            Paragraph(
                f"{matches['exact']} released texts equal and {matches['near']} nearly equal a "
                f"text of the public pool ({matches['texts']:,} texts, after setting aside those "
                "that equal or nearly equal a labeled row)."
            )
        )
    return Section("release", "Release audited", tuple(blocks))


_ALLOCATION_BASIS = {
    "frequency": "estimated share",
    "difficulty": "estimated share of the errors (share × error rate)",
}


def _allocation_sentence(allocation: Mapping[str, Any] | None) -> str:
    """How the texts per class were decided (--allocation), when not equally."""
    if not allocation or allocation.get("mode") == "equal":
        return ""
    basis = _ALLOCATION_BASIS.get(allocation["mode"], allocation["mode"])
    source = allocation.get("estimated_from")
    return (
        f" The {allocation['total']} texts were split over the classes by each class's {basis}"
        + (f", estimated from {source}" if source else "")
        + " (at least one per class)."
    )


def _attribution(report: Mapping[str, Any]) -> Paragraph | None:
    """Who made the released texts (report.json's synthetic.texts_fitted_to)."""
    synthetic, method = report["synthetic"], report["method"]["name"]
    realization = synthetic.get("realization", "?")
    fitted = synthetic.get("texts_fitted_to")
    if fitted == "method":
        text = (
            f"The texts are {method}'s own choice: the method selected these texts itself, and "
            f"realization ({realization}) released them as they are."
        )
    elif fitted == "release":
        text = (
            f"The texts were fitted by {realization} to the set {method} released (its vectors "
            "and labels): another method's release gives other texts."
        )
    elif fitted == "private-data":
        text = (
            f"The texts were selected against the private training records directly "
            f"({method}): no distillation method's release decided them."
        )
    else:
        return None  # reports written before the field existed
    return Paragraph(text)


def _method(report: Mapping[str, Any]) -> Section:
    method, encoder = report["method"], report.get("encoder", {})
    if "release" in report:
        return Section(
            "method",
            "Method",
            (
                Paragraph(
                    "None known: the release was made outside tdd-priv. Its texts were embedded "
                    f"with {encoder.get('model', '?')} ({encoder.get('dimension', '?')} "
                    f"dimensions, weights sha256 `{str(encoder.get('model_sha256', '?'))[:12]}…`)"
                    " for the embedding heads and the audits."
                ),
            ),
        )
    rows = tuple(_scalars(method.get("settings", {})))
    allocation = report["synthetic"].get("allocation") or {}
    sizes = (
        f"{allocation['total']} texts split by {_ALLOCATION_BASIS[allocation['mode']]}"
        if allocation.get("mode") in _ALLOCATION_BASIS
        else f"{method['per_class']} per class"
    )
    blocks: list[Block] = [
        Paragraph(
            f"{method['name']}, {sizes}, in the embedding space of "
            f"{encoder.get('model', '?')} ({encoder.get('dimension', '?')} dimensions, weights "
            f"sha256 `{str(encoder.get('model_sha256', '?'))[:12]}…`)."
        )
    ]
    if (fairness := method.get("fairness", {})).get("mode") == "balanced":
        blocks.append(
            Paragraph(
                f"Group-balanced matching (`--fairness balanced`) over {len(fairness['groups'])} "
                f"group(s) of {', '.join(fairness['group_columns'])}: each class matches the "
                f"equal-weight mean of its (class, group) cells; {fairness['fallback_cells']} of "
                f"{fairness['cells']} cells had fewer than {fairness['min_cell_size']} rows and "
                "used their class mean instead."
            )
        )
    if (attribution := _attribution(report)) is not None:
        blocks.append(attribution)
    if rows:
        blocks.append(Table(("setting", "value"), rows))
    blocks += _figures(report, "method")
    return Section("method", "Method", tuple(blocks))


def _environment(report: Mapping[str, Any]) -> Section:
    environment = report["environment"]
    commit = environment.get("commit")
    if commit is None:
        commit_text = "unknown (not run from a git checkout)"
    else:
        dirty = " with uncommitted changes" if environment.get("commit_dirty") else ""
        commit_text = f"`{commit}`{dirty}"
    packages = ", ".join(
        f"{name} {version or '(not installed)'}"
        for name, version in environment["packages"].items()
    )
    return Section(
        "environment",
        "Environment",
        (
            Paragraph(
                f"Seed {environment['seed']}; Python {environment.get('python', '?')} on "
                f"{environment.get('platform', '?')}; tdd-priv commit {commit_text}."
            ),
            Paragraph(f"Packages: {packages}."),
        ),
    )


def _listing(items: tuple[str, ...]) -> str:
    return "; ".join(items) + "." if items else "nothing."


def _scope(report: Mapping[str, Any]) -> Section:
    claim = PrivacyClaim.from_report(report)
    if claim.status == "not-private":
        lead = Paragraph(
            "**This run has no differential-privacy guarantee.** " + claim.statement,
            tone="warn",
        )
    else:
        lead = Paragraph(claim.statement, tone="plain" if claim.private else "warn")
    return Section(
        "scope",
        "What the privacy guarantee covers",
        (
            lead,
            Paragraph("**Covered:** " + _listing(claim.covered)),
            Paragraph(
                "**Not covered:** "
                + _listing(claim.not_covered)
                + " Hyperparameters tuned on private data would leak outside any ε."
            ),
            Paragraph(
                "**Declared public (assumed, not protected):** " + _listing(claim.declared_public)
            ),
        ),
    )


def _integrity(report: Mapping[str, Any]) -> Section:
    signing = report.get("signing")
    data_files = tuple(
        (f"`{item['path']}`", f"`{item['sha256']}`")
        for item in report.get("artifacts", [])
        if item["path"].startswith("synthetic/")
    )
    blocks: list[Block] = []
    if signing:
        blocks.append(
            Paragraph(
                f"`{signing['envelope']}` is a DSSE envelope (Ed25519) over an in-toto Statement "
                "that lists the SHA-256 of every released file, this report included. Signing key "
                f"id (SHA-256 of the raw public key): `{signing['key_id']}`; the public key is "
                f"shipped as `{signing['public_key']}`. Check the folder with "
                "`tdd-priv verify DIR --key PUBKEY` (or `--key-id` with the key id), using a "
                "public key or key id obtained from the signer yourself, not from this folder: "
                "without one, `verify` reports UNAUTHENTICATED, since the shipped key proves only "
                "that the files match what it signed, not who signed them."
            )
        )
    if data_files:
        blocks.append(Table(("released data file", "sha256"), data_files))
    return Section("integrity", "Integrity", tuple(blocks))


def build_sections(report: Mapping[str, Any]) -> list[Section]:
    """Every section of the human-readable report, in display order. Every string of `report`
    is protected first (tdd_priv.report.escape): what came from data renders as text, never as
    markup, whatever it contains."""
    report = protect(report)
    return [
        _summary(report),
        *((_release(report),) if "release" in report else ()),
        _utility(report),
        *_audit_sections(report),
        _privacy(report),
        _data(report),
        _method(report),
        _environment(report),
        _scope(report),
        _integrity(report),
    ]
