"""File locks, and cache temporaries that a killed writer leaves behind."""

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tdd_priv.encode import _write_entry
from tdd_priv.locks import LockHeld, file_lock, remove_stale_temporaries, replacing_temporary


def test_a_held_lock_refuses_another_holder_and_names_its_pid(tmp_path: Path) -> None:
    lock = tmp_path / ".ledger.lock"
    with file_lock(lock, blocking=False):
        with (
            pytest.raises(LockHeld, match=f"locked by process {os.getpid()}") as held,
            file_lock(lock, blocking=False),
        ):
            pass
        assert held.value.owner_pid == os.getpid() and held.value.path == lock
    assert not lock.exists()  # released: nothing left behind
    with file_lock(lock, blocking=False):
        pass


def test_blocking_locks_let_one_holder_in_at_a_time(tmp_path: Path) -> None:
    lock, ledger = tmp_path / ".ledger.lock", tmp_path / "ledger.txt"
    ledger.write_text("0")

    def append() -> None:
        for _ in range(20):
            with file_lock(lock, blocking=True):  # each call opens the lock file anew
                value = int(ledger.read_text())
                time.sleep(0.0005)
                ledger.write_text(str(value + 1))

    workers = [threading.Thread(target=append) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert ledger.read_text() == "80"  # no update lost, though each holder removes the file
    assert not lock.exists()


def test_a_cache_write_stopped_midway_leaves_no_temporary(tmp_path: Path) -> None:
    final = tmp_path / "entry.npy"
    final.write_bytes(b"the previous entry")
    with pytest.raises(KeyboardInterrupt), replacing_temporary(final) as temporary:
        temporary.write_bytes(b"half an ent")
        raise KeyboardInterrupt  # what a stop signal raises in the main thread
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.npy"]
    assert final.read_bytes() == b"the previous entry"


def test_the_embedding_cache_writes_whole_entries_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embeddings = np.ones((3, 4), dtype=np.float32)
    _write_entry(tmp_path, "k" * 64, [embeddings], (3, 4), {"n": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k" * 64 + ".json", "k" * 64 + ".npy"]

    def stopped_midway() -> Iterator[np.ndarray]:
        yield embeddings[:2]
        raise KeyboardInterrupt  # a stop signal while the encoder streams

    with pytest.raises(KeyboardInterrupt):
        _write_entry(tmp_path, "j" * 64, stopped_midway(), (3, 4), {"n": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k" * 64 + ".json", "k" * 64 + ".npy"]


def test_a_killed_writers_temporary_is_removed_but_a_live_ones_is_not(tmp_path: Path) -> None:
    killed = tmp_path / ".entry.npy.tdd-dead1234.tmp"  # its lock went with its process
    killed.mkdir()
    (killed / "entry.npy").write_bytes(b"x" * 1000)
    unlocked = tmp_path / f".{'a' * 64}.npy.zq8r1x.tmp"  # older versions' temporaries
    unlocked.write_bytes(b"x" * 1000)
    foreign = tmp_path / ".notes.tmp"  # not ours: never touched
    foreign.write_text("an editor's file")
    with replacing_temporary(tmp_path / "live.npy") as live:
        live.write_bytes(b"being written")
        assert remove_stale_temporaries(tmp_path) == [killed, unlocked]
        assert live.read_bytes() == b"being written"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.tmp", "live.npy"]
