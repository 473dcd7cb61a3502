"""The CLI turns SIGINT, SIGTERM and SIGHUP into an exception in the main thread, so that
everything on the way up cleans what it staged (end to end: tests/integration/)."""

import os
import signal
from pathlib import Path

import pytest

from tdd_priv import cli
from tdd_priv.cli import Stopped, _stop_signals_raise, main


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_raises_in_the_main_thread_and_handlers_are_restored(signum: int) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with pytest.raises(Stopped) as stopped, _stop_signals_raise():
        os.kill(os.getpid(), signum)
        raise AssertionError("the signal did not stop the block")
    assert stopped.value.signum == signum
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_signal_the_process_was_told_to_ignore_stays_ignored() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with _stop_signals_raise():
            os.kill(os.getpid(), signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_stopped_command_exits_128_plus_the_signal_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def clean_then_stop(args: object) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        return 0

    monkeypatch.setitem(cli._COMMANDS, "clean", clean_then_stop)
    assert main(["clean", str(tmp_path)]) == 143
    err = capsys.readouterr().err
    assert err.startswith("tdd-priv: stopped by SIGTERM") and len(err.splitlines()) == 1


def test_clean_removes_a_killed_runs_staging_and_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leftover = tmp_path / "runs" / ".demo.partial-k1ll3d"
    leftover.mkdir(parents=True)
    (leftover / "private").mkdir()  # as runs of older versions left it (no marker)
    (leftover / "private" / "splits.json").write_text("member rows")
    assert main(["clean", str(tmp_path)]) == 0  # the folders directly inside DIR too
    out = capsys.readouterr().out
    assert f"removed {leftover}" in out and "1 leftover(s)" in out
    assert not leftover.exists()
