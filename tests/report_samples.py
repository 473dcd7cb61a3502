"""Hand-made report.json contents (schema 1.0.0) for unit tests of the schema and renderers."""

from __future__ import annotations

import copy
from typing import Any

KEY_ID = "ab" * 32


def _utility_entry(mean: float, *, heads: tuple[str, ...] = ("linear", "mlp")) -> dict[str, Any]:
    return {
        "accuracy_mean": mean,
        "accuracy_std": 0.01,
        "n_models": 2 * len(heads),
        "by_head": {
            head: {"accuracy_mean": mean, "accuracy_std": 0.01, "accuracies": [mean - 0.01, mean]}
            for head in heads
        },
    }


def non_private_report() -> dict[str, Any]:
    """A herding run without privacy, as a run writes it (no audits yet)."""
    return copy.deepcopy(
        {
            "schema_version": "1.0.0",
            "run_id": "20260101T000000Z-0123abcd",
            "created_at": "2026-01-01T00:00:00+00:00",
            "config_sha256": "0" * 64,
            "dataset": {
                "name": "tiny <news> & co",
                "source": "/data/tiny.csv",
                "fingerprint": "f" * 64,
                "classes": ["World", "Sports"],
                "group_columns": [],
                "sizes": {
                    "rows": 200,
                    "members": 100,
                    "audit": 20,
                    "test": 60,
                    "public_pool": 20,
                    "dropped_empty": 0,
                },
                "public_pool": {
                    "origin": "train split, labels dropped",
                    "name": "tiny",
                    "fingerprint": None,
                },
            },
            "method": {
                "name": "herding",
                "per_class": 5,
                "settings": {"per_class": 5},
                "loss_history": [],
            },
            "encoder": {
                "model": "all-MiniLM-L6-v2",
                "model_sha256": "c" * 64,
                "max_length": 128,
                "pooling": "mean",
                "dimension": 384,
            },
            "privacy": {
                "mode": "none",
                "epsilon": None,
                "delta": None,
                "accountant": None,
                "mechanisms": [],
                "statement": "No differential privacy: the released texts are 10 records of the "
                "private training set, copied verbatim.",
            },
            "synthetic": {
                "size": 10,
                "per_class": 5,
                "label_counts": {"World": 5, "Sports": 5},
                "soft_labels": False,
                "realization": "private-coreset",
                "text_source": "private",
                "releases_private_records": True,
            },
            "utility": {
                "protocol": {
                    "heads": ["linear", "mlp"],
                    "seeds_per_head": 2,
                    "training_steps": 150,
                    "test_split_size": 60,
                    "note": "Measured on private data; outside any privacy guarantee.",
                },
                "synthetic": _utility_entry(0.71),
                "realized": _utility_entry(0.71),
                "full_data": _utility_entry(0.86),
                "random": _utility_entry(0.62),
            },
            "audits": {},
            "verdicts": {},
            "artifacts": [
                {"path": "synthetic/data.jsonl", "sha256": "1" * 64},
                {"path": "figures/utility.png", "sha256": "2" * 64},
            ],
            "figures": [],
            "environment": {
                "python": "3.11.7",
                "platform": "Linux",
                "seed": 0,
                "packages": {"tdd-priv": "0.1.0", "opacus": None},
                "commit": "a" * 40,
                "commit_dirty": False,
            },
            "signing": {
                "algorithm": "ed25519",
                "key_id": KEY_ID,
                "public_key": "signing-key.pub",
                "envelope": "report.dsse.json",
                "predicate_type": "https://tdd-priv.dev/report/v1",
            },
        }
    )


MECHANISMS = [
    {
        "name": "class_means",
        "noise_multiplier": 2.0,
        "sample_rate": 1.0,
        "steps": 1,
        "max_grad_norm": 1.0,
    },
    {"name": "dc_gradients", "noise_multiplier": 1.5, "sample_rate": 0.04, "steps": 2250},
]


def private_report(*, epsilon: float = 7.5) -> dict[str, Any]:
    """A DP run with a ledger, a DP-SGD baseline, audits, verdicts and a loss curve."""
    report = non_private_report()
    report["method"] = {
        "name": "dc",
        "per_class": 5,
        "settings": {"outer_steps": 4},
        "loss_history": [4.0, 2.0, 1.0, 0.5],
    }
    report["privacy"] = {
        "mode": "dp",
        "epsilon": epsilon,
        "delta": 1e-5,
        "accountant": "rdp",
        "mechanisms": copy.deepcopy(MECHANISMS),
        "statement": "(7.5, 1e-05)-DP for each record of the private training split.",
    }
    report["synthetic"].update(
        realization="public-nearest", text_source="public", releases_private_records=False
    )
    report["utility"]["dp_sgd"] = _utility_entry(0.80)
    report["audits"] = {
        "membership": {
            "auc": 0.51,
            "auc_ci95": [0.45, 0.57],
            "tpr_at_1pct_fpr": 0.012,
            "best_attack": "loss",
            "power": {"min_fpr": 0.004, "tpr_at_1pct_fpr_measurable": True},
        },
        "canary": {"epsilon_lower_bound": 0.3, "epsilon_ceiling": 7.9, "canaries": 8192},
        "leakage": {
            "exact_duplicates": 0,
            "near_duplicates": 1,
            "may_contain_private_rows": True,
            "distance_to_closest_record": {"p_value": 0.61, "p_value_floor": 0.001},
        },
    }
    report["verdicts"] = {
        "epsilon": {"status": "PASS", "value": epsilon, "threshold": 8.0},
        "membership_auc": {"status": "FAIL", "value": 0.51, "threshold": 0.5},
    }
    return report


def current_schema(report: dict[str, Any], claim: Any = None) -> dict[str, Any]:
    """A sample report (written as schema 1.x) as today's runs write it: schema 2.0.0, keyed
    fingerprint, no source path, and `claim` (a PrivacyClaim; default: the one derived from the
    report's mode) as its privacy claim."""
    from tdd_priv.report.claim import PrivacyClaim
    from tdd_priv.report.schema import SCHEMA_VERSION

    report = copy.deepcopy(report)
    claim = claim if claim is not None else PrivacyClaim.from_report(report)
    report["schema_version"] = SCHEMA_VERSION
    report["dataset"].pop("source", None)
    report["dataset"]["fingerprint_keyed"] = True
    report["dataset"]["public_pool"]["origin"] = "external"
    report["privacy"]["claim"] = claim.to_json()
    report["privacy"]["statement"] = claim.statement
    return report
