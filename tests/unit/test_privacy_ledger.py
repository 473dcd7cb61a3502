"""Ledger and accounting: ε equals opacus's accountants fed the same history."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from opacus.accountants import PRVAccountant, RDPAccountant

from tdd_priv.privacy import ledger as ledger_module
from tdd_priv.privacy.ledger import (
    AccountingError,
    MechanismRecord,
    PrivacyLedger,
    compute_epsilon,
    epsilon_summary,
)

GOLDEN = MechanismRecord("dp_sgd", noise_multiplier=1.5, sample_rate=0.04, steps=2250)


def test_golden_rdp_value_from_opacus_tests() -> None:
    assert compute_epsilon([GOLDEN], delta=1e-5) == pytest.approx(7.329, abs=5e-4)


def test_golden_prv_value_from_opacus_tests() -> None:
    # opacus's tests state 6.777 for this history; its PRV grid gives an upper bound within 0.01.
    assert compute_epsilon([GOLDEN], delta=1e-5, accountant="prv") == pytest.approx(6.777, abs=0.01)


def test_composition_equals_opacus_stepping_through_the_same_mechanisms() -> None:
    one_shot = MechanismRecord("dm.class_sums", 3.0, 1.0, 1)
    sampled = MechanismRecord("dc.gradients", 1.1, 0.02, 40)
    ours = compute_epsilon([one_shot, sampled], delta=1e-5)
    opacus = RDPAccountant()
    opacus.step(noise_multiplier=3.0, sample_rate=1.0)
    for _ in range(40):
        opacus.step(noise_multiplier=1.1, sample_rate=0.02)
    assert opacus.history == [one_shot.history_entry, sampled.history_entry]
    assert ours == pytest.approx(opacus.get_epsilon(delta=1e-5), rel=1e-12)
    # Composition costs more than either part alone.
    assert ours > max(
        compute_epsilon([one_shot], delta=1e-5), compute_epsilon([sampled], delta=1e-5)
    )


def test_prv_composition_equals_opacus_fed_the_same_history() -> None:
    mechanisms = [MechanismRecord("a", 2.0, 1.0, 1), MechanismRecord("b", 1.0, 0.05, 200)]
    opacus = PRVAccountant()
    opacus.history = [m.history_entry for m in mechanisms]
    with np.errstate(divide="ignore"):  # PRV's grid takes log(0) at its edges (masked out)
        expected = opacus.get_epsilon(delta=1e-5)
    assert compute_epsilon(mechanisms, delta=1e-5, accountant="prv") == pytest.approx(expected)


def test_repeated_records_compose_like_one_record_with_their_steps() -> None:
    split = [MechanismRecord("x", 1.2, 0.1, 30), MechanismRecord("y", 1.2, 0.1, 70)]
    whole = [MechanismRecord("x", 1.2, 0.1, 100)]
    assert compute_epsilon(split, delta=1e-6) == pytest.approx(compute_epsilon(whole, delta=1e-6))


def test_json_entries_give_the_same_epsilon_as_records() -> None:
    entries = json.loads(json.dumps([GOLDEN.to_json()]))
    assert compute_epsilon(entries, delta=1e-5) == compute_epsilon([GOLDEN], delta=1e-5)


def test_edge_cases_no_mechanism_no_noise_no_steps() -> None:
    assert compute_epsilon([], delta=1e-5) == 0.0
    assert compute_epsilon([MechanismRecord("idle", 1.0, 0.5, 0)], delta=1e-5) == 0.0
    assert compute_epsilon([MechanismRecord("none", 1.0, 0.0, 10)], delta=1e-5) == 0.0
    assert compute_epsilon([MechanismRecord("exact", 0.0, 1.0, 1), GOLDEN], delta=1e-5) == math.inf
    with pytest.raises(ValueError, match="accountant"):
        compute_epsilon([GOLDEN], delta=1e-5, accountant="gdp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="δ"):
        compute_epsilon([GOLDEN], delta=0.0)


def test_one_shot_gaussian_is_monotone_in_sigma() -> None:
    eps = [compute_epsilon([MechanismRecord("g", s, 1.0, 1)], delta=1e-5) for s in (0.8, 1, 2, 5)]
    assert eps == sorted(eps, reverse=True) and eps[-1] > 0


def test_record_to_json_has_exactly_the_report_keys() -> None:
    entry = GOLDEN.to_json()
    assert list(entry) == ["name", "noise_multiplier", "sample_rate", "steps"]
    assert MechanismRecord.from_json(entry) == GOLDEN


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "noise_multiplier": -1, "sample_rate": 0.1, "steps": 1}, "noise_multiplier"),
        ({"name": "x", "noise_multiplier": 1, "sample_rate": 1.5, "steps": 1}, "sample_rate"),
        ({"name": "x", "noise_multiplier": 1, "sample_rate": 0.1, "steps": 1.5}, "steps"),
        ({"name": "", "noise_multiplier": 1, "sample_rate": 0.1, "steps": 1}, "name"),
        ({"name": "x", "noise_multiplier": 1, "steps": 1}, "sample_rate"),
    ],
)
def test_invalid_records_are_refused(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_epsilon([entry], delta=1e-5)


def test_ledger_merges_consecutive_identical_releases() -> None:
    ledger = PrivacyLedger()
    for _ in range(3):
        ledger.spend("dc.gradients", noise_multiplier=1.0, sample_rate=0.1)
    ledger.append(MechanismRecord("counts", 5.0, 1.0, 1))
    ledger.extend([MechanismRecord("dc.gradients", 1.0, 0.1, 2)])
    assert ledger.records == (
        MechanismRecord("dc.gradients", 1.0, 0.1, 3),
        MechanismRecord("counts", 5.0, 1.0, 1),
        MechanismRecord("dc.gradients", 1.0, 0.1, 2),
    )
    assert len(ledger) == 3
    assert ledger.epsilon(delta=1e-5) == compute_epsilon(ledger.records, delta=1e-5)
    assert PrivacyLedger(ledger.to_json()).records == ledger.records


def test_summary_has_rdp_epsilon_and_prv_cross_check() -> None:
    summary = epsilon_summary(PrivacyLedger([GOLDEN]), delta=1e-5)
    assert summary["mode"] == "dp" and summary["accountant"] == "rdp"
    assert summary["epsilon"] == compute_epsilon([GOLDEN], delta=1e-5)
    assert summary["prv_epsilon"] == pytest.approx(6.777, abs=0.01)
    assert summary["prv_note"] is None
    assert summary["delta"] == 1e-5
    assert summary["mechanisms"] == [GOLDEN.to_json()]
    json.dumps(summary)


def test_summary_skips_prv_at_huge_epsilon_and_says_so() -> None:
    summary = epsilon_summary([MechanismRecord("weak", 0.3, 0.5, 1000)], delta=1e-5)
    assert summary["epsilon"] > 1000
    assert summary["prv_epsilon"] is None
    assert "RDP" in summary["prv_note"]


def test_summary_falls_back_to_rdp_when_prv_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: PRVAccountant, delta: float, **kwargs: object) -> float:
        raise MemoryError("domain too large")

    monkeypatch.setattr(ledger_module.PRVAccountant, "get_epsilon", fail)
    with pytest.raises(AccountingError, match="PRV accountant failed"):
        compute_epsilon([GOLDEN], delta=1e-5, accountant="prv")
    summary = epsilon_summary([GOLDEN], delta=1e-5)
    assert summary["epsilon"] == pytest.approx(7.329, abs=5e-4)
    assert summary["prv_epsilon"] is None
    assert "PRV failed" in summary["prv_note"] and "domain too large" in summary["prv_note"]


def test_docs_snippet_recomputes_the_stated_epsilon_with_opacus_alone(tmp_path: Path) -> None:
    """docs/privacy.md shows how to recompute ε from report.json; run that very snippet."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"
    snippet = docs.read_text(encoding="utf-8").split("```python\n")[1].split("```")[0]
    ledger = PrivacyLedger(
        [
            MechanismRecord("counts", 4.0, 1.0, 1),
            MechanismRecord("dc.gradients", 1.1, 0.02, 300),
            MechanismRecord("dm.class_sums", 2.0, 1.0, 1),
            MechanismRecord("dc.gradients", 1.1, 0.02, 200),
            MechanismRecord("idle", 1.0, 0.3, 0),
        ]
    )
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"privacy": epsilon_summary(ledger, delta=1e-5)}))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(snippet.replace("DIR/report.json", str(report)), {})
    recomputed, stated = (float(part) for part in printed.getvalue().split("stated:"))
    assert recomputed == pytest.approx(stated, rel=1e-12)
    assert stated == ledger.epsilon(delta=1e-5)
