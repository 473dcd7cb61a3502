"""LiRA's shadows run through the map the auditor is given, with results in the right order."""

from collections.abc import Callable, Iterable
from typing import Any

import cloudpickle
import numpy as np

from audits.membership import MembershipAudit, ShadowRun
from tests.unit.test_audit_membership import _coreset_run, _fit_predict, _Run


def _with_shadows(run: _Run, shadows: int) -> _Run:
    universe = np.concatenate([run.members.embeddings, run.nonmembers.embeddings])
    labels = np.concatenate([run.members.labels, run.nonmembers.labels])

    def shadow_release(in_mask: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.flatnonzero(in_mask)[:40]
        return universe[rows], np.eye(2, dtype=np.float32)[labels[rows]]

    run.shadows, run.shadow_release = shadows, shadow_release
    return run


def test_a_custom_map_sees_every_shadow_and_changes_nothing() -> None:
    mapped: list[int] = []

    def backwards_map(function: Callable[[int], Any], items: Iterable[int]) -> list[Any]:
        # runs the shadows in reverse, as a cluster might finish them, but returns them in order
        items = list(items)
        mapped.extend(items)
        done = {item: function(item) for item in reversed(items)}
        return [done[item] for item in items]

    here = MembershipAudit(shadows=4)(_with_shadows(_coreset_run(released=40), 4))
    spread = MembershipAudit(shadows=4, map_shadows=backwards_map)(
        _with_shadows(_coreset_run(released=40), 4)
    )
    assert mapped == [0, 1, 2, 3]
    assert "lira_online" in spread["attacks"]
    assert spread["attacks"] == here["attacks"]

    def shuffling_map(function: Callable[[int], Any], items: Iterable[int]) -> list[Any]:
        return [function(item) for item in reversed(list(items))]  # a broken map: wrong order

    shuffled = MembershipAudit(shadows=4, map_shadows=shuffling_map)(
        _with_shadows(_coreset_run(released=40), 4)
    )
    assert shuffled["attacks"] != here["attacks"]  # so the equality above can fail


def test_a_shadow_run_pickles_for_another_process() -> None:
    run = _with_shadows(_coreset_run(released=40), 2)
    x = np.concatenate([run.members.embeddings, run.nonmembers.embeddings])
    shadow_in = np.zeros((2, len(x)), dtype=bool)
    shadow_in[:, :60] = True
    shadow = ShadowRun(run.shadow_release, _fit_predict, shadow_in, x, seed=3)
    copy = cloudpickle.loads(cloudpickle.dumps(shadow))
    np.testing.assert_allclose(copy(1), shadow(1))
    assert shadow(1).shape == (len(x), 2)
