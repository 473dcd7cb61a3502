"""Bundled demo data; README.md here says what it is, where it came from and its licenses."""

from __future__ import annotations

from contextlib import AbstractContextManager
from importlib.resources import as_file, files
from pathlib import Path

__all__ = ["LABELED_FILE", "PUBLIC_POOL_FILE", "demo_file"]

LABELED_FILE = "hatecheck.csv"  # HateCheck, CC BY 4.0: text, label, group, split
PUBLIC_POOL_FILE = "public_pool.csv"  # 2,000 Davidson et al. tweets, MIT: text


def demo_file(name: str) -> AbstractContextManager[Path]:
    """A real filesystem path to a bundled file for the `with` block (even from a zip)."""
    return as_file(files(__name__) / name)
