"""Run folders: checked before any work, locked for the whole run, written in hidden staging
folders and moved into place only when everything in them has been written.

A run writes two folders (`RunFolders`): the release (`--out`: only what may be shared) and
the private record (`--private-out`, default `<out>.private`). For each folder F in its parent
folder P:

- `P/.F.lock` is the run's lock on F (`tdd_priv.locks.file_lock`): taken before any work, held
  to the end, removed when the run ends. A second run into F fails at once.
- `P/.F.partial-R/` is F's staging folder, beside F (never private material beside the
  release). Once everything is written, the private folder moves into place first, then the
  release, each with one atomic exchange where the system has one (renameat2 on Linux), so
  that F always holds a whole run, the old one or the new one.
- `F/.tdd-priv-folder` is the marker every run folder gets: `--overwrite` replaces only a folder
  that carries it (and never the input's folder, the working directory, the home folder, `/`,
  or a folder above an input or the working directory).

A staging folder whose run lock can be taken belongs to a run that is gone (killed, or the
machine lost power): `remove_stale` removes it, and every run removes those it finds beside
its own folders. While its run is alive, its lock is held and nothing touches it.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tdd_priv.errors import ConfigError
from tdd_priv.locks import (
    LOCK_SUFFIX,
    LockHeld,
    file_lock,
    remove_stale_temporaries,
    stale_lock_files,
)

__all__ = [
    "MARKER_FILE",
    "RunFolders",
    "check_run_folders",
    "claimed_run_folders",
    "clean_stale",
    "remove_stale",
    "reset_staging",
    "staged_run_folders",
]

MARKER_FILE = ".tdd-priv-folder"
Role = Literal["release", "private"]
_OPTION: dict[Role, str] = {"release": "--out", "private": "--private-out"}
_STAGING = ".partial-"
_RETIRED = ".old-"


@dataclass(frozen=True)
class RunFolders:
    """The two folders of one run: `release` (may be shared) and `private` (never)."""

    release: Path
    private: Path

    def roles(self) -> tuple[tuple[Role, Path], ...]:
        """Each folder with its role, the private one first: the order they move into place."""
        return (("private", self.private), ("release", self.release))


# --- checks before any work ------------------------------------------------------------------


def check_run_folders(folders: RunFolders, *, overwrite: bool, inputs: Sequence[Path] = ()) -> None:
    """Refuse, before any work, folders a run must not write (ConfigError naming the folder
    and the reason): a folder that holds or lies above an input, the working directory or one
    above it, the home folder, `/`; an existing non-empty folder without `overwrite`, or with
    it but without the marker of a tdd-priv run folder of the same role; a folder that another
    run is writing; release and private folders that coincide or nest."""
    release, private = folders.release.resolve(), folders.private.resolve()
    if release == private or release in private.parents or private in release.parents:
        raise ConfigError(
            f"--out {folders.release} and --private-out {folders.private} must be two separate "
            "folders, neither inside the other: the private record must never be shipped with "
            f"the release (the default private folder is {folders.release}.private)."
        )
    for role, folder in folders.roles():
        _check_folder(folder, role, overwrite=overwrite, inputs=inputs)
        if folder.parent.is_dir():  # a live run made its parent: nobody writes one without
            with ExitStack() as probe:
                _lock(probe, folder, role)


def _check_folder(folder: Path, role: Role, *, overwrite: bool, inputs: Sequence[Path]) -> None:
    option = f"{_OPTION[role]} {folder}"
    reason = _protected(folder.resolve(), inputs)
    if reason:
        raise ConfigError(f"{option} is {reason}; a run never writes there: choose a new folder.")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{option} exists and is not a folder; choose another {_OPTION[role]}.")
    problem = _not_replaceable(folder, role, overwrite=overwrite)
    if problem:
        raise ConfigError(f"{option} {problem}")


def _protected(folder: Path, inputs: Sequence[Path]) -> str | None:
    """Why `folder` (resolved) must never be replaced, or None."""
    if folder == Path(folder.anchor):
        return "the root folder"
    try:
        home: Path | None = Path.home().resolve()
    except (KeyError, RuntimeError):  # no home folder known for this user
        home = None
    if folder == home:
        return "your home folder"
    cwd = Path.cwd().resolve()
    if folder == cwd:
        return "the working directory"
    if folder in cwd.parents:
        return f"a folder above the working directory {cwd}"
    for given in inputs:
        source = given.resolve()
        if folder == source:
            return f"the input {given}"
        if folder == source.parent:
            return f"the folder of the input {given}"
        if folder in source.parents:
            return f"a folder above the input {given}"
    return None


def _not_replaceable(folder: Path, role: Role, *, overwrite: bool) -> str | None:
    """Why a run may not put its `role` folder at `folder`, or None (missing or empty folders,
    and with `overwrite` tdd-priv folders of the same role, may be replaced)."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    if not overwrite:
        return (
            f"already exists and is not empty; pass --overwrite to replace it (only a folder "
            f"written by tdd-priv is replaced) or choose another {_OPTION[role]}."
        )
    written_as = _marker_role(folder)
    if written_as is None:
        return (
            f"holds no {MARKER_FILE} marker, so it is not a run folder written by tdd-priv (or "
            "by a version before the marker existed); --overwrite replaces only such folders: "
            f"delete it yourself if it may go, or choose another {_OPTION[role]}."
        )
    if written_as != role:
        return (
            f"is the {written_as} folder of a run, not a {role} one; --overwrite will not "
            f"replace it: choose another {_OPTION[role]}."
        )
    return None


