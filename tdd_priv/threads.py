"""How many CPU threads torch may use for a block of work: one policy, applied per workload.

On a machine shared with other jobs (a CI runner, a scheduled-run worker, a Dask worker, a
laptop compiling something), torch's intra-op threads busy-wait for each other at the end of
every parallel region. For a small model each region is tiny, so a thread that the OS has
descheduled stalls the others far longer than the work takes: training one evaluation head
measured 20–40× slower with 2 threads than with 1 on a loaded 2-core machine. Large matrix work
(encoding, kernels over thousands of rows) does enough per region to gain from several threads.

The policy (`WORKLOADS`):
- small models (evaluation heads, DP-SGD heads, the audits' models, distillation and
  realization over small sets) run single-threaded;
- encoding runs on as many threads as there are idle CPUs (`idle_cpus`, sampled from
  /proc/stat when the block starts), within the threads available. Idle, not all: it measured
  3.5× slower with 2 threads than with 1 on a 2-core machine at load 8. Its results do not
  depend on the thread count (every reduction is within a row; measured bit-identical with 1
  and 2 threads), and the cache fixes them for later runs, so the count may follow the load;
- other matrix work (distillation and realization over many rows) runs on every thread
  available. Its results can differ in the last bits with the number of threads (a sum over
  rows is split per thread), so the count depends only on the machine and the user's bounds,
  never on the momentary load: one seed still fixes the run. On a busy machine, bound it with
  `--threads` (a greedy selection measured 1.6× slower with 2 threads than 1 at load 7).

"Available" is an upper bound the user controls (`available_threads`): the CPUs this process
may run on (affinity and cgroup quota), `OMP_NUM_THREADS`, torch's own setting when the block
starts (so a caller's `torch.set_num_threads(k)` holds), the innermost `thread_ceiling` block,
and the run's `threads` setting. A block can lower the count, never raise it above that bound.

torch's thread count is per OS thread (OpenMP), so a block sets and restores it in the thread
that runs the block: the step itself, wherever an orchestrator runs it. The ceiling travels as
a context variable, which Prefect copies into the threads its tasks run in.

`TDD_PRIV_THREAD_POLICY=off` leaves torch's threads alone everywhere (what tdd-priv did before
this policy; `bench/contention.py` measures both).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from tdd_priv.errors import ConfigError

__all__ = [
    "MATRIX_ROWS",
    "POLICY_ENV",
    "WORKLOADS",
    "Workload",
    "WorkloadPolicy",
    "available_threads",
    "idle_cpus",
    "policy_enabled",
    "thread_ceiling",
    "torch_threads",
    "workload_for_rows",
    "workload_threads",
]

POLICY_ENV = "TDD_PRIV_THREAD_POLICY"
Workload = Literal["small-models", "encoding", "matrix"]


@dataclass(frozen=True)
class WorkloadPolicy:
    """A workload's thread count, from the threads available (≥ 1) and, for a workload that
    `follows_load`, the idle CPUs of the machine (None where they cannot be measured)."""

    threads: Callable[[int, float | None], int]
    follows_load: bool = False


def _idle_threads(available: int, idle: float | None) -> int:
    # Rounded down unless nearly idle (0.75 of a CPU counts as one): an extra thread gains at
    # most 2× where a contended one costs 3× and more.
    return available if idle is None else max(1, min(available, math.floor(idle + 0.25)))


WORKLOADS: dict[Workload, WorkloadPolicy] = {
    # A few hundred optimiser steps on (≤ tens of thousands, 384) inputs: per-step work is too
    # small to split, and spinning threads are what made them 20–40× slower under load.
    "small-models": WorkloadPolicy(lambda available, idle: 1),
    # Transformer forward passes: large regions, results independent of the thread count.
    "encoding": WorkloadPolicy(_idle_threads, follows_load=True),
    # Kernel matrices and greedy selection over a large pool: results may depend on the count.
    "matrix": WorkloadPolicy(lambda available, idle: available),
}

# Distillation over fewer rows (members + public pool) than this is a small-models workload:
# its per-step tensors are a few MB, too little to split across threads.
MATRIX_ROWS = 20_000

_CEILING: ContextVar[int | None] = ContextVar("tdd_priv_thread_ceiling", default=None)
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def policy_enabled() -> bool:
    """False when `TDD_PRIV_THREAD_POLICY=off`: blocks then leave torch's threads as they are."""
    value = os.environ.get(POLICY_ENV, "on").strip().lower()
    if value not in ("on", "off"):
        raise ConfigError(f"{POLICY_ENV}={value!r}; use 'on' (the default) or 'off'")
    return value == "on"


