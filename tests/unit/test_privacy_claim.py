"""One privacy claim, rendered the same in report.json, report.md, report.html and the CLI."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from tdd_priv.cli import _summary
from tdd_priv.data import PoolCheck
from tdd_priv.pipeline import RunResult
from tdd_priv.report import render_markdown, validate_report
from tdd_priv.report.claim import PrivacyClaim, build_claim
from tdd_priv.report.html import render_html
from tests.report_samples import current_schema, non_private_report, private_report

SUMMARY = {
    "mode": "dp",
    "epsilon": 4.0,
    "delta": 1e-5,
    "accountant": "rdp",
    "mechanisms": [{"name": "m", "noise_multiplier": 1.0, "sample_rate": 1.0, "steps": 1}],
}
LEDGER = {"ledger": "x", "runs": 3, "epsilon": 7.5, "delta": 1e-5, "accountant": "rdp", "limit": 8}


def _claim(case: str) -> PrivacyClaim:
    pool = PoolCheck("external", 500, 3, 2)
    cases: dict[str, dict[str, Any]] = {
        "dp-external": {"summary": SUMMARY, "pool_origin": "external", "pool_check": pool},
        "dp-internal": {"summary": SUMMARY, "pool_origin": "internal"},
        "dp-infinite": {"summary": {**SUMMARY, "epsilon": math.inf}, "pool_origin": "external"},
        "no-dp-external": {"summary": None, "pool_origin": "external", "pool_check": pool},
        "no-dp-coreset": {"summary": None, "pool_origin": "none"},
    }
    return build_claim(members=100, released_texts=20, cumulative=LEDGER, **cases[case])


def test_only_a_dp_release_from_an_external_pool_is_covered() -> None:
    assert _claim("dp-external").status == "covered"
    assert _claim("dp-external").badge == "DIFFERENTIALLY PRIVATE"
    assert _claim("dp-internal").status == "not-covered"
    assert _claim("dp-internal").badge == "NOT COVERED"
    for case in ("dp-infinite", "no-dp-external", "no-dp-coreset"):
        assert _claim(case).status == "not-private", case
        assert _claim(case).badge == "NOT PRIVATE", case
        assert _claim(case).epsilon is None and _claim(case).cumulative is None


def test_internal_pool_claim_counts_the_unprotected_rows() -> None:
    claim = _claim("dp-internal")
    assert claim.unprotected_texts == 20
    assert "20 texts are unprotected rows of the input data" in claim.statement
    assert "--public-pool internal" in claim.statement and "NOT covered" in claim.statement
    assert claim.covered == ("synthetic embeddings and their labels",)
    assert any("released texts" in item for item in claim.not_covered)
    assert _claim("dp-external").unprotected_texts == 0
    assert _claim("no-dp-coreset").unprotected_texts == 20


def test_covered_claim_states_epsilon_pool_hygiene_and_cumulative_budget() -> None:
    statement = _claim("dp-external").statement
    assert "(ε = 4, δ = 1.0e-05)-differential privacy for each of the 100 records" in statement
    assert "5 of the external public pool's 500 texts were removed" in statement
    assert "budget ledger holds 3 run(s), ε = 7.5" in statement and "limit of 8" in statement


RENDER_CASES = {
    "dp-external": (private_report, "DIFFERENTIALLY PRIVATE", "pass"),
    "dp-internal": (private_report, "NOT COVERED", "fail"),
    "no-dp-coreset": (non_private_report, "NOT PRIVATE", "fail"),
}


@pytest.mark.parametrize("case", sorted(RENDER_CASES))
def test_every_renderer_shows_the_same_claim(case: str, tmp_path: Path) -> None:
    build, badge, tone = RENDER_CASES[case]
    claim = _claim(case)
    report = current_schema(build(), claim)
    validate_report(report)
    assert PrivacyClaim.from_report(report) == claim  # read back exactly as built
    markdown = render_markdown(report)
    assert f"| Privacy | **{badge}**" in markdown
    assert claim.statement in markdown  # the scope section states it in full
    html = render_html(report, tmp_path)
    assert f'<span class="badge {tone}">{badge}</span>' in html
    assert ("summary not-private" in html) is (tone == "fail")
    printed = _summary(RunResult(out=tmp_path / "run", report=report))
    assert f"privacy      {badge}: {claim.statement}" in printed


def test_a_dp_claim_can_never_sit_in_a_not_private_report() -> None:
    report = current_schema(non_private_report(), _claim("dp-external"))
    with pytest.raises(ValueError, match="not-private"):
        validate_report(report)


def test_old_reports_render_a_claim_derived_from_their_mode() -> None:
    old_private = PrivacyClaim.from_report(private_report())
    assert (
        old_private.status == "covered"
        and old_private.epsilon == private_report()["privacy"]["epsilon"]
    )
    old_plain = PrivacyClaim.from_report(non_private_report())
    assert old_plain.status == "not-private"
    assert "NOT PRIVATE" in render_markdown(non_private_report())
