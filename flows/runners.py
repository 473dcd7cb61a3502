"""Where a study's cells run: a registry of Prefect task runners, and one shared Prefect API.

- `local`: one cell after another in this process (Prefect's thread pool with one thread).
- `dask`: prefect-dask's DaskTaskRunner, by default on a `distributed.LocalCluster` of
  `workers` processes (one thread each), or on an existing cluster at `address`. LiRA's shadow
  re-runs inside a cell then spread over the same cluster (flows.scatter.map_on_dask).

Threads: cells that share a machine must not each spread over every CPU (torch's threads spin
against each other: tdd_priv.threads). A Dask cell therefore runs with torch threads capped at
1 (`Runner.cell_threads`, applied by flows.study.run_cell as a `thread_ceiling`), and the
LocalCluster's worker processes start with OMP/MKL/OpenBLAS threads at 1 (Dask's
`distributed.nanny.pre-spawn-environ` default), so the BLAS under numpy stays at one thread
too. Parallelism comes from the worker processes. A local study runs one cell at a time, which
may use every CPU the thread policy gives it.

One Prefect API for every worker: a Dask worker process hydrates the parent's Prefect settings
(prefect-dask serializes the settings context with each task). Without PREFECT_API_URL, the
parent talks to Prefect's in-process ephemeral API and every worker process would start a
temporary server of its own (measured with prefect 3.9 / prefect-dask 0.3.7: one per worker,
7–15 s each). `shared_prefect_api` avoids that: it starts one temporary server for the study and
sets PREFECT_API_URL to it, so the workers inherit that address. A single `tdd-priv run` uses it
too, so that its server is stopped however the run ends (flows.distill.run_distill_flow).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    temporary_settings,
)
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.scatter import ShadowMap, map_on_dask
from tdd_priv.errors import ConfigError

__all__ = ["RUNNERS", "Runner", "RunnerOptions", "runner", "shared_prefect_api"]


@dataclass(frozen=True)
class RunnerOptions:
    """`workers`: Dask worker processes of a new LocalCluster; `address`: an existing Dask
    scheduler (tcp://host:8786) instead."""

    name: str = "local"
    workers: int = 2
    address: str | None = None


@dataclass(frozen=True)
class Runner:
    """A task runner factory and the map that spreads LiRA's shadows under it."""

    make: Callable[[RunnerOptions], TaskRunner[Any]]
    shadow_map: ShadowMap
    summary: str
    # The most torch threads one cell may use (None: as the thread policy allows).
    cell_threads: int | None = None


def _local(options: RunnerOptions) -> TaskRunner[Any]:
    # One thread: the pipeline's steps are not written to share a process with another run.
    return ThreadPoolTaskRunner(max_workers=1)


def _dask(options: RunnerOptions) -> TaskRunner[Any]:
    from prefect_dask import DaskTaskRunner

    if options.address:
        return DaskTaskRunner(address=options.address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": options.workers,
            "threads_per_worker": 1,  # one cell per process; its torch threads: cell_threads
            "processes": True,
            "dashboard_address": ":0",  # any free port: never clash with another cluster
        },
    )


RUNNERS: dict[str, Runner] = {
    "local": Runner(_local, map, "cells one after another in this process"),
    "dask": Runner(
        _dask,
        map_on_dask,
        "cells as Dask tasks (LocalCluster or --dask-address)",
        cell_threads=1,
    ),
}


def runner(options: RunnerOptions) -> Runner:
    """The registered runner `options.name`, after checking the options fit it."""
    if options.name not in RUNNERS:
        raise ConfigError(f"unknown runner {options.name!r}; valid: {', '.join(RUNNERS)}.")
    if options.address and options.name != "dask":
        raise ConfigError("--dask-address needs --runner dask.")
    if options.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {options.workers}.")
    return RUNNERS[options.name]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _on_this_machine(address: str) -> bool:
    host = urlsplit(address if "://" in address else f"tcp://{address}").hostname or ""
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


@contextmanager
def shared_prefect_api(options: RunnerOptions) -> Iterator[str]:
    """Yield the Prefect API URL every process of the study uses.

    With PREFECT_API_URL set (a `prefect server start`, or a test harness), that one. Otherwise
    start one temporary server (what Prefect would start anyway, on loopback) and point
    PREFECT_API_URL at it for the block, so that Dask workers inherit it instead of starting
    their own; stop it afterwards, once this process's logs are sent. Workers on other machines
    cannot reach loopback: a cluster address off this machine needs a PREFECT_API_URL off it.
    """
    url = PREFECT_API_URL.value()
    remote_workers = bool(options.address) and not _on_this_machine(str(options.address))
    if remote_workers and (not url or _on_this_machine(url)):
        raise ConfigError(
            f"--dask-address {options.address} is on another machine, whose workers cannot reach "
            f"a Prefect API on this one's loopback ({url or 'a temporary server'}): start "
            "`prefect server start --host 0.0.0.0` and set PREFECT_API_URL=http://<this "
            "host>:4200/api here and on the workers (docs/studies.md)."
        )
    if url:
        yield url
        return
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    # A server of its own (Prefect's SubprocessASGIServer() is one shared instance per port, and
    # stopping that one would stop a server someone else in this process still uses).
    server = SubprocessASGIServer(port=_free_port())
    try:  # stopped however the block ends: an error, Ctrl-C, or a stop signal raised by the CLI
        # A fresh PREFECT_HOME migrates its database first: slower than Prefect's 20 s default.
        server.start(timeout=max(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value(), 120))
        with (
            _stopped_on_signals(server),
            temporary_settings(updates={PREFECT_API_URL: server.api_url}),
        ):
            try:
                yield server.api_url
            finally:
                APILogWorker.drain_all(timeout=5)  # this process's logs, while the server is up
    finally:
        server.stop()


_SERVER_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _stopped_on_signals(server: Any) -> Iterator[None]:
    """Stop `server` when SIGTERM or SIGHUP would end this process on the spot (their default
    action), so that it is not orphaned. Prefect's flow engine turns SIGTERM into a crash
    report, then restores the handler it found and re-sends the signal. A handler that raises
    instead (the CLI's) is left alone: the exception ends the block, which stops the server."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers live in the main thread only
        return
    previous = {signum: signal.getsignal(signum) for signum in _SERVER_STOP_SIGNALS}
    ending = [
        signum for signum, handler in previous.items() if handler in (signal.SIG_DFL, None)
    ]  # None: set outside Python

    def stop_then_terminate(signum: int, frame: Any) -> None:
        server.stop()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for signum in ending:
        signal.signal(signum, stop_then_terminate)
    try:
        yield
    finally:
        for signum in ending:
            signal.signal(signum, signal.SIG_DFL)