def _usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, lowered by a cgroup v2 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = _CGROUP_CPU_MAX.read_text(encoding="ascii").split()
        if quota != "max":
            cpus = min(cpus, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit readable here
    return max(1, cpus)


def _omp_num_threads() -> int | None:
    text = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def idle_cpus(*, interval: float = 0.1) -> float | None:
    """How many of the machine's CPUs sat idle over the next `interval` seconds (from
    /proc/stat; idle + iowait time), or None where that cannot be read (not Linux)."""

    def sample() -> tuple[int, int, int]:
        with open("/proc/stat", encoding="ascii") as handle:
            lines = handle.read().splitlines()
        fields = [int(value) for value in lines[0].split()[1:9]]  # the aggregate "cpu" line
        cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
        return fields[3] + fields[4], sum(fields), cpus

    try:
        idle_before, total_before, cpus = sample()
        time.sleep(interval)
        idle_after, total_after, _ = sample()
    except (OSError, ValueError, IndexError):
        return None
    elapsed = total_after - total_before
    if elapsed <= 0:
        return None
    return cpus * (idle_after - idle_before) / elapsed


def workload_for_rows(rows: int) -> Workload:
    """The workload of a distillation over `rows` rows (members + public pool)."""
    return "matrix" if rows >= MATRIX_ROWS else "small-models"


def available_threads(limit: int | None = None) -> int:
    """The most threads a block may use here (≥ 1): the least of the usable CPUs,
    `OMP_NUM_THREADS`, torch's current intra-op setting in this thread, the innermost
    `thread_ceiling`, and `limit` (the run's `threads` setting; None: no limit)."""
    bounds = [_usable_cpus(), torch.get_num_threads()]
    bounds += [b for b in (_omp_num_threads(), _CEILING.get(), limit) if b is not None]
    return max(1, min(bounds))


@contextmanager
def torch_threads(count: int) -> Iterator[int]:
    """Within this block, torch's intra-op threads in this thread are `count`; restored after."""
    if count < 1:
        raise ValueError(f"thread count must be ≥ 1, got {count}")
    previous = torch.get_num_threads()
    if count == previous:
        yield count
        return
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(previous)


@contextmanager
def workload_threads(workload: Workload, *, limit: int | None = None) -> Iterator[int]:
    """Run the block with the threads the policy gives `workload`; yields that count.

    `limit`: the run's `threads` setting (None: no limit beyond `available_threads`). With the
    policy off (`TDD_PRIV_THREAD_POLICY=off`), torch's setting is left as it is.
    """
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; valid: {', '.join(WORKLOADS)}")
    if not policy_enabled():
        yield torch.get_num_threads()
        return
    policy = WORKLOADS[workload]
    available = available_threads(limit)
    idle = idle_cpus() if policy.follows_load and available > 1 else None
    with torch_threads(policy.threads(available, idle)) as count:
        yield count


@contextmanager
def thread_ceiling(count: int | None) -> Iterator[None]:
    """Within this block (and the Prefect tasks it starts), no workload uses more than `count`
    threads; None leaves the current ceiling. For callers that run several jobs side by side in
    one machine, e.g. one study cell per Dask worker process."""
    if count is not None and count < 1:
        raise ValueError(f"thread ceiling must be ≥ 1, got {count}")
    current = _CEILING.get()
    lowered = count if current is None or count is None else min(current, count)
    token = _CEILING.set(current if count is None else lowered)
    try:
        yield
    finally:
        _CEILING.reset(token)
