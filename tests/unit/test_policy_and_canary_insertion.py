"""Policy verdicts (tdd_priv.policy), canary insertion in the split step, and the audit context's
head-training callable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audits.canaries import CanaryGenerator, generate_canaries
from tdd_priv.audit_context import fit_predict_proba
from tdd_priv.cli import _strict_failures, _verdict_line
from tdd_priv.config import AuditConfig, RunConfig
from tdd_priv.data import ColumnMapping, Splits, load_labeled, make_splits
from tdd_priv.data.canaries import CANARY_GROUP, insert_canaries
from tdd_priv.errors import ConfigError
from tdd_priv.extensions import NO_EXTENSIONS
from tdd_priv.pipeline import LoadedInputs, canary_maker, canary_plan, canary_step
from tdd_priv.policy import judge, load_policy, schema_has_path
from tdd_priv.report.schema import report_schema, schema_errors
from tests.report_samples import non_private_report, private_report

# --- policy ---------------------------------------------------------------------------------------


def test_default_policy_judges_a_private_report() -> None:
    report = private_report(epsilon=7.5)
    verdicts = judge(load_policy(), report)
    status = {name: v["status"] for name, v in verdicts.items()}
    assert status["epsilon"] == "PASS" and verdicts["epsilon"]["threshold"] == 8.0
    assert status["canary_bound_below_epsilon"] == "PASS"
    assert verdicts["canary_bound_below_epsilon"]["threshold"] == 7.5  # read from the report
    assert verdicts["canary_bound_below_epsilon"]["ceiling"] == 7.9
    assert status["membership_auc"] == "PASS"
    assert verdicts["membership_auc"]["interval"] == [0.45, 0.57]
    assert status["exact_duplicates"] == "PASS"
    assert status["near_duplicates"] == "FAIL"  # the sample has one, and may hold private rows
    assert status["release_depends_on_members"] == "PASS"
    assert status["equalized_odds_difference"] == "SKIPPED"  # no fairness audit in the sample
    assert verdicts["equalized_odds_difference"]["can_fail"] is False
    for verdict in verdicts.values():
        assert {"status", "value", "threshold", "interval", "can_fail", "note"} <= set(verdict)
    report["verdicts"] = verdicts
    assert schema_errors(report) == []


def test_a_canary_bound_above_epsilon_fails_loudly() -> None:
    report = private_report(epsilon=1.0)
    report["audits"]["canary"].update(epsilon_lower_bound=2.5, epsilon_ceiling=3.0)
    verdict = judge(load_policy(), report)["canary_bound_below_epsilon"]
    assert verdict["status"] == "FAIL" and verdict["can_fail"] is True
    assert (verdict["value"], verdict["threshold"], verdict["ceiling"]) == (2.5, 1.0, 3.0)


def test_a_canary_audit_that_cannot_fail_is_inconclusive_never_pass() -> None:
    # 64 canaries at δ = 1e-5 cannot show more than about 2.2: at ε = 4 a bound of 0 is no
    # evidence of anything.
    report = private_report(epsilon=4.0)
    report["audits"]["canary"].update(epsilon_lower_bound=0.0, epsilon_ceiling=2.2)
    verdict = judge(load_policy(), report)["canary_bound_below_epsilon"]
    assert verdict["status"] == "INCONCLUSIVE" and verdict["can_fail"] is False
    assert "cannot fail" in verdict["note"] and "2.2" in verdict["note"]
    report["audits"]["canary"]["epsilon_ceiling"] = 4.0  # at the threshold: still cannot fail
    assert judge(load_policy(), report)["canary_bound_below_epsilon"]["status"] == "INCONCLUSIVE"
    del report["audits"]["canary"]["epsilon_ceiling"]  # an older report: power unknown
    unknown = judge(load_policy(), report)["canary_bound_below_epsilon"]
    assert unknown["status"] == "PASS" and unknown["can_fail"] is None
    assert "power unknown" in unknown["note"]


def test_near_duplicates_do_not_apply_to_a_dp_release_from_an_external_pool() -> None:
    report = private_report()
    report["audits"]["leakage"].update(near_duplicates=6, may_contain_private_rows=False)
    verdicts = judge(load_policy(), report)
    assert verdicts["near_duplicates"]["status"] == "SKIPPED"
    assert verdicts["near_duplicates"]["note"].startswith(
        "not applicable: audits.leakage.may_contain_private_rows is false"
    )
    assert verdicts["release_depends_on_members"]["status"] == "PASS"  # p = 0.61
    report["audits"]["leakage"]["distance_to_closest_record"]["p_value"] = 0.002
    assert judge(load_policy(), report)["release_depends_on_members"]["status"] == "FAIL"
    # A release too small for the permutation test to reach 0.01: INCONCLUSIVE.
    report["audits"]["leakage"]["distance_to_closest_record"]["p_value_floor"] = 0.03
    verdict = judge(load_policy(), report)["release_depends_on_members"]
    assert verdict["status"] == "INCONCLUSIVE" and verdict["floor"] == 0.03


def test_a_tpr_too_few_non_members_measure_can_fail_but_not_pass() -> None:
    report = private_report()
    membership = report["audits"]["membership"]
    membership["power"] = {"min_fpr": 0.04, "tpr_at_1pct_fpr_measurable": False}
    verdict = judge(load_policy(), report)["membership_tpr_at_1pct_fpr"]
    assert verdict["status"] == "INCONCLUSIVE" and "lower estimate" in verdict["note"]
    membership["tpr_at_1pct_fpr"] = 0.2  # a lower estimate above the threshold: a sound FAIL
    assert judge(load_policy(), report)["membership_tpr_at_1pct_fpr"]["status"] == "FAIL"


def test_a_non_private_report_fails_epsilon_and_skips_the_canary_check() -> None:
    verdicts = judge(load_policy(), non_private_report())
    assert verdicts["epsilon"]["status"] == "FAIL" and verdicts["epsilon"]["can_fail"] is True
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
        "    max: 0.1\n"
        "  strongest_low_fpr_attack:\n"
        "    value: audits.membership.tpr_at_0.1pct_fpr\n"  # a key with a dot in it
        "    max: 0.5\n",
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert policy.name == "strict" and policy.source == str(path) and len(policy.sha256) == 64
    report = non_private_report()
    report["audits"]["toxicity"] = {
        "counts": {"released_over_threshold": 5, "exempt_kept": 3, "released": 20}
    }
    report["audits"]["membership"] = {"auc": 0.9, "tpr_at_0.1pct_fpr": 0.7}
    verdicts = judge(policy, report)
    assert verdicts["utility"]["status"] == "FAIL"
    assert verdicts["toxic_rate"]["value"] == pytest.approx(0.1)
    assert verdicts["toxic_rate"]["status"] == "PASS"
    assert verdicts["strongest_low_fpr_attack"]["value"] == 0.7
    assert verdicts["strongest_low_fpr_attack"]["status"] == "FAIL"


def test_a_misspelled_report_path_is_an_error_when_the_policy_loads(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "checks:\n  copies:\n    value: audits.leakage.exact_duplicate\n    max: 0\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as error:
        load_policy(path)
    message = str(error.value)
    assert "'copies'" in message and "audits.leakage.exact_duplicate'" in message
    assert "nearest valid paths: audits.leakage.exact_duplicates" in message
    # Every key that names a path is checked, and free keys count only where the schema says so.
    for key, path_text in (
        ("ceiling", "audits.canary.epsilon_celing"),
        ("applies_if", "audits.leakage.may_contain_private_row"),
        ("interval", "audits.membership.auc_ci"),
    ):
        path.write_text(
            f"checks:\n  x:\n    value: audits.canary.epsilon_lower_bound\n    max: 1\n"
            f"    {key}: {path_text}\n",
            encoding="utf-8",
        )
        with pytest.raises(ConfigError, match=path_text):
            load_policy(path)
    assert schema_has_path("audits.fairness.by.gender.synthetic.groups.women.bnsp_auc")
    assert schema_has_path("utility.dp_sgd.accuracy_mean")
    assert not schema_has_path("audits.leakage.worst.private_id")
    assert not schema_has_path("audits.somebody.anything")  # a free section is not a free path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("checks:\n  x:\n    value: a.b\n    max: 1\n    mx: 2\n", "unknown key"),
        ("checks:\n  x:\n    value: a.b\n    max: 1\n    min: 0\n", "exactly one of"),
        ("checks:\n  x:\n    max: 1\n", "needs 'value'"),
        ("checks: 3\n", "'checks' mapping"),
        ("checks:\n  x:\n    value: a\n    max: one\n", "must be a number"),
        ("checks:\n  x:\n    value: a\n    min: 1\n    ceiling: b\n", "takes 'floor'"),
        ("checks:\n  x:\n    value: a\n    max: 1\n    floor: b\n", "takes 'ceiling'"),
        ("checks:\n  x:\n    value: a\n    max: 1\n    applies_if: 3\n", "dotted report"),
    ],
)
def test_bad_policies_say_what_is_wrong(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_policy(path)
    with pytest.raises(ConfigError, match="not found"):
        load_policy(tmp_path / "missing.yaml")


def test_the_policy_reads_the_schema_the_reports_are_validated_with() -> None:
    from tdd_priv.policy import _current_schema

    assert _current_schema() == report_schema()


def test_the_verdict_line_counts_every_status() -> None:
    report = {
        "verdicts": {
            "a": {"status": "PASS"},
            "b": {"status": "FAIL"},
            "c": {"status": "INCONCLUSIVE"},
            "d": {"status": "SKIPPED"},
            "e": {"status": "INCONCLUSIVE"},
        }
    }
    line = _verdict_line(report)
    assert line == (
        "verdicts     1 PASS, 1 FAIL, 2 INCONCLUSIVE, 1 SKIPPED (failed: b; inconclusive: c, e)"
    )
    strict = RunConfig().with_overrides({"audit.strict": True})
    assert _strict_failures(strict, report) == ["b"]  # INCONCLUSIVE does not fail --strict
    assert _strict_failures(RunConfig(), report) == []


def test_audit_config() -> None:
    assert AuditConfig().canary_count == 0
    assert AuditConfig(level="full").canary_count is None  # sized from the claimed ε
    assert AuditConfig(canaries="auto").canary_count is None
    assert AuditConfig(level="full", canaries=10).canary_count == 10
    assert AuditConfig(level="full", canaries=0).canary_count == 0
    assert AuditConfig(level="none", canaries=10).canary_count == 0
    assert AuditConfig(level="none", canaries="auto").canary_count == 0
    with pytest.raises(ConfigError, match=r"audit\.level"):
        AuditConfig(level="most")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="shadows"):
        AuditConfig(shadows=1)
    for bad in ("many", True, 2.5):
        with pytest.raises(ConfigError, match=r"audit\.canaries"):
            AuditConfig(canaries=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="below 0"):
        AuditConfig(canaries=-1)
    config = RunConfig().with_overrides({"audit.policy": "p.yaml", "audit.level": "full"})
    assert config.audit.policy == Path("p.yaml")
    assert RunConfig.from_dict(config.to_dict()) == config
    auto = RunConfig().with_overrides({"audit.canaries": "auto"})
    assert RunConfig.from_dict(auto.to_dict()) == auto


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
    sized = RunConfig().with_overrides({"audit.level": "full"})  # DP by default: sized from ε
    with pytest.raises(ConfigError, match="canaries sized from the claimed ε"):
        canary_maker(sized, NO_EXTENSIONS)
    # Without DP nothing is claimed: sized canaries are none, and no maker is needed.
    unclaimed = sized.with_overrides({"privacy.enabled": False})
    assert canary_maker(unclaimed, NO_EXTENSIONS) is None
    assert canary_plan(unclaimed, 1000) is None


def _large_data(tmp_path: Path):  # type: ignore[no-untyped-def]
    rows = [f"record number {i} about things {i % 13},{'ab'[i % 2]}" for i in range(600)]
    lines = ["text,label", *rows]
    path = tmp_path / "large.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_labeled(str(path), columns=ColumnMapping())


@pytest.mark.parametrize(
    ("settings", "inserted"),
    [
        ({"audit.level": "full", "privacy.epsilon": 1.0}, 32),  # sized: ceiling 1.5 > 1
        ({"audit.canaries": "auto", "privacy.epsilon": 2.0}, 64),  # basic, asked for
        ({"audit.level": "full", "privacy.epsilon": 8.0}, 0),  # no count can show ε = 8
        ({"audit.level": "full", "audit.canaries": 10, "privacy.enabled": False}, 10),
    ],
)
def test_the_canary_step_sizes_canaries_from_the_claimed_epsilon(
    tmp_path: Path, settings: dict, inserted: int
) -> None:
    data = _large_data(tmp_path)
    splits = make_splits(data, seed=0, per_class=5, internal_public_pool=True)
    config = RunConfig().with_overrides({"privacy.delta": 1e-5, **settings})
    maker = CanaryGenerator(kind="random-tokens")
    loaded, augmented = canary_step(LoadedInputs(data, None), splits, config, maker)
    assert augmented.canaries.size == inserted
    assert len(loaded.labeled.dataset) == 600 + inserted
    plan = canary_plan(config, len(splits.members))
    assert plan is not None and plan.members == len(splits.members)
    if plan.requested is None:
        assert plan.delta == 1e-5  # the run's δ
        assert maker.size(epsilon=plan.epsilon, delta=1e-5, members=plan.members).count == inserted


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
    # parts (members, non-members) are evaluated by the same head and stacked
    parts = fit_predict_proba(x, np.eye(2)[labels], (x[:25], x[25:], x[:0]), seed=3)
    np.testing.assert_allclose(parts, probabilities, rtol=1e-6)
