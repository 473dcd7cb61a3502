"""File locks (fcntl.flock), and temporary files whose writer's lock tells a cleaner whether
that writer is still alive.

A lock is a file of its own, never a data file: its holder writes `tdd-priv <PID>` into it and
removes it on release, so a finished holder leaves nothing behind. Removing a lock file is safe
because whoever takes a lock checks, once it holds it, that the path still names the file it
locked, and starts over when it does not. The operating system drops a lock when its holder
dies (even by SIGKILL), so a lock that can be taken belongs to nobody: what it protected is a
leftover.

Cache writes go through `replacing_temporary`: a lock file `.NAME.tdd-R.lock` (made first,
held throughout, removed last) and beside it a folder `.NAME.tdd-R.tmp/` that the new content
is written into, then moved over NAME. `remove_stale_temporaries` removes the folders whose
lock is free (or gone), and free lock files, in a folder.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HeldLock",
    "LockHeld",
    "file_lock",
    "lock_owner",
    "remove_stale_temporaries",
    "replacing_temporary",
    "stale_lock_files",
]

LOCK_SUFFIX = ".lock"
TEMP_SUFFIX = ".tmp"
_TAG = "tdd-priv"
# Temporaries of cache writes before they carried a lock: `.KEY.npy.RANDOM.tmp` (KEY 64 hex);
# no live writer of this version makes them.
_UNLOCKED_TEMPORARY = re.compile(r"^\.[0-9a-f]{64}\.(npy|json)\.[^/]+\.tmp$")


class LockHeld(Exception):
    """A non-blocking `file_lock` found the lock held by another process (or another open
    file in this one). `owner_pid`: the holder's PID as it wrote it, when readable."""

    def __init__(self, path: Path, owner_pid: int | None) -> None:
        self.path = path
        self.owner_pid = owner_pid
        owner = f"process {owner_pid}" if owner_pid is not None else "another process"
        super().__init__(f"{path} is locked by {owner}")


@dataclass(frozen=True)
class HeldLock:
    """A lock this process holds: the lock file and the open descriptor that holds it."""

    path: Path
    descriptor: int


@contextmanager
def file_lock(path: Path, *, blocking: bool) -> Iterator[HeldLock]:
    """Hold an exclusive lock on the lock file `path` (created if missing) for the block.

    blocking: wait for the holder to release it; else raise `LockHeld` at once. The lock is
    released, and its file removed, when the block ends in any way. `path`'s folder must exist.
    Not re-entrant: a second `file_lock` on the same path in this process blocks (or raises)
    like any other holder would.
    """
    held = _acquire(path, blocking=blocking)
    try:
        yield held
    finally:
        _release(held)


def lock_owner(path: Path) -> int | None:
    """The PID written in the lock file `path`, or None when it is missing or not ours."""
    try:
        tag, _, pid = path.read_text(encoding="utf-8").strip().partition(" ")
    except (OSError, UnicodeDecodeError):
        return None
    return int(pid) if tag == _TAG and pid.isdigit() else None


def _open_lock(path: Path, *, create: bool) -> int:
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    return os.open(path, flags, 0o644)


def _still_names(descriptor: int, path: Path) -> bool:
    """Whether `path` still names the file open at `descriptor` (a holder may have removed it)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _take(descriptor: int, path: Path, *, blocking: bool) -> bool:
    """Lock the open lock file; False when it was removed meanwhile (try again). Closes the
    descriptor unless it returns True."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(descriptor)
        raise LockHeld(path, lock_owner(path)) from None
    except BaseException:
        os.close(descriptor)
        raise
    if _still_names(descriptor, path):
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{_TAG} {os.getpid()}\n".encode(), 0)
        return True
    os.close(descriptor)
    return False


def _acquire(path: Path, *, blocking: bool) -> HeldLock:
    while True:
        descriptor = _open_lock(path, create=True)
        if _take(descriptor, path, blocking=blocking):
            return HeldLock(path, descriptor)


def _release(held: HeldLock) -> None:
    try:
        if _still_names(held.descriptor, held.path):
            held.path.unlink(missing_ok=True)  # while still holding it: see the module docstring
    except OSError:
        pass  # a read-only folder: the lock file stays, and the next holder reuses it
    finally:
        os.close(held.descriptor)


@contextmanager
def _free_lock(path: Path) -> Iterator[bool]:
    """Take the existing lock file `path` if nobody holds it: yields True while this process
    holds it (it is removed afterwards), False when it is held. A missing file yields True:
    nobody holds it, and nothing is created."""
    try:
        descriptor: int | None = _open_lock(path, create=False)
    except FileNotFoundError:
        descriptor = None
    taken: bool | None = False
    if descriptor is not None:
        try:
            taken = _take(descriptor, path, blocking=False)
        except LockHeld:
            taken = None
    if taken is None:
        yield False
    elif not taken:  # missing, or removed meanwhile by its holder: nobody holds it now
        yield True
    else:
        assert descriptor is not None
        held = HeldLock(path, descriptor)
        try:
            yield True
        finally:
            _release(held)


# --- temporaries of cache writes -----------------------------------------------------------------


@contextmanager
def replacing_temporary(final: Path) -> Iterator[Path]:
    """Yield a path to write `final`'s new content to; when the block ends normally it replaces
    `final` atomically (os.replace), and on any exception or signal it is removed.

    The path lies in a folder `.NAME.tdd-R.tmp/` beside `final`, guarded by the lock file
    `.NAME.tdd-R.lock` for as long as the block runs, so `remove_stale_temporaries` never
    removes a live writer's work. The writer may make its own temporaries in that folder.
    """
    folder = final.parent
    folder.mkdir(parents=True, exist_ok=True)
    held = _new_lock(folder, prefix=f".{final.name}.tdd-")
    staging = held.path.with_suffix(TEMP_SUFFIX)
    try:
        staging.mkdir()
        target = staging / final.name
        yield target
        os.replace(target, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _release(held)


def _new_lock(folder: Path, *, prefix: str) -> HeldLock:
    """A new lock file with a unique name in `folder`, held by this process."""
    while True:
        descriptor, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=LOCK_SUFFIX)
        os.set_inheritable(descriptor, False)
        try:
            taken = _take(descriptor, Path(name), blocking=False)
        except LockHeld:  # a cleaner holds it for a moment, and removes it
            continue
        if taken:
            return HeldLock(Path(name), descriptor)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the cache-write temporaries in `folder` whose writer is gone; returns them.

    A temporary `.NAME.tdd-R.tmp` is stale when its lock file is missing (a writer makes the
    lock first and removes it last) or can be taken; `.KEY.npy.R.tmp` files of older versions,
    which had no lock, are stale too. Lock files nobody holds are removed afterwards.
    """
    if not folder.is_dir():
        return []
    removed: list[Path] = []
    for path in sorted(folder.glob(f".*.tdd-*{TEMP_SUFFIX}")):
        with _free_lock(path.with_suffix(LOCK_SUFFIX)) as free:
            if free:
                _remove(path)
                removed.append(path)
    for path in sorted(folder.glob(f".*{TEMP_SUFFIX}")):
        if _UNLOCKED_TEMPORARY.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed + stale_lock_files(folder)


def stale_lock_files(folder: Path) -> list[Path]:
    """Remove the lock files (written by `file_lock`) in `folder` that nobody holds."""
    removed = []
    for path in sorted(folder.glob(f".*{LOCK_SUFFIX}")):
        if lock_owner(path) is None or not path.is_file():
            continue  # not one of ours (or already gone)
        with _free_lock(path) as free:
            if free:
                removed.append(path)  # _free_lock removes it as it lets go
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