def _marker_role(folder: Path) -> str | None:
    try:
        marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    role = marker.get("role") if isinstance(marker, dict) else None
    return role if role in _OPTION else None


def _lock(stack: ExitStack, folder: Path, role: Role) -> None:
    """Take the run lock of `folder` until `stack` closes; ConfigError at once when another run
    holds it."""
    try:
        stack.enter_context(file_lock(_lock_path(folder), blocking=False))
    except LockHeld as held:
        owner = f" (PID {held.owner_pid})" if held.owner_pid is not None else ""
        raise ConfigError(
            f"{_OPTION[role]} {folder} is being written by another tdd-priv run{owner}, which "
            f"holds {held.path}; wait for it to finish or choose another {_OPTION[role]}."
        ) from None
    except PermissionError as error:
        raise ConfigError(
            f"{_OPTION[role]} {folder}: cannot create files in {folder.parent} ({error}); "
            f"choose a folder you can write to."
        ) from None


# --- the run's lock, staging and the move into place -------------------------------------------


def _lock_path(folder: Path) -> Path:
    return folder.parent / f".{folder.name}{LOCK_SUFFIX}"


@contextmanager
def claimed_run_folders(folders: RunFolders) -> Iterator[list[Path]]:
    """Lock both folders for the block (a second run fails at once with ConfigError), after
    creating their parent folders; yields the stale leftovers of killed runs it removed from
    those parent folders."""
    with ExitStack() as stack:
        for role, folder in folders.roles():
            try:
                folder.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ConfigError(
                    f"{_OPTION[role]} {folder}: cannot create {folder.parent} ({error})."
                ) from None
            _lock(stack, folder, role)
        parents = dict.fromkeys(folder.parent for _, folder in folders.roles())
        yield [path for parent in parents for path in remove_stale(parent)]


@contextmanager
def staged_run_folders(folders: RunFolders, *, overwrite: bool) -> Iterator[RunFolders]:
    """Yield a new hidden staging folder beside each run folder, marked as a run folder of its
    role; when the block ends normally the private one replaces its folder first, then the
    release. On any exception or signal both staging folders are removed and the run folders
    are left as they were. Call it while holding `claimed_run_folders`."""
    staged: dict[Role, Path] = {}
    try:
        for role, folder in folders.roles():
            staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}{_STAGING}", dir=folder.parent))
            staged[role] = staging
            marker = {"role": role, "written_by": "tdd-priv"}
            (staging / MARKER_FILE).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        yield RunFolders(release=staged["release"], private=staged["private"])
        for role, folder in folders.roles():  # something appeared during the run: refuse it
            problem = _not_replaceable(folder, role, overwrite=overwrite)
            if problem:
                raise ConfigError(f"{_OPTION[role]} {folder} {problem}")
        for role, folder in folders.roles():
            _move_into_place(staged[role], folder)
    finally:
        for staging in staged.values():
            shutil.rmtree(staging, ignore_errors=True)


