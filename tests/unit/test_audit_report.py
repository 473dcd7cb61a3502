"""Real auditor output fits report.json's schema (every field declared, so a policy may name
it), renders as tables and draws its figures; the verdict table shows what each verdict rests
on."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from audits.canaries import CanaryAudit
from audits.fairness import FairnessAudit
from audits.leakage import LeakageAudit
from audits.membership import MembershipAudit
from tdd_priv.policy import judge, load_policy, schema_has_path
from tdd_priv.report.figures import draw_figures
from tdd_priv.report.html import render_html
from tdd_priv.report.markdown import render_markdown
from tdd_priv.report.schema import schema_errors
from tests.report_samples import current_schema, private_report
from tests.unit.test_audit_canaries import _Canaries, _Plan
from tests.unit.test_audit_membership import _coreset_run, _Records


def _audited_report() -> dict:  # type: ignore[type-arg]
    run = _coreset_run(released=20)
    rng = np.random.default_rng(0)
    test = run.test
    groups = {"group": rng.choice(["p", "q", "tiny"], size=len(test.labels), p=[0.5, 0.45, 0.05])}
    run.test = _Records(test.ids, test.texts, test.embeddings, test.labels, groups)
    m = 32
    canaries = rng.normal(size=(m, 8))
    canaries /= np.linalg.norm(canaries, axis=1, keepdims=True)
    run.canaries = _Canaries(
        tuple(f"canary {i}" for i in range(m)), rng.integers(0, 2, m), canaries, rng.random(m) < 0.5
    )
    run.canary_plan = _Plan(None, 1.0, 1e-5, 200)  # sized: 32 canaries for ε = 1
    report = current_schema(private_report())  # auditor output as today's runs write it
    report["audits"] = {
        "membership": MembershipAudit()(run),
        "canary": CanaryAudit()(run),
        "leakage": LeakageAudit(permutations=99)(run),
        "fairness": FairnessAudit(min_group_size=10, n_boot=20)(run),
    }
    report["verdicts"] = judge(load_policy(), report)
    report["policy"] = load_policy().to_json()
    return json.loads(json.dumps(report))  # as written to disk


def _leaf_paths(node: Any, prefix: str = "") -> Iterator[str]:
    """Every path to a scalar or list in `node` (lists are leaves: a policy reads no index)."""
    if isinstance(node, Mapping) and node:
        for key, value in node.items():
            yield from _leaf_paths(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip(".")


def test_auditor_sections_follow_the_schema() -> None:
    assert schema_errors(_audited_report()) == []


def test_every_field_the_auditors_write_is_declared_for_policies() -> None:
    report = _audited_report()
    audits = {"audits": report["audits"], "verdicts": report["verdicts"]}
    undeclared = [path for path in _leaf_paths(audits) if not schema_has_path(path)]
    assert undeclared == []


def test_audit_sections_render_as_tables_and_figures(tmp_path: Path) -> None:
    report = _audited_report()
    report["figures"] = draw_figures(report, tmp_path / "figures")
    names = [entry["name"] for entry in report["figures"]]
    assert "membership_roc" in names and "fairness_accuracy" in names
    assert (tmp_path / "figures" / "membership_roc.png").stat().st_size > 1000
    markdown = render_markdown(report)
    assert "| attack | AUC [95 %] |" in markdown
    assert "| released row | closest labeled rows |" in markdown
    assert "| labeled rows | rows | exact |" in markdown
    assert "Permutation test over the records" in markdown
    assert "**By group**" in markdown and "too few" in markdown
    assert "bnsp_auc" in markdown  # Borkan et al.'s third AUC is shown, not only computed
    canary = report["audits"]["canary"]
    assert f"— ceiling: {canary['epsilon_ceiling']:.4g}**" in markdown
    assert "Canaries sized from the claimed ε: m = 32" in markdown
    assert "| check | verdict | value | threshold | interval | could fail | note |" in markdown
    assert "roc.loss.fpr" not in markdown  # curves stay in report.json and the figure
    page = render_html(report, tmp_path)
    assert "ceiling" in page and "bnsp_auc" in page and "could fail" in page


def test_an_inconclusive_verdict_is_shown_as_such(tmp_path: Path) -> None:
    report = private_report(epsilon=4.0)
    report["audits"]["canary"].update(epsilon_lower_bound=0.0, epsilon_ceiling=2.2)
    report["verdicts"] = judge(load_policy(), report)
    markdown = render_markdown(report)
    row = next(line for line in markdown.splitlines() if line.startswith("| canary_bound"))
    assert "INCONCLUSIVE" in row and "no (ceiling 2.2)" in row
    assert '<span class="badge warn">INCONCLUSIVE</span>' in render_html(report, tmp_path)
