"""The privacy budget ledger across runs: composed by opacus, limited, safe under concurrency."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from opacus.accountants import RDPAccountant

from tdd_priv.privacy.budget import BudgetExceeded, BudgetLedger, ledger_name
from tdd_priv.privacy.ledger import MechanismRecord, compute_epsilon

RUN_A = (MechanismRecord("a", 1.2, 0.01, 500), MechanismRecord("counts", 2.0, 1.0, 1))
RUN_B = (MechanismRecord("b", 0.9, 0.02, 300),)
DELTA = 1e-5


def test_cumulative_epsilon_is_opacus_on_every_run_of_the_ledger(tmp_path: Path) -> None:
    ledger = BudgetLedger("data", tmp_path)
    first = ledger.spend(RUN_A, epsilon=1.0, delta=DELTA, limit=None, run="a")
    second = ledger.spend(RUN_B, epsilon=1.0, delta=DELTA, limit=None, run="b")
    accountant = RDPAccountant()
    accountant.history = [m.history_entry for m in (*RUN_A, *RUN_B)]
    assert second.epsilon == pytest.approx(accountant.get_epsilon(delta=DELTA), rel=1e-9)
    assert first.epsilon == pytest.approx(compute_epsilon(RUN_A, delta=DELTA), rel=1e-9)
    assert (first.runs, second.runs) == (1, 2)
    assert second.epsilon > first.epsilon  # a second run on the same data costs privacy


def test_a_run_over_the_limit_is_refused_and_enters_nothing(tmp_path: Path) -> None:
    ledger = BudgetLedger("data", tmp_path)
    single = compute_epsilon(RUN_A, delta=DELTA)
    ledger.spend(RUN_A, epsilon=single, delta=DELTA, limit=single * 1.05, run="a")
    with pytest.raises(BudgetExceeded, match="above --budget-limit"):
        ledger.spend(RUN_A, epsilon=single, delta=DELTA, limit=single * 1.05, run="b")
    assert [entry["run"] for entry in ledger.entries()] == ["a"]


def _spend_many(folder: str, runs: int, limit: float | None) -> int:
    ledger, entered = BudgetLedger("shared", Path(folder)), 0
    for i in range(runs):
        try:
            ledger.spend(RUN_B, epsilon=1.0, delta=DELTA, limit=limit, run=f"r{i}")
            entered += 1
        except BudgetExceeded:
            pass
    return entered


def test_concurrent_runs_never_lose_an_entry(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    with context.Pool(4) as pool:
        entered = pool.starmap(_spend_many, [(str(tmp_path), 5, None)] * 4)
    assert sum(entered) == 20
    assert len(BudgetLedger("shared", tmp_path).entries()) == 20


def test_concurrent_runs_never_both_pass_a_limit_only_one_fits(tmp_path: Path) -> None:
    three = compute_epsilon(RUN_B * 3, delta=DELTA)
    context = multiprocessing.get_context("fork")
    with context.Pool(4) as pool:
        entered = pool.starmap(_spend_many, [(str(tmp_path), 3, three * 1.0001)] * 4)
    assert sum(entered) == 3  # exactly as many runs as the limit holds, whoever got them
    assert len(BudgetLedger("shared", tmp_path).entries()) == 3


def test_ledger_names_never_hold_the_plain_fingerprint() -> None:
    fingerprint = "f" * 64
    name = ledger_name(dataset_fingerprint=fingerprint, configured=None)
    assert name.startswith("dataset-") and "ffff" not in name
    assert name == ledger_name(dataset_fingerprint=fingerprint, configured=None)  # stable
    assert ledger_name(dataset_fingerprint=fingerprint, configured="nightly.v2") == "nightly.v2"
    with pytest.raises(ValueError, match="--budget-ledger"):
        ledger_name(dataset_fingerprint=fingerprint, configured="../escape")
