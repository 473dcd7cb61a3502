"""Load an unlabeled public text pool: the only texts a DP run may show (step 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tdd_priv.data._io import check_texts, format_values, is_missing, read_spec
from tdd_priv.data.demo import PUBLIC_POOL_FILE, demo_file
from tdd_priv.data.labeled import DEMO_SPEC
from tdd_priv.errors import DataValidationError
from tdd_priv.fingerprint import fingerprint_strings

__all__ = ["PoolCheck", "PoolOrigin", "PublicTexts", "load_public_texts"]

PoolOrigin = Literal["external", "internal"]


@dataclass(frozen=True)
class PublicTexts:
    """Distinct, non-empty public texts in source order (first occurrence kept)."""

    texts: tuple[str, ...]
    name: str
    source: str
    fingerprint: str  # SHA-256 over `texts`


def load_public_texts(spec: str, *, text_column: str = "text") -> PublicTexts:
    """Texts of `spec` (a file, `hf:NAME[:CONFIG]` with all its splits, or `demo`).

    Labels are ignored: the pool is public and unlabeled. Empty texts are dropped without
    complaint, exact duplicates are removed; a pool with no text at all is an error.
    """
    if spec == DEMO_SPEC:
        with demo_file(PUBLIC_POOL_FILE) as path:
            table = read_spec(str(path))
        name = "demo (Davidson tweets)"
    else:
        table = read_spec(spec, needed=[text_column])
        name = table.name
    if text_column not in table.columns:
        raise DataValidationError(
            f"{table.source}: the public pool has no column {text_column!r} (columns: "
            f"{format_values(table.columns)}). Rename its text column to {text_column!r}."
        )
    values = table.columns[text_column]
    check_texts(
        values,
        source=table.source,
        column=text_column,
        fix="join the pieces into one or convert the column to text, or give a pool whose "
        f"{text_column!r} column holds the texts.",
    )
    # dict.fromkeys: ordered de-duplication.
    texts = tuple(dict.fromkeys(t for t in values if not is_missing(t)))
    if not texts:
        raise DataValidationError(
            f"{table.source}: every text in the public pool's column {text_column!r} is empty."
        )
    return PublicTexts(
        texts=texts,
        name=name,
        source=table.source,
        fingerprint=fingerprint_strings(texts, salt="public-texts"),
    )


@dataclass(frozen=True)
class PoolCheck:
    """The public pool's hygiene: how many of its texts were removed before realization because
    they equal (after normalisation) or nearly equal (character n-gram Jaccard ≥ 0.8) a labeled
    row — members, held-out audit and test rows, canaries. Counts only, never the texts."""

    origin: PoolOrigin
    checked: int
    removed_exact: int
    removed_near: int

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "checked": self.checked,
            "removed_exact": self.removed_exact,
            "removed_near": self.removed_near,
        }