def reset_staging(folder: Path) -> None:
    """Empty a staging folder but for its marker (a retried report step starts afresh)."""
    for path in folder.iterdir():
        if path.name == MARKER_FILE:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _move_into_place(staging: Path, folder: Path) -> None:
    """Put `staging` at `folder`; afterwards `staging` holds what `folder` held (if anything)."""
    if not folder.exists():
        staging.rename(folder)
        return
    if _exchange(staging, folder):
        return
    # No atomic exchange here: move the old folder aside first. A crash between the two renames
    # leaves the old run at .F.old-R, which remove_stale puts back.
    retired = folder.parent / staging.name.replace(_STAGING, _RETIRED, 1)
    folder.rename(retired)
    staging.rename(folder)
    retired.rename(staging)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    rename_exchange, at_fdcwd = 2, -100
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False  # the filesystem or kernel cannot exchange: fall back to two renames
    raise OSError(code, os.strerror(code), str(first), None, str(second))


# --- leftovers of killed runs --------------------------------------------------------------------


def remove_stale(folder: Path, *, names: Iterable[str] | None = None) -> list[Path]:
    """Remove what killed runs and cache writes left in `folder`; returns what went.

    Staging folders `.F.partial-*` (and `.F.old-*`) go when the run lock `.F.lock` can be
    taken, that is when no live run writes F; a retired `.F.old-*` run folder is put back at F
    when F is missing. Then cache-write temporaries nobody holds, then free lock files.
    `names`: only the run folders of these names (default: all).
    """
    if not folder.is_dir():
        return []
    wanted = set(names) if names is not None else None
    removed: list[Path] = []
    for name, leftovers in _staging_leftovers(folder).items():
        if wanted is not None and name not in wanted:
            continue
        final = folder / name
        try:
            with file_lock(_lock_path(final), blocking=False):
                removed += _clear_leftovers(final, leftovers)
        except LockHeld:
            continue  # its run is alive
    if wanted is None:
        removed += remove_stale_temporaries(folder)
        removed += stale_lock_files(folder)
    return removed


def _staging_leftovers(folder: Path) -> dict[str, list[Path]]:
    """Staging and retired folders in `folder`, by the name of the run folder they belong to."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.glob(".*")):
        for infix in (_STAGING, _RETIRED):
            name, sep, _ = path.name[1:].rpartition(infix)
            if sep and name and _written_by_a_run(path, name):
                found.setdefault(name, []).append(path)
                break
    return found


# What older versions left in their staging folders (they had no marker).
_LEGACY_RUN_FILES = ("report.json", "config.resolved.yaml", "synthetic", "private")


def _written_by_a_run(path: Path, name: str) -> bool:
    """Whether the hidden folder `path` was made by a run (someone's `.vim.old-2023` is not):
    it holds the marker, or nothing (a run killed as it made it), or what runs of older
    versions left in their staging folders."""
    if not path.is_dir() or path.is_symlink():
        return False
    if (path / MARKER_FILE).is_file() or not any(path.iterdir()):
        return True
    legacy = _LEGACY_RUN_FILES if _STAGING in path.name else (name,)  # old: .F.old-R/F/
    return any((path / entry).exists() for entry in legacy)


def _clear_leftovers(final: Path, leftovers: list[Path]) -> list[Path]:
    removed = []
    for path in leftovers:
        retired_run = _RETIRED in path.name and _marker_role(path) is not None
        if retired_run and not final.exists():
            path.rename(final)  # a crash between the two renames of a move: the old run back
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def clean_stale(roots: Iterable[Path], *, depth: int) -> list[Path]:
    """`remove_stale` in each root folder and in the folders down to `depth` levels below it
    (hidden folders are not entered); returns everything removed."""
    removed: list[Path] = []
    for root in roots:
        removed += remove_stale(root)
        if depth > 0 and root.is_dir():
            children = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
            removed += clean_stale(
                (child for child in children if not child.name.startswith(".")), depth=depth - 1
            )
    return removed
