"""A release made outside tdd-priv gets NO privacy claim, and every renderer says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tdd_priv.cli import _summary
from tdd_priv.pipeline import RunResult
from tdd_priv.report import render_markdown, validate_report
from tdd_priv.report.claim import PrivacyClaim, build_claim
from tdd_priv.report.html import render_html
from tests.report_samples import current_schema, non_private_report, private_report

DP_SUMMARY = {
    "mode": "dp",
    "epsilon": 1.0,
    "delta": 1e-5,
    "accountant": "rdp",
    "mechanisms": [{"name": "m", "noise_multiplier": 1.0, "sample_rate": 1.0, "steps": 1}],
}


def _external_claim(summary: dict[str, object] | None = None) -> PrivacyClaim:
    return build_claim(summary=summary, members=240, pool_origin="unknown", released_texts=20)


def test_a_release_made_elsewhere_claims_nothing_whatever_it_states() -> None:
    for summary in (None, DP_SUMMARY):  # an ε someone wrote down is not one tdd-priv can check
        claim = _external_claim(summary)
        assert claim.status == "no-claim" and claim.badge == "NO PRIVACY CLAIM"
        assert claim.epsilon is None and claim.delta is None and claim.mechanisms == 0
        assert not claim.private and claim.covered == () and claim.declared_public == ()
        assert claim.unprotected_texts is None  # unknown: the leakage audit counts copies
    statement = _external_claim().statement
    assert "made outside tdd-priv" in statement and "cannot say how it was made" in statement
    assert "treat it as private data unless its maker's own guarantee" in statement


def test_every_renderer_says_no_privacy_claim(tmp_path: Path) -> None:
    claim = _external_claim()
    report = current_schema(non_private_report(), claim)
    validate_report(report)
    assert PrivacyClaim.from_report(report) == claim
    markdown = render_markdown(report)
    assert "| Privacy | **NO PRIVACY CLAIM**" in markdown and claim.statement in markdown
    html = render_html(report, tmp_path)
    assert '<span class="badge fail">NO PRIVACY CLAIM</span>' in html
    assert "summary not-private" in html and claim.statement in html
    printed = _summary(RunResult(out=tmp_path / "run", report=report))
    assert f"privacy      NO PRIVACY CLAIM: {claim.statement}" in printed


def test_a_no_claim_can_never_sit_in_a_report_that_states_an_epsilon() -> None:
    report = current_schema(private_report(), _external_claim())
    with pytest.raises(ValueError, match="no-claim"):
        validate_report(report)
