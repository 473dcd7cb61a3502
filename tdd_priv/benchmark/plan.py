"""A suite as studies: one sweep per dataset, run by the study machinery (resumable cells,
Prefect tasks, local or Dask runners), each cell an ordinary signed run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tdd_priv.benchmark.prepare import PreparedDataset
from tdd_priv.benchmark.suite import Suite
from tdd_priv.config import PRIVATE_SUFFIX
from tdd_priv.study import Sweep

__all__ = ["STUDIES_DIR", "dataset_sweep", "study_folder"]

STUDIES_DIR = "studies"


def study_folder(out: Path, dataset: str) -> Path:
    """Where a dataset's study (its cells, table and figures) lives in the benchmark folder."""
    return out / STUDIES_DIR / dataset


def dataset_sweep(suite: Suite, prepared: PreparedDataset, out: Path) -> Sweep:
    """The dataset's cells: every method under every ε of the suite (inf: without DP) and the
    references (coresets of private records) without DP, at every k, `runs` seeds each. The
    cells' private records go beside the benchmark folder (`out`.private/<dataset>)."""
    epsilons = ["none" if epsilon is None else epsilon for epsilon in suite.epsilons]
    k, seeds = list(suite.k), list(range(suite.runs))
    grids: list[dict[str, Any]] = []
    if suite.methods:
        grids.append({"method": list(suite.methods), "epsilon": epsilons, "k": k, "seed": seeds})
    if suite.references:
        grids.append({"method": list(suite.references), "epsilon": ["none"], "k": k, "seed": seeds})
    base: dict[str, Any] = {
        "data": prepared.data,
        "evaluation": dict(suite.evaluation),
        "audit": {"level": "none", **suite.audit},
    }
    private_root = out.with_name(out.name + PRIVATE_SUFFIX) / prepared.name
    return Sweep.from_dict(
        {
            "name": f"{suite.name}-{prepared.name}",
            "description": f"{suite.name} benchmark suite, dataset {prepared.name}",
            "base": base,
            "grid": grids,
            "private_root": str(private_root.resolve()),
        },
        source=f"{suite.source}: {prepared.name}",
    )
