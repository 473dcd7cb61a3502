"""`tdd-priv run` refuses, before any work, output folders it must never replace."""

from pathlib import Path

import pytest

from tdd_priv.cli import main
from tdd_priv.rundir import RunFolders, claimed_run_folders, staged_run_folders


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that gets as far as reading its data fails the test."""

    def load_step(*args: object) -> None:
        raise AssertionError("the run started working")

    monkeypatch.setattr("tdd_priv.pipeline.load_step", load_step)


def _run(data: Path, out: str, *extra: str) -> int:
    return main(
        ["run", "--data", str(data), "--no-dp", "--orchestrator", "local", "--out", out, *extra]
    )


@pytest.mark.usefixtures("no_work")
def test_overwrite_never_deletes_the_input_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "inputs" / "rows.csv"
    data.parent.mkdir()
    data.write_text("text,label\na,0\n")
    for out in (data.parent, tmp_path, data):
        assert _run(data, str(out), "--overwrite") == 2
        assert f"--out {out} is " in capsys.readouterr().err
    assert data.read_text() == "text,label\na,0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]


@pytest.mark.usefixtures("no_work")
def test_overwrite_never_replaces_a_run_folder_that_holds_the_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = RunFolders(release=tmp_path / "run", private=tmp_path / "run.private")
    with claimed_run_folders(folders), staged_run_folders(folders, overwrite=False) as staged:
        (staged.release / "synthetic").mkdir()
        (staged.release / "synthetic" / "data.jsonl").write_text('{"text": "a", "label": 0}\n')
    data = folders.release / "synthetic" / "data.jsonl"
    assert _run(data, str(folders.release), "--overwrite") == 2
    assert "a folder above the input" in capsys.readouterr().err
    assert data.is_file()


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize(
    ("out", "reason"),
    [
        (".", "is the working directory"),
        ("..", "is a folder above the working directory"),
        ("/", "is the root folder"),
        ("HOME", "is your home folder"),
    ],
)
def test_the_working_directory_root_and_home_are_refused_before_any_work(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    out: str,
    reason: str,
) -> None:
    home, cwd = tmp_path / "home", tmp_path / "work" / "here"
    for folder in (home, cwd):
        folder.mkdir(parents=True)
        (folder / "precious.txt").write_text("keep me")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    data = tmp_path / "rows.csv"
    data.write_text("text,label\na,0\n")
    given = str(home) if out == "HOME" else out
    assert _run(data, given, "--overwrite") == 2
    err = capsys.readouterr().err
    assert f"--out {given} {reason}" in err and len(err.splitlines()) == 1
    assert (home / "precious.txt").is_file() and (cwd / "precious.txt").is_file()
    assert sorted(p.name for p in cwd.iterdir()) == ["precious.txt"]  # not even a lock file


@pytest.mark.usefixtures("no_work")
def test_overwrite_refuses_a_folder_without_the_run_marker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("text,label\na,0\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "notes.md").write_text("not a run")
    assert _run(data, str(tmp_path / "results"), "--overwrite") == 2
    assert "holds no .tdd-priv-folder marker" in capsys.readouterr().err
    assert (tmp_path / "results" / "notes.md").read_text() == "not a run"
