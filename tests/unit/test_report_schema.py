"""report.json's JSON Schema: what it accepts, what it rejects, and old versions."""

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tdd_priv.report import SCHEMA_VERSION, ReportSchemaError, load_report, schema_errors
from tdd_priv.report.schema import SCHEMA_FILES, report_schema, validate_report
from tests.report_samples import non_private_report, private_report


def test_every_registered_schema_is_a_valid_draft_2020_12_schema() -> None:
    for major in SCHEMA_FILES:
        schema = report_schema(major)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA_VERSION == "2.2.0"
    assert SCHEMA_VERSION in report_schema()["$id"]


@pytest.mark.parametrize("build", [non_private_report, private_report])
def test_sample_reports_validate(build: Any) -> None:
    assert schema_errors(build()) == []


def _problems(report: dict[str, Any]) -> str:
    return "\n".join(schema_errors(report))


def test_every_problem_is_listed_not_just_the_first() -> None:
    report = non_private_report()
    del report["verdicts"]
    del report["utility"]["full_data"]
    report["utility"]["synthetic"]["accuracy_mean"] = 1.5
    with pytest.raises(ReportSchemaError) as raised:
        validate_report(report)
    message = str(raised.value)
    assert "'verdicts' is a required property" in message
    assert "'full_data' is a required property" in message
    assert "$.utility.synthetic.accuracy_mean" in message
    assert len(raised.value.problems) == 3


def test_a_non_private_report_cannot_claim_an_epsilon() -> None:
    report = non_private_report()
    report["privacy"]["epsilon"] = 1.0
    assert "$.privacy.epsilon" in _problems(report)
    report = non_private_report()
    report["privacy"]["mechanisms"] = private_report()["privacy"]["mechanisms"]
    assert "$.privacy.mechanisms" in _problems(report)


def test_a_private_report_needs_epsilon_delta_accountant_and_mechanisms() -> None:
    report = private_report()
    report["privacy"].update(epsilon=None, delta=1.5, accountant="gdp", mechanisms=[])
    problems = _problems(report)
    for field in ("epsilon", "delta", "accountant", "mechanisms"):
        assert f"$.privacy.{field}" in problems, field


@pytest.mark.parametrize("field", ["name", "noise_multiplier", "sample_rate", "steps"])
def test_each_mechanism_carries_what_recomputing_epsilon_needs(field: str) -> None:
    report = private_report()
    del report["privacy"]["mechanisms"][1][field]
    assert f"'{field}' is a required property" in _problems(report)


def test_every_utility_entry_is_checked_including_later_ones() -> None:
    report = private_report()
    del report["utility"]["dp_sgd"]["n_models"]
    assert "$.utility.dp_sgd" in _problems(report)


def test_audit_key_fields_are_typed() -> None:
    report = private_report()
    report["audits"]["membership"]["auc"] = 1.2
    report["audits"]["leakage"]["exact_duplicates"] = -1
    del report["audits"]["canary"]["epsilon_lower_bound"]
    problems = _problems(report)
    assert "$.audits.membership.auc" in problems
    assert "$.audits.leakage.exact_duplicates" in problems
    assert "epsilon_lower_bound" in problems
    report = private_report()
    report["audits"]["novel_audit"] = {"anything": 1}  # sections to come are allowed
    assert schema_errors(report) == []


def test_verdicts_have_a_status() -> None:
    report = private_report()
    report["verdicts"]["epsilon"]["status"] = "OK"
    assert "$.verdicts.epsilon.status" in _problems(report)


@pytest.mark.parametrize("path", ["private/splits.json", "../outside.txt", "/etc/passwd"])
def test_artifacts_are_released_paths_only(path: str) -> None:
    report = non_private_report()
    report["artifacts"].append({"path": path, "sha256": "3" * 64})
    assert "$.artifacts[2].path" in _problems(report)


def test_load_report_reads_old_versions_with_their_own_schema(tmp_path: Path) -> None:
    old = non_private_report()
    old["schema_version"] = "0.1.0"
    for key in ("signing", "figures", "created_at"):
        del old[key]
    del old["environment"]["commit"]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(old))
    assert load_report(path)["schema_version"] == "0.1.0"
    assert schema_errors({**old, "schema_version": "1.0.0"})  # not a valid 1.x report


def test_load_report_refuses_unknown_versions_and_non_json(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({**non_private_report(), "schema_version": "9.0.0"}))
    with pytest.raises(ReportSchemaError, match="upgrade tdd-priv"):
        load_report(path)
    path.write_text("{not json")
    with pytest.raises(ReportSchemaError, match="JSON"):
        load_report(path)
