"""Prefect flow for one distillation run: each library step runs as a task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.extensions import build_extensions
from tdd_priv.config import RunConfig
from tdd_priv.pipeline import RunResult, execute

__all__ = ["distill_flow", "run_distill_flow"]

T = TypeVar("T")


def _as_task(step: Callable[..., T], *args: Any) -> T:
    # Steps pass numpy arrays between them, so results are neither hashed nor persisted.
    name = step.__name__.removesuffix("_step")
    as_task = task(name=name, cache_policy=NO_CACHE, persist_result=False)
    return as_task(step)(*args)


@flow(name="tdd-priv-distill")
def distill_flow(config: dict[str, Any]) -> dict[str, Any]:
    """Run the library's chain of steps on a config mapping (RunConfig.to_dict()), with the
    toxicity scorers (and auditors) that the config asks for from `audits`."""
    run_config = RunConfig.from_dict(config)
    return execute(run_config, call=_as_task, extensions=build_extensions(run_config)).report


def run_distill_flow(config: RunConfig) -> RunResult:
    return RunResult(out=config.out, report=distill_flow(config.to_dict()))
