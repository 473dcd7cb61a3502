"""Run folders appear whole or not at all: work happens in a hidden sibling folder that is
renamed into place only when everything in it has been written."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tdd_priv.errors import ConfigError

__all__ = ["check_output_dir", "staged_directory"]


def check_output_dir(out: Path, *, overwrite: bool) -> None:
    """Refuse, before any work, to replace an existing non-empty folder without `overwrite`."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder; choose another --out.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(
            f"--out {out} already exists and is not empty; pass --overwrite to replace it "
            "or choose another --out."
        )


@contextmanager
def staged_directory(out: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield an empty staging folder beside `out`; on success it replaces `out` atomically.

    On any error (or Ctrl-C) the staging folder is removed and `out` is left as it was.
    """
    check_output_dir(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield staging
        if out.exists():
            # Move the old folder aside first so that `out` is never missing its contents.
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            out.rename(retired / out.name)
            staging.rename(out)
            shutil.rmtree(retired)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
