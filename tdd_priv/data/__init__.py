"""Load, validate and split datasets: the pipeline's first two steps."""

from tdd_priv.data.labeled import DEMO_SPEC, ColumnMapping, LabeledData, load_labeled
from tdd_priv.data.public import PoolCheck, PublicTexts, load_public_texts
from tdd_priv.data.splits import SplitFractions, Splits, make_splits

__all__ = [
    "DEMO_SPEC",
    "ColumnMapping",
    "LabeledData",
    "PoolCheck",
    "PublicTexts",
    "SplitFractions",
    "Splits",
    "load_labeled",
    "load_public_texts",
    "make_splits",
]
