"""A privacy–utility sweep: a base run config and a grid of settings, expanded into named cells.

A sweep file (YAML) holds:

```yaml
name: demo-study                 # optional; shown in study.md
base:                            # a run config, the keys of examples/demo.yaml (or a path to one)
  data: {spec: demo, public_pool: demo}
  evaluation: {heads: [linear], seeds: 2}
grid:                            # dotted RunConfig settings -> the values to try
  method: [dm, kip]
  epsilon: [1, 4, none]          # `none` runs without DP; alias of privacy.epsilon
  k: [5, 10]                     # alias of per_class
  seed: [0, 1]
```

`grid` may also be a list of such mappings: the cells are the union of their products, which is
how a sweep pairs DP methods across ε with coreset baselines that exist only without DP. Every
cell is a complete `RunConfig`; its id is built from its grid values alone (never from the base or
the file order), so it stays the same when the base changes and a study can resume.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tdd_priv.config import PRIVATE_SUFFIX, RunConfig, load_config_file, validate_settings
from tdd_priv.errors import ConfigError
from tdd_priv.fingerprint import sha256_json
from tdd_priv.rundir import RunFolders
from tdd_priv.yamlio import load_yaml

__all__ = [
    "AXIS_ALIASES",
    "CELLS_DIR",
    "Cell",
    "Sweep",
    "axis_label",
    "cell_folder",
    "expand_cells",
    "load_sweep",
    "unique_settings",
]

CELLS_DIR = "cells"
SWEEP_KEYS = ("name", "description", "base", "grid", "private_root")

# Short names a sweep may use for the settings studies vary most.
AXIS_ALIASES = {"epsilon": "privacy.epsilon", "k": "per_class"}
# Settings that say how a run executes, not what it computes: the study owns them.
EXECUTION_SETTINGS = ("out", "private_out", "overwrite", "progress", "orchestrator")
# Axes first in a cell id (in this order), then any others alphabetically.
_ID_ORDER = ("method", "privacy.epsilon", "per_class", "fairness", "seed")
_ID_LABELS = {"privacy.epsilon": "eps", "per_class": "k"}
_NO_DP = ("none", "no-dp")


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file: `base` is a RunConfig mapping (RunConfig.to_dict() shape);
    `grids` one or more {dotted setting: values} products (aliases resolved). `private_root`:
    the folder that holds the cells' private records (default: `DIR.private` beside the study
    folder DIR)."""

    name: str
    base: Mapping[str, Any]
    grids: tuple[Mapping[str, tuple[Any, ...]], ...]
    description: str = ""
    source: str = "sweep"
    private_root: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The resolved sweep as plain data (base with every default filled in)."""
        return {
            "name": self.name,
            "description": self.description,
            "base": dict(self.base),
            "grid": [{key: list(values) for key, values in grid.items()} for grid in self.grids],
            **({"private_root": self.private_root} if self.private_root else {}),
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any], *, source: str = "sweep") -> Sweep:
        """Validate a sweep mapping; every error names `source`, the key and the fix."""
        return _parse(payload, source=source, base_dir=Path.cwd())


@dataclass(frozen=True)
class Cell:
    """One run of a study: `settings` are its grid values ({dotted setting: value}); `config`
    the complete run config, whose `out` is DIR/cells/<id>."""

    id: str
    settings: Mapping[str, Any]
    config: RunConfig = field(compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "settings": dict(self.settings), "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Cell:
        return cls(
            id=str(payload["id"]),
            settings=dict(payload["settings"]),
            config=RunConfig.from_dict(payload["config"]),
        )


def load_sweep(path: Path) -> Sweep:
    """Read and validate a sweep file (see the module docstring). Writes nothing."""
    payload = load_yaml(path, where=f"sweep file {path}")
    if not isinstance(payload, Mapping):
        raise ConfigError(f"{path} must hold a mapping with keys {', '.join(SWEEP_KEYS)}.")
    return _parse(payload, source=str(path), base_dir=path.parent)


def cell_folder(out: Path, cell_id: str) -> Path:
    """Where a cell's run folder lives in the study folder `out`."""
    return out / CELLS_DIR / cell_id


def cell_private_folder(out: Path, cell_id: str, private_root: str | None = None) -> Path:
    """Where a cell's private record lives: `private_root`/<id>, by default beside the study
    folder (`out`.private/<id>), never inside the folder a study is shared as."""
    root = Path(private_root) if private_root else out.with_name(out.name + PRIVATE_SUFFIX)
    return root / cell_id


