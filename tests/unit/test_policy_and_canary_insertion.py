"""Policy verdicts (tdd_priv.policy), canary insertion in the split step, and the audit context's
head-training callable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audits.canaries import generate_canaries
from tdd_priv.audit_context import fit_predict_proba
from tdd_priv.config import AuditConfig, RunConfig
from tdd_priv.data import ColumnMapping, Splits, load_labeled, make_splits
from tdd_priv.data.canaries import CANARY_GROUP, insert_canaries
from tdd_priv.errors import ConfigError
from tdd_priv.extensions import NO_EXTENSIONS
from tdd_priv.pipeline import canary_maker
from tdd_priv.policy import judge, load_policy
from tdd_priv.report.schema import schema_errors
from tests.report_samples import non_private_report, private_report

# --- policy ---------------------------------------------------------------------------------------


def test_default_policy_judges_a_private_report() -> None:
    report = private_report(epsilon=7.5)
    verdicts = judge(load_policy(), report)
    status = {name: v["status"] for name, v in verdicts.items()}
    assert status["epsilon"] == "PASS" and verdicts["epsilon"]["threshold"] == 8.0
    assert status["canary_bound_below_epsilon"] == "PASS"
    assert verdicts["canary_bound_below_epsilon"]["threshold"] == 7.5  # read from the report
    assert status["membership_auc"] == "PASS"
    assert status["exact_duplicates"] == "PASS"
    assert status["near_duplicates"] == "FAIL"  # the sample has one
    assert status["equalized_odds_difference"] == "SKIPPED"  # no fairness audit in the sample
    report["verdicts"] = verdicts
    assert schema_errors(report) == []


def test_a_canary_bound_above_epsilon_fails_loudly() -> None:
    report = private_report(epsilon=1.0)
    report["audits"]["canary"]["epsilon_lower_bound"] = 2.5
    verdict = judge(load_policy(), report)["canary_bound_below_epsilon"]
    assert verdict == {
        "status": "FAIL",
        "value": 2.5,
        "threshold": 1.0,
        "note": verdict["note"],
    }


def test_a_non_private_report_fails_epsilon_and_skips_the_canary_check() -> None:
    verdicts = judge(load_policy(), non_private_report())
    assert verdicts["epsilon"]["status"] == "FAIL"
    assert verdicts["canary_bound_below_epsilon"]["status"] == "SKIPPED"
    assert verdicts["membership_auc"]["status"] == "SKIPPED"


def test_custom_policy_with_rates_and_minimums(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "name: strict\n"
        "checks:\n"
        "  utility:\n"
        "    value: utility.synthetic.accuracy_mean\n"
        "    min: 0.99\n"
        "  toxic_rate:\n"
        "    value: audits.toxicity.counts.released_over_threshold\n"
        "    minus: audits.toxicity.counts.exempt_kept\n"
        "    divide_by: audits.toxicity.counts.released\n"
        "    max: 0.1\n",
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert policy.name == "strict" and policy.source == str(path) and len(policy.sha256) == 64
    report = non_private_report()
    report["audits"]["toxicity"] = {
        "counts": {"released_over_threshold": 5, "exempt_kept": 3, "released": 20}
    }
    verdicts = judge(policy, report)
    assert verdicts["utility"]["status"] == "FAIL"
    assert verdicts["toxic_rate"]["value"] == pytest.approx(0.1)
    assert verdicts["toxic_rate"]["status"] == "PASS"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("checks:\n  x:\n    value: a.b\n    max: 1\n    mx: 2\n", "unknown key"),
        ("checks:\n  x:\n    value: a.b\n    max: 1\n    min: 0\n", "exactly one of"),
        ("checks:\n  x:\n    max: 1\n", "needs 'value'"),
        ("checks: 3\n", "'checks' mapping"),
        ("checks:\n  x:\n    value: a\n    max: one\n", "must be a number"),
    ],
)
def test_bad_policies_say_what_is_wrong(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_policy(path)
    with pytest.raises(ConfigError, match="not found"):
        load_policy(tmp_path / "missing.yaml")


def test_audit_config() -> None:
    assert AuditConfig().canary_count == 0
    assert AuditConfig(level="full").canary_count == 256
    assert AuditConfig(level="full", canaries=10).canary_count == 10
    assert AuditConfig(level="none", canaries=10).canary_count == 0
    with pytest.raises(ConfigError, match=r"audit\.level"):
        AuditConfig(level="most")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="shadows"):
        AuditConfig(shadows=1)
    config = RunConfig().with_overrides({"audit.policy": "p.yaml", "audit.level": "full"})
    assert config.audit.policy == Path("p.yaml")
    assert RunConfig.from_dict(config.to_dict()) == config


# --- canary insertion -----------------------------------------------------------------------------


def _data(tmp_path: Path):  # type: ignore[no-untyped-def]
    lines = ["text,label,group"] + [
        f"record number {i} about things,{'ab'[i % 2]},{'xy'[i % 3 == 0]}" for i in range(80)
    ]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_labeled(str(path), columns=ColumnMapping(groups=("group",)))


def test_canaries_join_the_data_and_the_inserted_ones_the_members(tmp_path: Path) -> None:
    data = _data(tmp_path)
    splits = make_splits(data, seed=0, per_class=5, internal_public_pool=True)
    public = [data.dataset["text"][i] for i in splits.public]
    draw = generate_canaries(public, count=30, num_classes=2, seed=1, kind="random-tokens")
    augmented_data, augmented = insert_canaries(data, splits, draw)
    assert len(augmented_data.dataset) == 80 + 30
    rows = np.arange(80, 110)
    assert np.array_equal(augmented.canaries, rows)
    assert np.array_equal(augmented.members, np.sort(np.r_[splits.members, rows[draw.included]]))
    assert np.array_equal(augmented.test, splits.test)
    added = augmented_data.dataset.select(rows.tolist())
    assert list(added["text"]) == list(draw.texts)
    assert list(added["label"]) == draw.labels.tolist()
    assert set(added["group"]) == {CANARY_GROUP}
    payload = augmented.to_json()
    assert payload["sizes"]["canaries"] == 30
    assert Splits.from_json(payload) == augmented
    assert "canaries" not in splits.to_json()  # runs without canaries are recorded as before
    # A "canary" that is already a record is not a new one: dropped, the others kept.
    old = data.dataset["text"][0]
    clash = type(draw)((old, "brand new text"), np.array([0, 1]), np.array([True, True]), "x")
    clashed_data, clashed = insert_canaries(data, splits, clash)
    assert len(clashed_data.dataset) == 81 and clashed.canaries.tolist() == [80]


def test_a_run_with_canaries_needs_a_canary_maker() -> None:
    config = RunConfig().with_overrides({"audit.canaries": 8})
    with pytest.raises(ConfigError, match="needs a canary maker"):
        canary_maker(config, NO_EXTENSIONS)
    assert canary_maker(RunConfig(), NO_EXTENSIONS) is None


def test_fit_predict_proba_returns_probabilities() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(int)
    probabilities = fit_predict_proba(x, np.eye(2)[labels], x, seed=3)
    assert probabilities.shape == (40, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert np.mean(probabilities.argmax(axis=1) == labels) > 0.9
    again = fit_predict_proba(x, np.eye(2)[labels], x, seed=3)
    assert np.array_equal(probabilities, again)
