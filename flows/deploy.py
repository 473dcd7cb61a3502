"""A scheduled deployment of the distill flow, served from this process (`tdd-priv deploy`).

`flow.serve` registers the deployment with its cron schedule on the Prefect server that
PREFECT_API_URL points at, then polls it and runs every scheduled or triggered run in a
subprocess here. Each run writes a new folder under `runs_dir`. The config is validated (data
read and split, in memory) before anything is registered, and stored in the deployment's
parameters in full, so a scheduled run does what was deployed even if the file changes later.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect.schedules import Cron, Schedule

from flows.distill import distill_flow
from tdd_priv.config import RunConfig
from tdd_priv.errors import ConfigError
from tdd_priv.pipeline import preflight

__all__ = ["DeploymentSpec", "cron_schedule", "deployment_parameters", "serve_deployment"]


@dataclass(frozen=True)
class DeploymentSpec:
    """What `tdd-priv deploy` registers: a named, scheduled distill job."""

    name: str
    cron: str
    runs_dir: Path
    timezone: str = "UTC"
    paused: bool = False


def _absolute(config: RunConfig) -> RunConfig:
    """Paths made absolute, since served runs execute in another process."""
    spec = config.data.spec
    pool = config.data.public_pool
    data = replace(
        config.data,
        spec=str(Path(spec).resolve()) if Path(spec).exists() else spec,
        public_pool=str(Path(pool).resolve()) if pool and Path(pool).exists() else pool,
    )
    audit = (
        replace(config.audit, policy=config.audit.policy.resolve())
        if config.audit.policy
        else config.audit
    )
    return replace(
        config,
        data=data,
        audit=audit,
        cache_dir=Path(config.cache_dir).resolve(),
        signing_key=config.signing_key.resolve() if config.signing_key else None,
        orchestrator="prefect",
        progress=False,  # no terminal to draw progress bars on
    )


def _scheduled(config: RunConfig, spec: DeploymentSpec) -> RunConfig:
    """The config every scheduled run uses: no fixed noise seed (refused), and a budget ledger
    named after the deployment unless one is named, so that its runs compose even when the data
    changes between them."""
    if config.privacy.noise_seed is not None:
        raise ConfigError(
            "privacy.noise_seed is set: every scheduled run would draw the same noise, and "
            "differencing two releases on changing data would reveal the change. Remove it; "
            "each run then draws fresh secret noise."
        )
    if config.privacy.enabled and config.privacy.budget_ledger is None:
        ledger = re.sub(r"[^A-Za-z0-9._-]+", "-", spec.name).strip("-.") or "deployment"
        config = config.with_overrides({"privacy.budget_ledger": f"deployment-{ledger}"})
    return config


def deployment_parameters(config: RunConfig, spec: DeploymentSpec) -> dict[str, Any]:
    """The flow parameters of the deployment: the full config (never a noise seed), where runs
    go, artifact key."""
    return {
        "config": _absolute(_scheduled(config, spec)).to_dict(),
        "runs_dir": str(spec.runs_dir.resolve()),
        "artifact_name": spec.name,
    }


def cron_schedule(spec: DeploymentSpec) -> Schedule:
    """The deployment's schedule; a clear error for a bad cron string or time zone."""
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--timezone {spec.timezone!r} is not an IANA time zone") from None
    try:
        return Cron(spec.cron, timezone=spec.timezone)
    except ValueError as error:
        raise ConfigError(f"--cron {spec.cron!r}: {error}") from error


def serve_deployment(config: RunConfig, spec: DeploymentSpec) -> None:
    """Validate, register the scheduled deployment and serve it until interrupted."""
    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError(
            "tdd-priv deploy needs a Prefect server that outlives this command: start one with "
            "`prefect server start` and set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api); "
            "see docs/operations.md."
        )
    schedule = cron_schedule(spec)
    config = _scheduled(config, spec)
    preflight(config.with_overrides({"out": str(spec.runs_dir / "preflight-check")}))
    spec.runs_dir.mkdir(parents=True, exist_ok=True)
    distill_flow.serve(
        name=spec.name,
        schedules=[schedule],
        parameters=deployment_parameters(config, spec),
        paused=spec.paused,
        description=f"tdd-priv distill of {config.data.spec} ({config.method}), runs in "
        f"{spec.runs_dir.resolve()}",
        tags=["tdd-priv"],
    )
