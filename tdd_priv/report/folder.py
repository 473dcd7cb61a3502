"""Write a run's released files and private records into a (staging) run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from safetensors.numpy import save_file

from tdd_priv.fingerprint import sha256_file
from tdd_priv.report.figures import plot_utility
from tdd_priv.report.markdown import render_markdown
from tdd_priv.report.record import RunRecord, build_report

__all__ = ["PRIVATE_DIR", "released_files", "write_run_folder"]

PRIVATE_DIR = "private"


def _write_synthetic(folder: Path, record: RunRecord) -> None:
    realized, names = record.realized, record.labeled.label_names
    folder.mkdir()
    rows = [
        {"text": text, "label": int(label), "label_name": names[int(label)]}
        for text, label in zip(realized.texts, realized.labels, strict=True)
    ]
    with (folder / "data.jsonl").open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    pd.DataFrame(rows, columns=["text", "label", "label_name"]).to_parquet(
        folder / "data.parquet", index=False
    )
    tensors: dict[str, np.ndarray] = {
        "embeddings": np.ascontiguousarray(record.synthetic.embeddings, dtype=np.float32),
        "labels": np.ascontiguousarray(record.synthetic.labels, dtype=np.int64),
        "text_embeddings": np.ascontiguousarray(realized.embeddings, dtype=np.float32),
    }
    if record.synthetic.soft_labels is not None:
        tensors["soft_labels"] = np.ascontiguousarray(record.synthetic.soft_labels, np.float32)
    save_file(
        tensors,
        str(folder / "embeddings.safetensors"),
        metadata={"method": record.synthetic.method},
    )


def _write_private(folder: Path, record: RunRecord) -> None:
    folder.mkdir()
    (folder / "splits.json").write_text(json.dumps(record.splits.to_json()), encoding="utf-8")
    (folder / "realized_rows.json").write_text(
        json.dumps({"source": record.realized.source, "rows": record.realized.rows.tolist()}),
        encoding="utf-8",
    )


def released_files(run_dir: Path) -> list[Path]:
    """Every file of the run folder except report.json itself and `private/`, sorted."""
    return sorted(
        path
        for path in run_dir.rglob("*")
        if path.is_file()
        and path.relative_to(run_dir).parts[0] != PRIVATE_DIR
        and path.name != "report.json"
    )


def write_run_folder(folder: Path, record: RunRecord) -> dict[str, Any]:
    """Write data, figures, config and reports into `folder`; returns report.json's content."""
    _write_synthetic(folder / "synthetic", record)
    _write_private(folder / PRIVATE_DIR, record)
    (folder / "config.resolved.yaml").write_text(
        yaml.safe_dump(record.config.to_dict(), sort_keys=False), encoding="utf-8"
    )
    report = build_report(record)
    (folder / "figures").mkdir()
    plot_utility(report["utility"], folder / "figures" / "utility.png")
    (folder / "report.md").write_text(render_markdown(report), encoding="utf-8")
    report["artifacts"] = [
        {"path": path.relative_to(folder).as_posix(), "sha256": sha256_file(path)}
        for path in released_files(folder)
    ]
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
