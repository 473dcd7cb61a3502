"""tdd-priv: differentially private text dataset distillation with audited reports.

`tdd_priv.run(RunConfig(...))` runs the whole pipeline without Prefect. The names below load
lazily so that `import tdd_priv.errors` (or the CLI's --help) does not pull in torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tdd_priv.config import RunConfig
    from tdd_priv.pipeline import RunResult, run

__all__ = ["RunConfig", "RunResult", "__version__", "run"]

__version__ = "0.1.0"

_LAZY = {
    "RunConfig": "tdd_priv.config",
    "RunResult": "tdd_priv.pipeline",
    "run": "tdd_priv.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tdd_priv' has no attribute {name!r}")
