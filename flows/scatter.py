"""Spreading independent calls (LiRA's shadow re-runs) over a Dask cluster.

`audits.membership.MembershipAudit` runs its shadows with a `map(function, items)` it is given.
`flows.extensions.build_extensions` hands it `current_shadow_map()`: the builtin `map` unless a
caller (the study flow, on Dask) wrapped the run in `shadow_map(map_on_dask)`. A context
variable, so that the distill flow's signature stays a plain config and the choice never
leaks into another run. Nothing here imports Prefect or Dask at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["ShadowMap", "current_shadow_map", "map_on_dask", "shadow_map"]

ShadowMap = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]

_SHADOW_MAP: ContextVar[ShadowMap] = ContextVar("tdd_priv_shadow_map", default=map)
_log = logging.getLogger(__name__)


def current_shadow_map() -> ShadowMap:
    """The map the membership audit should run its shadows with (default: builtin map)."""
    return _SHADOW_MAP.get()


@contextmanager
def shadow_map(mapper: ShadowMap) -> Iterator[None]:
    """Within this block, runs built by build_extensions spread their shadows with `mapper`."""
    token = _SHADOW_MAP.set(mapper)
    try:
        yield
    finally:
        _SHADOW_MAP.reset(token)


def _apply(function: Callable[[Any], Any], item: Any) -> Any:
    return function(item)


def map_on_dask(function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """map(function, items) as Dask tasks on the cluster of the worker this runs on.

    `worker_client` secedes this task from the worker's thread pool while it waits, so a cell
    waiting for its shadows never blocks the threads the shadows need. The function (with the
    run's data it closes over) is scattered once, not shipped with every item. Outside a Dask
    worker it falls back to the builtin map.
    """
    from distributed import get_worker, worker_client

    items = list(items)
    try:
        get_worker()
    except ValueError:  # not on a Dask worker
        _log.info("map_on_dask: not on a Dask worker; running %d calls here", len(items))
        return list(map(function, items))
    with worker_client() as client:
        [shared] = client.scatter([function], hash=False)
        futures = client.map(_apply, [shared] * len(items), items, pure=False)
        return list(client.gather(futures))
