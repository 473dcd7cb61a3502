"""Helpers shared by integration and flow tests."""

from pathlib import Path

from tdd_priv.signing import default_key_path

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


def own_key() -> list[str]:
    """`verify` options naming the per-user public key the test runs signed with (the trust
    anchor a user names for their own runs)."""
    return ["--key", str(default_key_path().with_name(default_key_path().name + ".pub"))]