def expand_cells(sweep: Sweep, out: Path) -> list[Cell]:
    """Every cell of the sweep, in a stable order, each with a checked `RunConfig`.

    Raises ConfigError for a grid value RunConfig or the pipeline would refuse (unknown method,
    a coreset under DP, k < 1, ...), naming the cell, before anything runs or is written.
    """
    from tdd_priv.pipeline import check_config  # pulls in torch; only needed once cells exist

    base = validate_settings(RunConfig, sweep.base)  # each cell is checked in full below
    cells: dict[str, Cell] = {}
    for number, grid in enumerate(sweep.grids, start=1):
        where = f"{sweep.source}: grid" + (f" #{number}" if len(sweep.grids) > 1 else "")
        axes = sorted(grid, key=_axis_rank)
        for values in itertools.product(*(grid[axis] for axis in axes)):
            settings = dict(zip(axes, values, strict=True))
            cell_id = _cell_id(settings)
            private = cell_private_folder(out, cell_id, sweep.private_root)
            folders = RunFolders(cell_folder(out, cell_id), private)
            config = _cell_config(base, settings, folders, where, cell_id)
            try:
                check_config(config)
            except ConfigError as error:
                raise ConfigError(f"{where}: cell {cell_id}: {error}") from error
            if cell_id in cells and cells[cell_id].config != config:
                raise ConfigError(
                    f"{where}: cell {cell_id} appears twice with different settings; "
                    "make the grids disjoint."
                )
            cells.setdefault(cell_id, Cell(cell_id, settings, config))
    return list(cells.values())


# --- parsing -------------------------------------------------------------------------------------


def _parse(payload: Mapping[str, Any], *, source: str, base_dir: Path) -> Sweep:
    unknown = sorted(set(payload) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(map(str, unknown))}; a sweep has "
            f"{', '.join(SWEEP_KEYS)} (run settings go under `base`, varied ones under `grid`)."
        )
    base = _base(payload.get("base", {}), source=source, base_dir=base_dir)
    if base.privacy.noise_seed is not None:
        raise ConfigError(
            f"{source}: base sets privacy.noise_seed: every DP cell would draw the same noise "
            "(and the seed would be stored with each cell). Remove it; each cell then draws "
            "fresh secret noise."
        )
    if "grid" not in payload:
        raise ConfigError(f"{source}: no `grid`; list the settings to vary, e.g. `seed: [0, 1]`.")
    raw = payload["grid"]
    grids = raw if isinstance(raw, list) else [raw]
    if not grids:
        raise ConfigError(f"{source}: `grid` is an empty list; give at least one grid mapping.")
    parsed = tuple(
        _grid(grid, where=f"{source}: grid" + (f" #{i}" if len(grids) > 1 else ""), base=base)
        for i, grid in enumerate(grids, start=1)
    )
    name = payload.get("name") or Path(source).stem
    private_root = payload.get("private_root")
    if private_root is not None and not isinstance(private_root, str):
        raise ConfigError(f"{source}: `private_root` must be a folder path, got {private_root!r}.")
    return Sweep(
        name=str(name),
        base=base.to_dict(),
        grids=parsed,
        description=str(payload.get("description") or ""),
        source=source,
        private_root=private_root,
    )


def _base(value: Any, *, source: str, base_dir: Path) -> RunConfig:
    """The shared base of every cell: types and ranges checked here; method options and other
    registry names are checked per cell (`expand_cells`), since the grid may set the method."""
    if isinstance(value, str):
        path = Path(value) if Path(value).is_absolute() else base_dir / value
        return load_config_file(path, registered=False)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: `base` must be a run config mapping or a path to one.")
    try:
        return validate_settings(RunConfig, value)
    except ConfigError as error:
        raise ConfigError(f"{source}: base: {_reason(error)}") from error


