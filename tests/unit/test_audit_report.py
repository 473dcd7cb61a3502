"""Real auditor output fits report.json's schema, renders as tables and draws its figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from audits.fairness import FairnessAudit
from audits.leakage import LeakageAudit
from audits.membership import MembershipAudit
from tdd_priv.policy import judge, load_policy
from tdd_priv.report.figures import draw_figures
from tdd_priv.report.markdown import render_markdown
from tdd_priv.report.schema import schema_errors
from tests.report_samples import private_report
from tests.unit.test_audit_membership import _coreset_run, _Records


def _audited_report() -> dict:  # type: ignore[type-arg]
    run = _coreset_run(released=20)
    rng = np.random.default_rng(0)
    test = run.test
    groups = {"group": rng.choice(["p", "q", "tiny"], size=len(test.labels), p=[0.5, 0.45, 0.05])}
    run.test = _Records(test.ids, test.texts, test.embeddings, test.labels, groups)
    report = private_report()
    report["audits"] = {
        "membership": MembershipAudit()(run),
        "leakage": LeakageAudit()(run),
        "fairness": FairnessAudit(min_group_size=10, n_boot=20)(run),
    }
    report["verdicts"] = judge(load_policy(), report)
    report["policy"] = load_policy().to_json()
    return json.loads(json.dumps(report))  # as written to disk


def test_auditor_sections_follow_the_schema() -> None:
    assert schema_errors(_audited_report()) == []


def test_audit_sections_render_as_tables_and_figures(tmp_path: Path) -> None:
    report = _audited_report()
    report["figures"] = draw_figures(report, tmp_path / "figures")
    names = [entry["name"] for entry in report["figures"]]
    assert "membership_roc" in names and "fairness_accuracy" in names
    assert (tmp_path / "figures" / "membership_roc.png").stat().st_size > 1000
    markdown = render_markdown(report)
    assert "| attack | AUC [95 %] |" in markdown
    assert "| released row | private record id |" in markdown
    assert "**By group**" in markdown and "too few" in markdown
    assert "roc.loss.fpr" not in markdown  # curves stay in report.json and the figure
