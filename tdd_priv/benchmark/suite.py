"""A benchmark suite: datasets, methods, sizes, privacy budgets and the evaluation protocol, as
one YAML file (the shipped ones: `standard`, `full` and `quick`, tdd_priv/benchmark/suites/).

```yaml
name: standard
description: ...
datasets:                          # any dataset the run command accepts
  sst2:
    data: {spec: "{datasets}/sst2/sst2.csv", split_column: split, test_split: dev,
           label_names: [negative, positive]}
    public_pool: {simulate: 0.2}   # a disjoint 20 % of the train split, held out of the data
  hatecheck:
    data: {spec: demo}
    public_pool: demo              # or any --public-pool spec
methods: [dpsgd-teacher, dm, pe-vote]   # run under every epsilon (inf: without DP)
references: [random, herding, kcenter]  # coresets: private records, only without DP
k: [1, 5, 10, 20, 50]
epsilon: [1, 4, inf]
runs: 3                            # seeds 0..runs-1: splits, selection, models, fresh DP noise
evaluation: {heads: [linear], seeds: 3, text_models: [tfidf-lr]}   # the run's evaluation settings
audit: {level: none}               # the run's audit settings (default: none)
```

`{datasets}` in a data spec is the shared datasets folder (`--datasets`, default
`../shared/datasets`). Every method runs with its defaults (the protocol tunes nothing on the
suite's test splits). Everything is checked when the suite is read, before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tdd_priv.errors import ConfigError
from tdd_priv.yamlio import load_yaml

__all__ = [
    "BUILTIN_SUITES",
    "DatasetEntry",
    "SimulatedPool",
    "Suite",
    "load_suite",
]

BUILTIN_SUITES = ("standard", "full", "quick")
SUITE_KEYS = (
    "name",
    "description",
    "datasets",
    "methods",
    "references",
    "k",
    "epsilon",
    "runs",
    "evaluation",
    "audit",
)
_NO_DP = ("inf", "none", "no-dp")


@dataclass(frozen=True)
class SimulatedPool:
    """A public pool simulated from the dataset itself: a seeded `share` of its train split,
    removed from the data the runs see and given to them as an external pool (labels dropped).
    It stands for public text of the same distribution, which real deployments would have
    from another source."""

    share: float


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of a suite: `data` (the run config's `data` settings) and its public pool
    (a --public-pool spec, or a simulated one)."""

    name: str
    data: Mapping[str, Any]
    public_pool: str | SimulatedPool


@dataclass(frozen=True)
class Suite:
    """A validated suite (see the module docstring). `epsilons` holds None for "without DP"."""

    name: str
    datasets: tuple[DatasetEntry, ...]
    methods: tuple[str, ...]
    references: tuple[str, ...]
    k: tuple[int, ...]
    epsilons: tuple[float | None, ...]
    runs: int
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    audit: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = "suite"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "datasets": {
                entry.name: {
                    "data": dict(entry.data),
                    "public_pool": (
                        {"simulate": entry.public_pool.share}
                        if isinstance(entry.public_pool, SimulatedPool)
                        else entry.public_pool
                    ),
                }
                for entry in self.datasets
            },
            "methods": list(self.methods),
            "references": list(self.references),
            "k": list(self.k),
            "epsilon": ["inf" if e is None else e for e in self.epsilons],
            "runs": self.runs,
            "evaluation": dict(self.evaluation),
            "audit": dict(self.audit),
        }


def load_suite(spec: str, *, datasets: Path) -> Suite:
    """The suite `spec` names: a shipped one (standard, full, quick) or a YAML file."""
    if spec in BUILTIN_SUITES:
        text = resources.files(__package__).joinpath("suites", f"{spec}.yaml").read_text("utf-8")
        payload, source = load_yaml(text, where=f"the {spec} suite"), f"the {spec} suite"
    else:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(
                f"--suite {spec}: neither a shipped suite ({', '.join(BUILTIN_SUITES)}) nor a file."
            )
        payload, source = load_yaml(path, where=str(path)), str(path)
    return _parse(payload, source=source, datasets=datasets)


