"""A stopped run leaves nothing behind, and a live run's folders are its own.

Each test runs the real CLI in a subprocess, paused at a known step by
tests/integration/paused_cli.py, then signals it (SIGTERM, SIGHUP) or runs a second command
against the same folders. On a stop signal the staged run folders, the cache temporaries and
the temporary Prefect server must all be gone, with exit status 128 + the signal and one line
on stderr.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tdd_priv.cli import main
from tests.conftest import REPO_ROOT
from tests.helpers import AG_NEWS_LABELS

pytestmark = pytest.mark.slow

PAUSE_TIMEOUT_S = 600  # a cold start here: imports, the Prefect server, the encoder


def _run_args(data: Path, out: Path, orchestrator: str) -> list[str]:
    return [
        "run",
        "--data",
        str(data),
        "--split-column",
        "split",
        "--label-names",
        ",".join(AG_NEWS_LABELS),
        "--method",
        "herding",
        "--per-class",
        "5",
        "--no-dp",
        "--heads",
        "linear",
        "--eval-seeds",
        "1",
        "--audit",
        "none",
        "--no-progress",
        "--orchestrator",
        orchestrator,
        "--out",
        str(out),
    ]


def _env(tmp_path: Path, cache: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),  # no PREFECT_API_URL: a temporary server
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        TDD_PRIV_CACHE=str(cache),
        OMP_NUM_THREADS="1",
    )
    return env


def _paused(step: str, args: list[str], env: dict[str, str], ready: Path) -> subprocess.Popen[str]:
    """Start the CLI and wait until it pauses at `step`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.paused_cli", str(ready), step, "--", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # signals meant for the test runner's group never reach it
    )
    deadline = time.monotonic() + PAUSE_TIMEOUT_S
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _, err = process.communicate()
            pytest.fail(f"the run never paused at {step}:\n{err[-3000:]}")
        time.sleep(0.2)
    return process


def _children(pid: int) -> list[int]:
    """PIDs of the live processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _stop(process: subprocess.Popen[str], signum: int) -> str:
    """Send `signum`, wait for the process to end; returns its stderr."""
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return err


def _assert_stopped_cleanly(process: subprocess.Popen[str], signum: int, err: str) -> None:
    assert process.returncode == 128 + signum, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    ours = [line for line in err.splitlines() if "stopped by" in line]
    name = signal.Signals(signum).name
    assert len(ours) == 1 and ours[0].startswith(f"tdd-priv: stopped by {name}"), err[-3000:]
    assert err.rstrip().splitlines()[-1] == ours[0]


def _hidden(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob(".*"))


def test_sigterm_while_the_run_folder_is_written_leaves_nothing_behind(
    tiny_ag_news: Path, tmp_path: Path, embedding_cache: Path
) -> None:
    runs, ready = tmp_path / "runs", tmp_path / "ready"
    args = _run_args(tiny_ag_news, runs / "demo", "prefect")
    process = _paused("report", args, _env(tmp_path, embedding_cache), ready)
    staged = sorted(runs.glob(".*.partial-*"))
    assert [p.name.partition(".partial-")[0] for p in staged] == [".demo", ".demo.private"]
    assert (staged[1] / "splits.json").is_file()  # private material is on disk now
    server = _children(process.pid)
    assert server, "the temporary Prefect server should be running"

    err = _stop(process, signal.SIGTERM)
    _assert_stopped_cleanly(process, signal.SIGTERM, err)
    assert list(runs.iterdir()) == []  # no staging folder, no lock file, no run folder
    assert not [pid for pid in server if _alive(pid)], "the Prefect server outlived the run"
    assert not [p for p in _hidden(embedding_cache) if p.suffix in (".tmp", ".lock")]


def test_sighup_during_a_cache_write_leaves_nothing_behind(
    tiny_ag_news: Path, tmp_path: Path
) -> None:
    runs, ready, cache = tmp_path / "runs", tmp_path / "ready", tmp_path / "cold-cache"
    args = _run_args(tiny_ag_news, runs / "demo", "prefect")
    process = _paused("cache", args, _env(tmp_path, cache), ready)
    temporaries = sorted(cache.rglob(".*.tmp"))
    assert temporaries and all(path.is_dir() for path in temporaries)
    server = _children(process.pid)
    assert server, "the temporary Prefect server should be running"

    err = _stop(process, signal.SIGHUP)
    _assert_stopped_cleanly(process, signal.SIGHUP, err)
    assert _hidden(cache) == []  # no temporary, no lock file
    assert list(runs.iterdir()) == []
    assert not [pid for pid in server if _alive(pid)], "the Prefect server outlived the run"


def test_a_live_run_keeps_its_folders_from_a_second_run_and_from_clean(
    tiny_ag_news: Path,
    tmp_path: Path,
    embedding_cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs, ready, out = tmp_path / "runs", tmp_path / "ready", tmp_path / "runs" / "demo"
    process = _paused(
        "report", _run_args(tiny_ag_news, out, "local"), _env(tmp_path, embedding_cache), ready
    )
    try:
        live = sorted(runs.glob(".*.partial-*"))
        assert len(live) == 2
        killed = runs / ".earlier.partial-k1ll3d"  # what a SIGKILLed run left behind
        killed.mkdir()
        (killed / ".tdd-priv-folder").write_text('{"role": "private"}')
        (killed / "splits.json").write_text("member rows")

        started = time.monotonic()
        assert main([*_run_args(tiny_ag_news, out, "local"), "--overwrite"]) == 2
        assert time.monotonic() - started < 10  # before any work
        err = capsys.readouterr().err
        assert f"{out}.private is being written by another tdd-priv run (PID {process.pid})" in err

        assert main(["clean", str(runs)]) == 0
        assert f"removed {killed}" in capsys.readouterr().out
        assert not killed.exists()
        assert sorted(runs.glob(".*.partial-*")) == live  # the live run's staging is kept
    finally:
        err = _stop(process, signal.SIGTERM)
    _assert_stopped_cleanly(process, signal.SIGTERM, err)
    assert list(runs.iterdir()) == []
