from pathlib import Path

import pytest

from tdd_priv.config import RunConfig, load_config_file
from tdd_priv.errors import ConfigError
from tdd_priv.rundir import staged_directory


def test_round_trip_through_dict() -> None:
    config = RunConfig(out=Path("x"), per_class=3).with_overrides(
        {"data.group_columns": ["group"], "evaluation.heads": ["linear"], "privacy.enabled": False}
    )
    assert RunConfig.from_dict(config.to_dict()) == config
    assert config.data.group_columns == ("group",)


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  spec: demo\n  txt_column: t\n")
    with pytest.raises(ConfigError, match=r"txt_column.*known: .*text_column"):
        load_config_file(path)


def test_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="per_class"):
        RunConfig(per_class=0)
    with pytest.raises(ConfigError, match="orchestrator"):
        RunConfig.from_dict({"orchestrator": "airflow"})


def test_example_config_loads() -> None:
    config = load_config_file(Path(__file__).resolve().parents[2] / "examples" / "demo.yaml")
    assert config.data.spec == "demo"
    assert config.privacy.enabled is True
    assert config.method == "dm"


def test_staged_directory_appears_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), staged_directory(out, overwrite=False) as staging:
        (staging / "half.txt").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []

    with staged_directory(out, overwrite=False) as staging:
        (staging / "done.txt").write_text("y")
    assert (out / "done.txt").read_text() == "y"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_existing_folder_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(ConfigError, match="--overwrite"), staged_directory(out, overwrite=False):
        pass
    with staged_directory(out, overwrite=True) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
