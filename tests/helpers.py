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
