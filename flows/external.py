"""Prefect flow that audits a release made outside tdd-priv: `tdd_priv.external.audit_release`
with each library step as a task, under the distill flow's step policies (flows.distill)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.artifacts import artifact_key, publish_artifacts
from flows.distill import run_step
from flows.extensions import build_extensions
from tdd_priv.config import RunConfig
from tdd_priv.external import audit_release, external_settings
from tdd_priv.pipeline import RunResult

__all__ = ["audit_release_flow", "run_audit_release_flow"]


@flow(name="tdd-priv-audit-release")
def audit_release_flow(config: dict[str, Any], artifact_name: str | None = None) -> dict[str, Any]:
    """Audit the release `config["release"]` names (RunConfig.to_dict(), no noise seed: an
    audit adds no noise) and publish the run's artifacts (default series: data and release)."""
    run_config = external_settings(RunConfig.from_dict(config))
    report = audit_release(
        run_config, call=run_step, extensions=build_extensions(run_config)
    ).report
    assert run_config.release is not None  # external_settings refuses a config without one
    name = artifact_name or f"{Path(run_config.data.spec).stem}-{run_config.release.stem}"
    publish_artifacts(report, run_config.out, key=artifact_key(f"audit-{name}"))
    return report


def run_audit_release_flow(config: RunConfig) -> RunResult:
    """Run the audit of `config.release` as a flow in this process."""
    report = audit_release_flow(config.without_noise_seed().to_dict())
    return RunResult(out=config.out, report=report)
