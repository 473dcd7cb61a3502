"""Expert trajectories (for trajectory matching) as a value that can be saved and reused.

Training the experts is the only part of `mtt` that reads the private data, and the slowest. As
its own step it can be cached across runs: the trajectories go to a safetensors file (no pickle)
with the privacy records of their training (the DP-SGD runs) beside them, so a run that reuses
the file accounts for exactly what was spent to make it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tdd_priv.errors import ConfigError
from tdd_priv.privacy.ledger import MechanismRecord

__all__ = ["ExpertTrajectories"]


@dataclass(frozen=True)
class ExpertTrajectories:
    """`checkpoints`: (experts, epochs + 1, p) flat parameters after every epoch of every expert;
    `records`: the mechanisms their training applied (empty when trained without privacy)."""

    checkpoints: torch.Tensor = field(repr=False)
    records: tuple[MechanismRecord, ...] = ()

    def __len__(self) -> int:
        return int(self.checkpoints.shape[0])

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename), so a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(descriptor)
        try:
            records = json.dumps([record.to_json() for record in self.records])
            save_file(
                {"checkpoints": self.checkpoints.detach().cpu().contiguous()},
                temp,
                metadata={"records": records},
            )
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> ExpertTrajectories:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            checkpoints = load_file(str(path))["checkpoints"]
        except (OSError, KeyError, ValueError) as error:
            raise ConfigError(f"cannot read expert trajectories {path} ({error})") from error
        records = tuple(
            MechanismRecord.from_json(entry) for entry in json.loads(metadata.get("records", "[]"))
        )
        return cls(checkpoints, records)