def _grid(grid: Any, *, where: str, base: RunConfig) -> dict[str, tuple[Any, ...]]:
    if not isinstance(grid, Mapping) or not grid:
        raise ConfigError(
            f"{where} must be a non-empty mapping of settings to lists of values, "
            "e.g. `epsilon: [1, 4]`."
        )
    axes: dict[str, tuple[Any, ...]] = {}
    for key, values in grid.items():
        setting = AXIS_ALIASES.get(str(key), str(key))
        if setting in axes:
            raise ConfigError(f"{where}: `{key}` and its alias both vary {setting}; keep one.")
        if setting == "privacy.noise_seed":
            raise ConfigError(
                f"{where}: `{key}` cannot be varied: noise seeds are secret and never stored "
                "with a study; each DP cell draws fresh noise."
            )
        if setting in EXECUTION_SETTINGS or setting == "privacy.enabled":
            hint = "use epsilon: [none]" if setting == "privacy.enabled" else "the study sets it"
            raise ConfigError(f"{where}: `{key}` cannot be varied ({hint}).")
        if not isinstance(values, list):
            raise ConfigError(
                f"{where}: `{key}` must be a list of values (write [{values}] for one value)."
            )
        if not values:
            raise ConfigError(f"{where}: `{key}` is an empty list; give at least one value.")
        canonical = [_axis_value(setting, value, where=f"{where}: `{key}`") for value in values]
        ids = [_value_label(value) for value in canonical]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"{where}: `{key}` lists the same value twice: {values}.")
        _check_setting(base, setting, canonical[0], where=f"{where}: `{key}`")
        axes[setting] = tuple(canonical)
    return axes


def _axis_value(setting: str, value: Any, *, where: str) -> Any:
    """Checks for the settings whose values a sweep names most; others go to RunConfig."""
    if setting == "privacy.epsilon":
        if value is None or (isinstance(value, str) and value.lower() in _NO_DP):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConfigError(f"{where}: {value!r} is not a positive ε; use a number or `none`.")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: ε must be finite; use `none` to run without DP.")
        return value
    if setting in ("per_class", "seed"):
        lowest = 1 if setting == "per_class" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise ConfigError(f"{where}: {value!r} is not an integer ≥ {lowest}.")
    return value


def _overrides(settings: Mapping[str, Any]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for setting, value in settings.items():
        if setting == "privacy.epsilon":
            overrides["privacy.enabled"] = value is not None
            if value is not None:
                overrides[setting] = value
        else:
            overrides[setting] = value
    return overrides


def _check_setting(base: RunConfig, setting: str, value: Any, *, where: str) -> None:
    """Fail on a setting RunConfig does not have (listing the known ones) or a value it refuses."""
    try:
        base.with_overrides(_overrides({setting: value}), registered=False)
    except ConfigError as error:
        raise ConfigError(f"{where}: {_reason(error)}") from error


def _reason(error: Exception) -> str:
    """The message of a RunConfig error without its generic 'config: ' location."""
    return str(error).removeprefix("config: ")


def _cell_config(
    base: RunConfig,
    settings: Mapping[str, Any],
    folders: RunFolders,
    where: str,
    cell_id: str,
) -> RunConfig:
    overrides = {
        **_overrides(settings),
        "out": str(folders.release),
        "private_out": str(folders.private),
        "overwrite": True,  # the study replaces a cell whose folder holds a different config
        "progress": False,
    }
    try:
        return base.with_overrides(overrides)
    except ConfigError as error:
        raise ConfigError(f"{where}: cell {cell_id}: {_reason(error)}") from error


# --- cell ids ------------------------------------------------------------------------------------


def _axis_rank(setting: str) -> tuple[int, str]:
    return (_ID_ORDER.index(setting), "") if setting in _ID_ORDER else (len(_ID_ORDER), setting)


def _value_label(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"{value:g}"
    if isinstance(value, str):
        return re.sub(r"[^A-Za-z0-9.+]+", "-", value).strip("-") or "empty"
    return sha256_json(value)[:8]


def _cell_id(settings: Mapping[str, Any]) -> str:
    """`method-dm_eps-4_k-5_seed-0`: label-value pairs in a fixed axis order (folder-safe)."""
    parts = []
    for setting, value in settings.items():
        label = _ID_LABELS.get(setting, setting.replace("_", "-"))
        parts.append(f"{label}-{_value_label(value)}")
    return "_".join(parts)


def axis_label(setting: str) -> str:
    """The short name of a grid setting in ids and tables."""
    return _ID_LABELS.get(setting, setting)


def unique_settings(cells: Sequence[Cell]) -> list[str]:
    """Every grid setting any cell varies, in id order."""
    return sorted({s for cell in cells for s in cell.settings}, key=_axis_rank)
