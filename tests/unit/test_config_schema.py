"""The typed configuration schema: every setting is checked before any data is read."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import tdd_priv.pipeline as pipeline
from tdd_priv.cli import main
from tdd_priv.config import PrivacyConfig, RunConfig, load_config_file
from tdd_priv.errors import ConfigError
from tdd_priv.pipeline import check_config


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"per_class": "ten"}, "per_class: 'ten' is not a whole number; give a whole number ≥ 1"),
        ({"per_class": 2.5}, "per_class: 2.5 is not a whole number"),
        ({"per_class": "10"}, "per_class: '10' is quoted text, not a whole number"),
        ({"per_class": True}, "per_class: True is true/false, not a whole number"),
        ({"per_class": 0}, "per_class: 0 is below 1"),
        (
            {"privacy": {"epsilon": "four"}},
            "privacy.epsilon: 'four' is not a number; give a finite ε > 0 (--epsilon E), or "
            "--no-dp",
        ),
        ({"privacy": {"epsilon": math.inf}}, "inf is not finite; a run without noise is not"),
        ({"privacy": {"epsilon": math.nan}}, "privacy.epsilon: nan is not finite"),
        ({"privacy": {"epsilon": 0}}, "privacy.epsilon: 0 is not above 0"),
        ({"privacy": {"epsilon": -1.0}}, "privacy.epsilon: -1.0 is not above 0"),
        ({"privacy": {"delta": 1.5}}, "privacy.delta: 1.5 is not below 1"),
        ({"privacy": {"delta": 0}}, "privacy.delta: 0 is not above 0"),
        ({"privacy": {"budget_limit": math.inf}}, "privacy.budget_limit: inf is not finite"),
        ({"privacy": {"budget_limit": 0.0}}, "privacy.budget_limit: 0.0 is not above 0"),
        ({"privacy": {"budget_ledger": ""}}, "privacy.budget_ledger: '' is empty"),
        ({"privacy": {"enabled": "yes"}}, "privacy.enabled: 'yes' is not true or false"),
        ({"seed": "abc"}, "seed: 'abc' is not a whole number; give a whole number ≥ 0"),
        ({"evaluation": {"heads": 5}}, "evaluation.heads: 5 is not a list"),
        ({"evaluation": {"heads": []}}, "evaluation.heads: [] is empty"),
        ({"evaluation": {"heads": ["linear", "linear"]}}, "names 'linear' more than once"),
        ({"evaluation": {"heads": ["transformer"]}}, "evaluation.heads[0]: unknown name"),
        ({"evaluation": {"text_models": ["bert"]}}, "evaluation.text_models[0]: unknown"),
        ({"evaluation": {"baselines": ["best"]}}, "evaluation.baselines[0]: unknown name"),
        ({"evaluation": {"seeds": 0}}, "evaluation.seeds: 0 is below 1"),
        ({"method": "nope"}, "method: unknown method 'nope'; valid: random, herding"),
        ({"realize": "nope"}, "realize: unknown realizer 'nope'; valid:"),
        ({"fairness": "fair"}, "fairness: 'fair' is not one of 'none' or 'balanced'"),
        ({"detox": {"mode": "scrub"}}, "detox.mode: 'scrub' is not one of 'filter', 'flag'"),
        ({"detox": {"thresholds": {"tox": 1.5}}}, "detox.thresholds.tox: 1.5 is above 1"),
        ({"audit": {"level": "most"}}, "audit.level: 'most' is not one of"),
        ({"audit": {"shadows": 1}}, "audit.shadows: 1 is neither 0 nor at least 2"),
        ({"audit": {"canaries": -2}}, "audit.canaries: -2 is below 0"),
        ({"data": {"test_fraction": 1.0}}, "data.test_fraction: 1.0 is not below 1"),
        ({"data": {"public_pool": ""}}, "data.public_pool: '' is empty"),
        ({"data": {"label_names": [0, 1]}}, "data.label_names[0]: 0 is not text"),
        ({"data": {"audit_fraction": 0.5, "public_fraction": 0.5}}, "sum must be below 1"),
        ({"out": ""}, "out: '' is empty"),
        ({"private_out": 3}, "private_out: 3 is not a path"),
        ({"encoder": {"max_length": "128"}}, "encoder.max_length: '128' is quoted text"),
        ({"privacy": 5}, "privacy: 5 is not a mapping of settings"),
    ],
)
def test_each_bad_setting_names_key_value_and_what_is_allowed(
    payload: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict(payload)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)  # the CLI prints it on one line


def test_several_problems_are_listed_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict({"per_class": 2.5, "seed": "abc", "privacy": {"epsilon": "four"}})
    message = str(caught.value)
    assert message.startswith("config: 3 problems: (1) ")
    for key in ("per_class: 2.5", "seed: 'abc'", "privacy.epsilon: 'four'"):
        assert key in message


def test_unknown_settings_list_the_known_ones_at_their_level() -> None:
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict({"privacy": {"epsilom": 1}, "sed": 3})
    message = str(caught.value)
    assert "unknown setting(s) privacy.epsilom in privacy; known: budget_ledger" in message
    assert "unknown setting(s) sed; known: allocation, audit, cache_dir" in message
    with pytest.raises(ConfigError, match="'seed' is not a group of settings"):
        RunConfig().with_overrides({"seed.x": 1})


def test_yaml_values_become_paths_and_tuples_and_round_trip() -> None:
    config = RunConfig.from_dict(
        {
            "out": "runs/x",
            "data": {"spec": Path("d.csv"), "group_columns": "group", "public_pool": "internal"},
            "evaluation": {"heads": "linear"},
            "privacy": {"epsilon": 2, "budget_limit": 8, "budget_ledger": "tickets"},
            "private_out": "secret/x",
        }
    )
    assert config.out == Path("runs/x") and config.private_out == Path("secret/x")
    assert config.data.spec == "d.csv" and config.data.group_columns == ("group",)
    assert config.evaluation.heads == ("linear",)
    assert config.privacy.epsilon == 2 and type(config.privacy.epsilon) is int  # as written
    assert RunConfig.from_dict(config.to_dict()) == config


def test_configs_built_directly_are_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"per_class: 2\.5 is not a whole number"):
        RunConfig(per_class=2.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"privacy\.epsilon: inf is not finite"):
        PrivacyConfig(epsilon=math.inf)
    with pytest.raises(ConfigError, match=r"privacy: .* is not a PrivacyConfig"):
        RunConfig(privacy={"epsilon": 1.0})  # type: ignore[arg-type]
    assert RunConfig(out="runs/y").out == Path("runs/y")  # type: ignore[arg-type]
    # Names of registered things need the registries: check_config looks them up.
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        check_config(RunConfig(method="nope"))


def test_method_options_are_checked_against_the_method_config() -> None:
    with pytest.raises(ConfigError, match=r"unknown option\(s\) iteration for method 'dm'"):
        RunConfig.from_dict({"method": "dm", "method_options": {"iteration": 5}})
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict(
            {"method": "dm", "method_options": {"iterations": "many", "release": "sometimes"}}
        )
    assert "method 'dm' options: 2 problems" in str(caught.value)
    assert "method_options.iterations: 'many' is not a whole number" in str(caught.value)
    # Under DP the DP variant's defaults are checked with the options (dpsgd-teacher's config
    # refuses an unknown kernel itself).
    with pytest.raises(ConfigError, match="unknown kernel 'bogus'"):
        RunConfig.from_dict({"method": "dpsgd-teacher", "method_options": {"kernel": "bogus"}})
    config = RunConfig.from_dict(
        {"method": "kip", "privacy": {"enabled": False}, "method_options": {"batch_size": 64}}
    )
    assert config.method_options == {"batch_size": 64}
    # Methods without options (coresets) ignore them, so a study's shared base still works.
    assert RunConfig.from_dict({"method": "herding", "method_options": {"iterations": 5}})


def test_cross_setting_checks_need_no_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_data(*_: object) -> None:
        raise AssertionError("data was read")

    monkeypatch.setattr(pipeline, "load_step", no_data)
    base = {"out": str(tmp_path / "run"), "data": {"spec": "x.csv", "public_pool": "pool.csv"}}
    with pytest.raises(ConfigError, match="--group-column"):
        pipeline.preflight(RunConfig.from_dict({**base, "method": "dm", "fairness": "balanced"}))
    with pytest.raises(ConfigError, match=r"alone exceeds privacy\.budget_limit 2"):
        pipeline.preflight(
            RunConfig.from_dict({**base, "method": "dm", "privacy": {"budget_limit": 2}})
        )


def _run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["run", *argv])
    return code, capsys.readouterr().err


def test_cli_refuses_bad_settings_with_one_line_before_reading_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_data(*_: object) -> None:
        raise AssertionError("data was read")

    monkeypatch.setattr(pipeline, "load_step", no_data)
    out = str(tmp_path / "run")
    config = tmp_path / "bad.yaml"
    config.write_text("per_class: 2.5\nseed: abc\nprivacy:\n  epsilon: four\n", encoding="utf-8")
    code, err = _run_cli(capsys, "--config", str(config), "--out", out)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"tdd-priv: error: {config}: 3 problems")
    code, err = _run_cli(capsys, "--epsilon", "inf", "--out", out)
    assert code == 2 and "a run without noise is not private" in err and "--no-dp" in err
    code, err = _run_cli(
        capsys, "--method", "dm", "--method-option", "iterations=many", "--out", out
    )
    assert code == 2 and "method_options.iterations: 'many' is not a whole number" in err
    assert not (tmp_path / "run").exists()


def test_method_option_values_are_yaml_with_exponent_floats() -> None:
    from tdd_priv.cli import _key_value

    assert _key_value("learning_rate=1e-3") == ("learning_rate", 0.001)
    assert _key_value("iterations=500") == ("iterations", 500)
    assert _key_value("init=noise") == ("init", "noise")


def test_config_files_use_the_safe_yaml_loader(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    lines = ["method_options:", '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for name, previous in zip("bcdefghij", "abcdefghi", strict=True):
        lines.append(f"  {name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="YAML alias"):
        load_config_file(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_config_file(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config_file(tmp_path)
