"""Prefect flow for one distillation run: each library step runs as a task.

How each step runs is a policy, looked up by the step's name:
- steps that only read or write files (load, encode, report) are retried on failure, since
  those fail for passing reasons (a network filesystem, a hub download);
- steps that spend privacy budget are never retried: under DP, distill and experts release
  noisy statistics of the private data, and evaluate trains the DP-SGD baseline on it. A
  retried attempt would release (and spend) again, while the ledger counts one attempt;
- encode and experts are cached across runs under explicit keys (the texts' fingerprint, the
  encoder's weight hash and settings; the members' embeddings, method options, seed and
  privacy settings), with persisted results that are paths into the cache folder, so a second
  run of the same config shows them as Cached and skips them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.runtime import flow_run

from flows.artifacts import artifact_key, publish_artifacts
from flows.extensions import build_extensions
from flows.runners import RunnerOptions, shared_prefect_api
from tdd_priv.config import RunConfig, load_config_file
from tdd_priv.errors import ConfigError
from tdd_priv.pipeline import (
    EmbeddingFiles,
    RunResult,
    encode_key,
    execute,
    experts_key,
    noise_seed_scope,
)

__all__ = [
    "NEVER_RETRIED",
    "STEP_POLICIES",
    "StepPolicy",
    "distill_flow",
    "run_distill_flow",
    "run_step",
]

T = TypeVar("T")

RETRY_DELAY_SECONDS = 2.0


def _always_valid(_: object) -> bool:
    return True


@dataclass(frozen=True)
class StepPolicy:
    """How the flow runs one library step as a Prefect task.

    `cache_key`: called with the step's arguments; when set, the result is persisted and reused
    by later runs with the same key, provided it still passes `valid` (its files still exist).
    """

    retries: int = 0
    cache_key: Callable[..., str] | None = None
    valid: Callable[[Any], bool] = _always_valid


# Steps that spend privacy budget under DP: a retry would spend it twice.
NEVER_RETRIED = frozenset({"budget", "distill", "experts", "evaluate"})

STEP_POLICIES: dict[str, StepPolicy] = {
    "load": StepPolicy(retries=2),
    "encode": StepPolicy(retries=2, cache_key=encode_key, valid=EmbeddingFiles.exist),
    "experts": StepPolicy(cache_key=experts_key, valid=Path.is_file),
    "report": StepPolicy(retries=2),
}


def step_policy(name: str) -> StepPolicy:
    policy = STEP_POLICIES.get(name, StepPolicy())
    if name in NEVER_RETRIED and policy.retries:
        raise AssertionError(f"step {name!r} spends privacy budget and must not be retried")
    return policy


def run_step(step: Callable[..., T], *args: Any) -> T:
    """Run one library step as a Prefect task under its policy (retries, cache)."""
    name = step.__name__.removesuffix("_step")
    policy = step_policy(name)
    common: dict[str, Any] = {
        "name": name,
        "retries": policy.retries,
        "retry_delay_seconds": RETRY_DELAY_SECONDS,
    }
    if policy.cache_key is None:
        # Steps pass numpy arrays between them, so results are neither hashed nor persisted.
        return task(cache_policy=NO_CACHE, persist_result=False, **common)(step)(*args)
    key_of = policy.cache_key

    def cache_key_fn(_: TaskRunContext, parameters: dict[str, Any]) -> str:
        return f"{name}-{key_of(**parameters)}"

    cached = task(cache_key_fn=cache_key_fn, persist_result=True, **common)(step)
    result: T = cached(*args)
    if not policy.valid(result):  # its files were deleted since it was cached: recompute
        result = cached.with_options(refresh_cache=True)(*args)
    return result


def _run_config(
    config: Mapping[str, Any] | None, config_file: str | None, runs_dir: str | None
) -> RunConfig:
    if config is None and config_file is None:
        raise ConfigError("the distill flow needs a config mapping or a config_file")
    run_config = load_config_file(Path(config_file)) if config_file else RunConfig()
    if config is not None:
        run_config = RunConfig.from_dict({**run_config.to_dict(), **config})
    if run_config.privacy.noise_seed is not None:
        # Flow parameters and config files are stored and reused (by the server, by every
        # scheduled run): a fixed seed there would give every run the same noise.
        raise ConfigError(
            "privacy.noise_seed must not reach the distill flow through its parameters or a "
            "config file: remove it (each run then draws fresh secret noise); in-process callers "
            "pass one with tdd_priv.pipeline.noise_seed_scope."
        )
    if runs_dir is not None:
        # Scheduled runs each get a fresh folder: start time (UTC) and the flow run's name.
        started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = flow_run.get_name() or "local"
        run_config = run_config.with_overrides({"out": str(Path(runs_dir) / f"{started}-{name}")})
    return run_config


@flow(name="tdd-priv-distill")
def distill_flow(
    config: dict[str, Any] | None = None,
    config_file: str | None = None,
    runs_dir: str | None = None,
    artifact_name: str | None = None,
) -> dict[str, Any]:
    """Run the library's chain of steps with the toxicity scorers (and auditors) from `audits`.

    config: settings (RunConfig.to_dict(), or some of its top-level keys) on top of
    `config_file` (a YAML config) when both are given. runs_dir: write to a new folder
    `runs_dir/<UTC start>-<flow run name>` instead of the config's `out` (scheduled runs).
    artifact_name: names the versioned artifact series (default: data and method).
    """
    run_config = _run_config(config, config_file, runs_dir)
    report = execute(run_config, call=run_step, extensions=build_extensions(run_config)).report
    name = artifact_name or f"{Path(run_config.data.spec).stem}-{run_config.method}"
    publish_artifacts(report, run_config.out, key=artifact_key(name))
    return report


def run_distill_flow(config: RunConfig) -> RunResult:
    """Run the flow once: on the Prefect API at PREFECT_API_URL, else on a temporary server of
    its own that is stopped however the run ends (an error, or a stop signal the CLI raises).
    The config's noise seed, if any, travels in-process, never as a flow parameter."""
    with shared_prefect_api(RunnerOptions()), noise_seed_scope(config.privacy.noise_seed):
        report = distill_flow(config.without_noise_seed().to_dict())
    return RunResult(out=config.out, report=report, private=config.private_folder)
