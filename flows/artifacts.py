"""Prefect artifacts of a distill run: a markdown summary, a verdict table, a link to the folder.

Artifacts with the same key form one versioned series in the Prefect UI, so the key names the
job (its deployment, or its data and method), not the single run: each scheduled run adds a
version to the same three artifacts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from tdd_priv.report import render_markdown
from tdd_priv.report.escape import printable

__all__ = ["artifact_key", "publish_artifacts", "verdict_table"]

_SUMMARY_SECTIONS = ("summary", "utility", "verdicts")


def artifact_key(name: str) -> str:
    """A valid artifact key (lowercase letters, digits, dashes) from any job name."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"tdd-priv-{slug or 'run'}"


def verdict_table(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per policy check: status (PASS, FAIL, INCONCLUSIVE, SKIPPED), measured value,
    threshold, interval, whether the test could fail, and what it means."""
    return [
        {
            "check": printable(name),  # check names and notes come from the policy file
            "status": verdict["status"],
            "value": verdict.get("value"),
            "threshold": verdict.get("threshold"),
            "interval": verdict.get("interval"),
            "can_fail": verdict.get("can_fail"),
            "note": printable(verdict.get("note", "")),
        }
        for name, verdict in report.get("verdicts", {}).items()
    ]


def publish_artifacts(report: Mapping[str, Any], out: Path, *, key: str) -> None:
    """Create (or version) the run's three artifacts under `key`-summary/-verdicts/-folder."""
    folder = Path(out).resolve()
    summary = render_markdown(report, sections=_SUMMARY_SECTIONS, figures=False)
    create_markdown_artifact(
        summary + f"\nRun folder: `{folder}` (full report: `report.html`).\n",
        key=f"{key}-summary",
        description=f"tdd-priv run {report['run_id']}",
    )
    rows = verdict_table(report)
    create_table_artifact(
        rows or [{"check": "none", "status": "no audits ran (audit level none)"}],
        key=f"{key}-verdicts",
        description="policy verdicts: PASS / FAIL / INCONCLUSIVE / SKIPPED with value, threshold, "
        "interval and whether the test could fail",
    )
    create_link_artifact(
        (folder / "report.html").as_uri(),
        link_text=f"report of {report['run_id']}",
        key=f"{key}-folder",
        description=f"the signed run folder {folder}",
    )
