"""Helpers shared by integration and flow tests."""

from pathlib import Path

AG_NEWS_LABELS = ("World", "Sports", "Business", "Sci/Tech")


def tiny_run_overrides(data: Path, out: Path) -> dict[str, object]:
    """Settings for a quick real run on `tiny_ag_news` (fewer seeds and steps than default)."""
    return {
        "data.spec": str(data),
        "data.split_column": "split",
        "data.label_names": list(AG_NEWS_LABELS),
        "method": "herding",
        "per_class": 5,
        "privacy.enabled": False,
        "evaluation.seeds": 2,
        "evaluation.steps": 150,
        "orchestrator": "local",
        "progress": False,
        "out": str(out),
    }


# Small budgets for the DP methods: end-to-end tests check plumbing and accounting, not quality.
QUICK_DP_OPTIONS: dict[str, dict[str, object]] = {
    "dm": {"iterations": 30, "feature_maps": 4},
    "dc": {"iterations": 10},
    "dpsgd-teacher": {"epochs": 5},
    "pe-vote": {"neighbors": 4},
    "kip": {"iterations": 20, "batch_size": 128},
    "mtt": {
        "iterations": 10,
        "experts": 1,
        "expert_epochs": 3,
        "max_start_epoch": 1,
        "student_steps": 5,
        "hidden": 32,
    },
}
