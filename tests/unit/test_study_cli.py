"""`tdd-priv study` refuses bad sweeps and options before anything is written or started."""

from pathlib import Path

import pytest

from tdd_priv.cli import main

GOOD = "base: {method: dm, data: {spec: demo, public_pool: demo}}\ngrid: {seed: [0]}\n"


def _study(tmp_path: Path, sweep: str, *extra: str) -> tuple[int, Path]:
    path = tmp_path / "sweep.yaml"
    path.write_text(sweep, encoding="utf-8")
    out = tmp_path / "study"
    return main(["study", "--config", str(path), "--out", str(out), *extra]), out


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ("grid: {seed: [0]}\nbase: {method: dm}\nextra: 1\n", "unknown key(s) extra"),
        ("base: {method: dm}\ngrid: {epsilon: []}\n", "`epsilon` is an empty list"),
        ("base: {method: dm}\ngrid: {epsilon: [0]}\n", "not a positive ε"),
        (
            "base: {method: dm, data: {public_pool: demo}}\ngrid: {method: [dm, herding]}\n",
            "cell method-herding",
        ),
        ("base: {method: dm}\ngrid: {colour: [red]}\n", "unknown setting(s) colour"),
        ("base: [1, 2]\ngrid: {seed: [0]}\n", "`base` must be a run config mapping"),
        ("grid: {seed: [0\n", "not valid YAML"),
    ],
)
def test_bad_sweeps_exit_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sweep: str, message: str
) -> None:
    status, out = _study(tmp_path, sweep)
    assert status == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dask-address", "tcp://127.0.0.1:1"], "need --runner dask"),
        (["--workers", "3"], "need --runner dask"),
        (["--runner", "dask", "--dask-address", "tcp://x:1", "--workers", "3"], "its workers"),
    ],
)
def test_bad_runner_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    status, out = _study(tmp_path, GOOD, *extra)
    assert status == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_folder_that_is_not_a_study_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "notes.txt").write_text("mine", encoding="utf-8")
    status, out = _study(tmp_path, GOOD)
    assert status == 2
    assert "not a study folder" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