def _parse(payload: Any, *, source: str, datasets: Path) -> Suite:
    if not isinstance(payload, Mapping):
        raise ConfigError(f"{source}: a suite is a mapping with keys {', '.join(SUITE_KEYS)}.")
    unknown = sorted(set(payload) - set(SUITE_KEYS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(map(str, unknown))}; a suite has "
            f"{', '.join(SUITE_KEYS)}."
        )
    for required in ("datasets", "k", "epsilon"):
        if required not in payload:
            raise ConfigError(f"{source}: `{required}` is missing.")
    methods = _names(payload.get("methods", []), f"{source}: methods")
    references = _names(payload.get("references", []), f"{source}: references")
    if not methods and not references:
        raise ConfigError(f"{source}: name at least one method or reference.")
    runs = payload.get("runs", 1)
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ConfigError(f"{source}: runs must be a whole number ≥ 1, got {runs!r}.")
    return Suite(
        name=str(payload.get("name") or Path(source).stem),
        description=str(payload.get("description") or ""),
        datasets=_datasets(payload["datasets"], source=source, root=datasets),
        methods=methods,
        references=references,
        k=_sizes(payload["k"], source),
        epsilons=_epsilons(payload["epsilon"], source),
        runs=runs,
        evaluation=_mapping(payload.get("evaluation", {}), f"{source}: evaluation"),
        audit=_mapping(payload.get("audit", {}), f"{source}: audit"),
        source=source,
    )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {value!r}.")
    return dict(value)


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be a list of names, got {value!r}.")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where} names one twice: {value}.")
    return tuple(value)


def _sizes(value: Any, source: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{source}: k must be a non-empty list of sizes per class.")
    for k in value:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"{source}: k: {k!r} is not a whole number ≥ 1.")
    return tuple(sorted(set(value)))


def _epsilons(value: Any, source: str) -> tuple[float | None, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{source}: epsilon must be a non-empty list (inf: without DP).")
    parsed: list[float | None] = []
    for epsilon in value:
        if isinstance(epsilon, str) and epsilon.lower() in _NO_DP:
            parsed.append(None)
        elif (
            not isinstance(epsilon, bool)
            and isinstance(epsilon, int | float)
            and math.isfinite(epsilon)
            and epsilon > 0
        ):
            parsed.append(float(epsilon))
        elif isinstance(epsilon, float) and math.isinf(epsilon) and epsilon > 0:
            parsed.append(None)
        else:
            raise ConfigError(f"{source}: epsilon: {epsilon!r} is not a finite ε > 0 or inf.")
    finite = sorted({e for e in parsed if e is not None})
    return (*finite, *((None,) if None in parsed else ()))


def _datasets(value: Any, *, source: str, root: Path) -> tuple[DatasetEntry, ...]:
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{source}: datasets must map names to {{data, public_pool}}.")
    entries = []
    for name, spec in value.items():
        where = f"{source}: datasets.{name}"
        if not isinstance(spec, Mapping) or "data" not in spec:
            raise ConfigError(f"{where} needs `data` (the run config's data settings).")
        unknown = sorted(set(spec) - {"data", "public_pool"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}.")
        data = dict(_mapping(spec["data"], f"{where}.data"))
        data["spec"] = _expand(str(data.get("spec", "")), root, where)
        pool = spec.get("public_pool")
        entries.append(DatasetEntry(str(name), data, _pool(pool, root, where)))
    return tuple(entries)


def _expand(spec: str, root: Path, where: str) -> str:
    if "{datasets}" not in spec:
        return spec
    expanded = spec.replace("{datasets}", str(root))
    if not Path(expanded).is_file():
        raise ConfigError(
            f"{where}: {expanded} not found; point --datasets at the shared datasets folder "
            f"(it is {root} now)."
        )
    return expanded


def _pool(value: Any, root: Path, where: str) -> str | SimulatedPool:
    if isinstance(value, str):
        return _expand(value, root, where)
    if isinstance(value, Mapping) and set(value) == {"simulate"}:
        share = value["simulate"]
        if isinstance(share, int | float) and not isinstance(share, bool) and 0 < share < 1:
            return SimulatedPool(float(share))
    raise ConfigError(
        f"{where}: public_pool must be a --public-pool spec or {{simulate: SHARE}} with a share "
        f"in (0, 1), got {value!r}. A DP benchmark needs a public pool."
    )
