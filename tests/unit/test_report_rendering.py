"""report.md and report.html: same sections in the same order, self-contained HTML, figures."""

import re
from pathlib import Path
from typing import Any

import pytest

from tdd_priv.report.figures import FIGURES, Figure, draw_figures, register_figure
from tdd_priv.report.html import render_html
from tdd_priv.report.markdown import render_markdown
from tdd_priv.report.sections import build_sections
from tests.report_samples import non_private_report, private_report


def _with_figures(report: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    report["figures"] = draw_figures(report, run_dir / "figures")
    return report


def test_sections_come_in_the_documented_order() -> None:
    keys = [section.key for section in build_sections(private_report())]
    assert keys == [
        "summary",
        "utility",
        "audit-membership",
        "audit-canary",
        "audit-leakage",
        "verdicts",
        "privacy",
        "data",
        "method",
        "environment",
        "scope",
        "integrity",
    ]


def test_missing_audits_have_no_section() -> None:
    keys = [section.key for section in build_sections(non_private_report())]
    assert not any(key.startswith("audit-") or key == "verdicts" for key in keys)


def test_markdown_and_html_share_the_section_order(tmp_path: Path) -> None:
    report = _with_figures(private_report(), tmp_path)
    markdown = render_markdown(report)
    page = render_html(report, tmp_path)
    titles = [s.title for s in build_sections(report) if s.key != "summary"]
    assert re.findall(r"^## (.+)$", markdown, flags=re.M) == titles
    assert re.findall(r"<h2>(.+?)</h2>", page) == ["Summary", *titles]


def test_html_is_self_contained(tmp_path: Path) -> None:
    report = _with_figures(private_report(), tmp_path)
    assert {entry["name"] for entry in report["figures"]} == {"utility", "privacy_ledger", "loss"}
    page = render_html(report, tmp_path)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script" not in page
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(images) == 3
    assert all(src.startswith("data:image/png;base64,iVBOR") for src in images)


def test_text_from_the_report_is_escaped(tmp_path: Path) -> None:
    page = render_html(non_private_report(), tmp_path)
    assert "tiny &lt;news&gt; &amp; co" in page
    assert "<news>" not in page


def test_summary_says_not_private_in_red_and_private_with_epsilon(tmp_path: Path) -> None:
    page = render_html(non_private_report(), tmp_path)
    summary = page[page.index('id="summary"') : page.index('id="utility"')]
    assert '<span class="badge fail">NOT PRIVATE</span>' in summary
    assert "no audit ran" in summary
    private = render_html(private_report(), tmp_path)
    summary = private[private.index('id="summary"') : private.index('id="utility"')]
    assert "NOT PRIVATE" not in summary
    assert "ε = 7.5, δ = 1.0e-05" in summary
    assert "DP-SGD on private train (same ε) 0.800 ± 0.010 (-0.090)" in summary
    assert "full private train 0.860 ± 0.010 (-0.150)" in summary
    assert '<span class="badge fail">FAIL</span> membership_auc' in summary
    assert "abababababababab" in summary  # the signing key id


def test_privacy_ledger_lists_every_mechanism(tmp_path: Path) -> None:
    markdown = render_markdown(private_report())
    ledger = markdown[markdown.index("## Privacy ledger") : markdown.index("## Data")]
    assert "| class_means | 2 | 1 | 1 | 1 |" in ledger
    assert "| dc_gradients | 1.5 | 0.04 | 2,250 | — |" in ledger
    assert "max_grad_norm" in ledger


def test_scope_states_what_is_outside_the_guarantee() -> None:
    for report in (private_report(), non_private_report()):
        markdown = render_markdown(report)
        scope = markdown[markdown.index("## What the privacy guarantee covers") :]
        assert "computed on private data" in scope and "outside" in scope
    assert "no differential-privacy guarantee" in render_markdown(non_private_report())


def test_environment_shows_the_commit_or_says_it_is_unknown() -> None:
    report = non_private_report()
    assert "a" * 40 in render_markdown(report)
    report["environment"]["commit"] = None
    assert "unknown (not run from a git checkout)" in render_markdown(report)


def test_loss_figure_only_when_there_is_a_loss_history(tmp_path: Path) -> None:
    drawn = draw_figures(non_private_report(), tmp_path / "figures")
    assert [entry["name"] for entry in drawn] == ["utility"]
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["utility.png"]


def test_figure_registry_refuses_duplicates_and_plugs_new_figures_in(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_figure(FIGURES["utility"])

    def draw(report: Any, path: Path) -> None:
        path.write_bytes((tmp_path / "figures" / "utility.png").read_bytes())

    roc = Figure(
        "roc_test", "membership", "ROC of the attack.", lambda r: "membership" in r["audits"], draw
    )
    register_figure(roc)
    try:
        report = _with_figures(private_report(), tmp_path)
        assert report["figures"][-1]["path"] == "figures/roc_test.png"
        section = next(s for s in build_sections(report) if s.key == "audit-membership")
        assert any(
            getattr(block, "path", None) == "figures/roc_test.png" for block in section.blocks
        )
    finally:
        del FIGURES["roc_test"]


def test_every_evaluated_set_is_shown_including_new_baselines(tmp_path: Path) -> None:
    report = non_private_report()
    report["utility"]["herding"] = dict(report["utility"]["random"], accuracy_mean=0.66)
    report["utility"]["some_new_set"] = dict(report["utility"]["random"], accuracy_mean=0.5)
    markdown = render_markdown(report)
    assert "| herding k / class | 0.660 ± 0.010 |" in markdown
    assert "| some new set | 0.500 ± 0.010 |" in markdown
    # The realized texts are the synthetic vectors' own records here: shown once.
    assert "synthetic (texts)" not in markdown
    assert draw_figures(report, tmp_path / "figures")[0]["name"] == "utility"


@pytest.mark.parametrize(
    ("fitted_to", "phrase"),
    [
        ("method", "dm's own choice"),
        ("release", "fitted by public-nearest to the set dm released"),
        ("private-data", "selected against the private training records directly"),
    ],
)
def test_the_method_section_says_who_made_the_texts(
    tmp_path: Path, fitted_to: str, phrase: str
) -> None:
    report = private_report()
    report["method"]["name"] = "dm"
    report["synthetic"]["texts_fitted_to"] = fitted_to
    assert phrase in render_markdown(report)
    assert phrase in render_html(report, tmp_path)
    # A report written before the field existed says nothing about it rather than guessing.
    del report["synthetic"]["texts_fitted_to"]
    text = render_markdown(report)
    assert "own choice" not in text and "were fitted" not in text and "were selected" not in text


def test_an_allocation_is_stated_with_its_source() -> None:
    report = private_report()
    report["synthetic"]["allocation"] = {
        "mode": "frequency",
        "total": 12,
        "sizes": {"a": 9, "b": 3},
        "weights": {"a": 0.75, "b": 0.25},
        "estimated_from": "the vote histogram pe-vote released",
    }
    text = render_markdown(report)
    assert "12 texts split by estimated share" in text
    assert (
        "The 12 texts were split over the classes by each class's estimated share, estimated "
        "from the vote histogram pe-vote released" in text
    )
