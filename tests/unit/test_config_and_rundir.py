import json
import os
import shutil
from pathlib import Path

import pytest

from tdd_priv.config import RunConfig, load_config_file
from tdd_priv.errors import ConfigError
from tdd_priv.rundir import (
    MARKER_FILE,
    RunFolders,
    check_run_folders,
    claimed_run_folders,
    remove_stale,
    staged_run_folders,
)


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
    assert config.method == "dpsgd-teacher"


def _folders(parent: Path, name: str = "run") -> RunFolders:
    return RunFolders(release=parent / name, private=parent / f"{name}.private")


def _write_run(folders: RunFolders, *, overwrite: bool, text: str) -> None:
    with claimed_run_folders(folders), staged_run_folders(folders, overwrite=overwrite) as staged:
        (staged.release / "data.txt").write_text(text)
        (staged.private / "splits.json").write_text(text)


def test_run_folders_appear_only_when_everything_is_written(tmp_path: Path) -> None:
    folders = _folders(tmp_path)
    with (
        pytest.raises(RuntimeError),
        claimed_run_folders(folders),
        staged_run_folders(folders, overwrite=False) as staged,
    ):
        (staged.release / "half.txt").write_text("x")
        (staged.private / "splits.json").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # no staging folder, no lock file

    _write_run(folders, overwrite=False, text="y")
    assert (folders.release / "data.txt").read_text() == "y"
    assert (folders.private / "splits.json").read_text() == "y"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run.private"]
    for role, folder in folders.roles():
        assert json.loads((folder / MARKER_FILE).read_text())["role"] == role
    assert not (folders.release / "splits.json").exists()  # the private record stays apart


@pytest.mark.parametrize("atomic_exchange", [True, False])
def test_overwrite_replaces_a_run_folder_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, atomic_exchange: bool
) -> None:
    if not atomic_exchange:  # systems without renameat2: the old folder is moved aside first
        monkeypatch.setattr("tdd_priv.rundir._exchange", lambda first, second: False)
    folders = _folders(tmp_path)
    _write_run(folders, overwrite=False, text="old")
    (folders.release / "stale.txt").write_text("from the old run")
    with pytest.raises(ConfigError, match="--overwrite"):
        check_run_folders(folders, overwrite=False)
    _write_run(folders, overwrite=True, text="new")
    assert sorted(p.name for p in folders.release.iterdir()) == [MARKER_FILE, "data.txt"]
    assert (folders.private / "splits.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run.private"]


def test_overwrite_refuses_a_folder_tdd_priv_did_not_write(tmp_path: Path) -> None:
    folders = _folders(tmp_path)
    folders.release.mkdir()
    (folders.release / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match=rf"--out {folders.release} holds no {MARKER_FILE}"):
        check_run_folders(folders, overwrite=True)
    assert (folders.release / "thesis.tex").read_text() == "years of work"


def test_overwrite_refuses_a_run_folder_of_the_other_role(tmp_path: Path) -> None:
    _write_run(_folders(tmp_path), overwrite=False, text="x")
    swapped = RunFolders(release=tmp_path / "run.private", private=tmp_path / "other")
    with pytest.raises(ConfigError, match="is the private folder of a run, not a release one"):
        check_run_folders(swapped, overwrite=True)


@pytest.mark.parametrize("private", ["run/private", "run"])
def test_the_private_record_never_lands_in_the_release(tmp_path: Path, private: str) -> None:
    folders = RunFolders(release=tmp_path / "run", private=tmp_path / private)
    with pytest.raises(ConfigError, match="two separate folders, neither inside the other"):
        check_run_folders(folders, overwrite=False)


def test_a_second_run_into_the_same_folder_fails_at_once(tmp_path: Path) -> None:
    folders = _folders(tmp_path)
    with claimed_run_folders(folders):
        message = rf"--private-out {folders.private} is being written by .* \(PID {os.getpid()}\)"
        with pytest.raises(ConfigError, match=message):
            check_run_folders(folders, overwrite=True)
        with pytest.raises(ConfigError, match="being written by"), claimed_run_folders(folders):
            pass
    _write_run(folders, overwrite=False, text="the first run's lock is gone with it")


def test_a_killed_runs_staging_is_removed_but_a_live_runs_is_not(tmp_path: Path) -> None:
    live = _folders(tmp_path, "live")
    with claimed_run_folders(live), staged_run_folders(live, overwrite=False) as staged:
        killed = [tmp_path / ".killed.partial-abc", tmp_path / ".killed.private.partial-def"]
        for folder in killed:  # what a run killed meanwhile (SIGKILL, power loss) left behind
            folder.mkdir()
            (folder / MARKER_FILE).write_text('{"role": "private"}')
            (folder / "splits.json").write_text("member rows")
        (tmp_path / ".killed.lock").write_text("tdd-priv 999999999\n")  # its holder is gone
        someone_elses = tmp_path / ".vim.old-2023"  # hidden, and named alike, but not a run's
        someone_elses.mkdir()
        (someone_elses / "vimrc").write_text("set number")
        # the next run into the same folder removes what the killed run left, not the live one's
        with claimed_run_folders(_folders(tmp_path, "next")) as removed:
            assert sorted(removed) == killed
        assert not (tmp_path / ".killed.lock").exists()
        assert staged.release.is_dir() and staged.private.is_dir()
        assert remove_stale(tmp_path) == []
        assert (someone_elses / "vimrc").is_file()
        shutil.rmtree(someone_elses)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live", "live.private"]


def test_a_run_moved_aside_by_a_cut_short_swap_is_put_back(tmp_path: Path) -> None:
    folders = _folders(tmp_path)
    _write_run(folders, overwrite=False, text="finished")
    retired = tmp_path / ".run.old-abc"
    folders.release.rename(retired)  # power lost between the two renames of a swap
    (tmp_path / ".run.partial-abc").mkdir()
    assert remove_stale(tmp_path) == [tmp_path / ".run.partial-abc"]
    assert (folders.release / "data.txt").read_text() == "finished"
    assert not retired.exists()
