"""The thread policy: small models single-threaded, matrix work on idle CPUs, within the bounds
the user sets (OMP_NUM_THREADS, torch's own setting, --threads, a runner's ceiling)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from tdd_priv import pipeline, threads
from tdd_priv.config import PrivacyConfig, RunConfig
from tdd_priv.errors import ConfigError
from tdd_priv.threads import (
    POLICY_ENV,
    available_threads,
    thread_ceiling,
    torch_threads,
    workload_for_rows,
    workload_threads,
)

_REAL_IDLE_CPUS = threads.idle_cpus


@pytest.fixture(autouse=True)
def four_cpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A machine of 4 CPUs, all idle, torch at 4 threads, no OMP_NUM_THREADS; restored after."""
    monkeypatch.setattr(threads, "_usable_cpus", lambda: 4)
    monkeypatch.setattr(threads, "idle_cpus", lambda **_: 4.0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(POLICY_ENV, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(before)


def test_torch_threads_sets_the_count_for_the_block_and_restores_it() -> None:
    with torch_threads(1) as count:
        assert count == torch.get_num_threads() == 1
    assert torch.get_num_threads() == 4


def test_the_count_is_restored_when_the_block_fails() -> None:
    with pytest.raises(KeyError), torch_threads(2):
        raise KeyError
    assert torch.get_num_threads() == 4


def test_small_models_run_single_threaded() -> None:
    with workload_threads("small-models") as count:
        assert count == torch.get_num_threads() == 1
    assert torch.get_num_threads() == 4


def test_encoding_takes_the_idle_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    with workload_threads("encoding") as count:
        assert count == torch.get_num_threads() == 4
    for idle, expected in [(0.0, 1), (0.7, 1), (1.8, 2), (2.2, 2), (3.9, 4), (9.0, 4)]:
        monkeypatch.setattr(threads, "idle_cpus", lambda idle=idle, **_: idle)
        with workload_threads("encoding") as count:
            assert count == expected, idle


def test_encoding_uses_the_available_threads_where_idleness_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(threads, "idle_cpus", lambda **_: None)
    with workload_threads("encoding", limit=3) as count:
        assert count == 3


def test_other_matrix_work_never_follows_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    # Its results may depend on the thread count: the count must not depend on the moment.
    def refuse(**_: object) -> float:
        raise AssertionError("matrix work must not sample the load")

    monkeypatch.setattr(threads, "idle_cpus", refuse)
    with workload_threads("matrix") as count:
        assert count == 4
    with workload_threads("matrix", limit=2) as count:
        assert count == 2


@pytest.mark.parametrize(
    "bound",
    ["limit", "omp", "torch", "ceiling", "cpus"],
)
def test_every_user_bound_caps_the_threads(bound: str, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = None
    if bound == "limit":
        limit = 2
    elif bound == "omp":
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
    elif bound == "torch":
        torch.set_num_threads(2)  # a caller's own setting
    elif bound == "cpus":
        monkeypatch.setattr(threads, "_usable_cpus", lambda: 2)
    with thread_ceiling(2 if bound == "ceiling" else None):
        assert available_threads(limit) == 2
        with workload_threads("matrix", limit=limit) as count:
            assert count == 2


def test_a_ceiling_only_ever_lowers() -> None:
    with thread_ceiling(2):
        with thread_ceiling(3):
            assert available_threads() == 2
        with thread_ceiling(1):
            assert available_threads() == 1
        with thread_ceiling(None):
            assert available_threads() == 2
    assert available_threads() == 4


def test_the_ceiling_reaches_threads_started_with_the_context_copied() -> None:
    # Prefect's task runners run each task in contextvars.copy_context(): so does this.
    import contextvars

    seen: list[int] = []
    with thread_ceiling(1):
        context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(lambda: seen.append(available_threads()),))
    worker.start()
    worker.join()
    assert seen == [1]


def test_a_block_in_another_thread_leaves_this_threads_count_alone() -> None:
    seen: list[int] = []

    def work() -> None:
        with workload_threads("small-models"):
            seen.append(torch.get_num_threads())

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen == [1]
    assert torch.get_num_threads() == 4


def test_the_policy_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(POLICY_ENV, "off")
    with workload_threads("small-models") as count:
        assert count == torch.get_num_threads() == 4
    monkeypatch.setenv(POLICY_ENV, "sometimes")
    with pytest.raises(ConfigError, match=POLICY_ENV), workload_threads("small-models"):
        pass


def test_unknown_workloads_and_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown workload"), workload_threads("huge"):  # type: ignore[arg-type]
        pass
    with pytest.raises(ValueError), torch_threads(0):
        pass


def test_distillation_is_matrix_work_only_over_many_rows() -> None:
    assert workload_for_rows(threads.MATRIX_ROWS - 1) == "small-models"
    assert workload_for_rows(threads.MATRIX_ROWS) == "matrix"


def test_the_idle_reading_lies_between_no_cpu_and_every_cpu() -> None:
    idle = _REAL_IDLE_CPUS(interval=0.05)
    assert idle is None or 0.0 <= idle <= (os.cpu_count() or 1) + 1e-9


# --- the pipeline applies the policy at its steps ---------------------------------------------


def _recording(record: list[int], result: Any = None) -> Any:
    def step(*args: Any, **kwargs: Any) -> Any:
        record.append(torch.get_num_threads())
        return result

    return step


def test_the_evaluate_step_trains_its_models_single_threaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[int] = []
    monkeypatch.setattr(pipeline, "_evaluate", _recording(seen))
    config = RunConfig(threads=3)
    pipeline.evaluate_step(None, None, None, None, None, config)  # type: ignore[arg-type]
    assert seen == [1]
    assert torch.get_num_threads() == 4


def test_the_encode_step_runs_on_the_idle_cpus_within_threads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    seen: list[int] = []

    class Encoded:
        path = tmp_path / "rows.npy"
        model_hash = "m"

    monkeypatch.setattr(pipeline, "encode_cached", _recording(seen, Encoded()))

    class Loaded:
        texts = ("a", "b")
        external_pool = None

    pipeline.encode_step(Loaded(), RunConfig(threads=3))  # type: ignore[arg-type]
    pipeline.encode_step(Loaded(), RunConfig())  # type: ignore[arg-type]
    assert seen == [3, 4]


@pytest.mark.parametrize(("members", "expected"), [(100, 1), (threads.MATRIX_ROWS, 4)])
def test_distillation_threads_follow_its_rows(
    members: int, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    monkeypatch.setattr(pipeline, "distill", _recording(seen))
    inputs = pipeline.DistillInput(
        np.zeros((members, 2), np.float32), np.zeros(members, np.int64), 1, 1, seed=0
    )
    monkeypatch.setattr(pipeline, "_distill_input", lambda *args: inputs)
    config = RunConfig(privacy=PrivacyConfig(enabled=False))
    pipeline.distill_step(None, None, None, config)  # type: ignore[arg-type]
    assert seen == [expected]
