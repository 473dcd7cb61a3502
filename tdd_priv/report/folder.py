"""Write a run's released files into a (staging) release folder and its private record into a
(staging) private folder, and sign the release.

Order matters: the private record, data, config and figures first; then report.md and
report.html; then report.json (validated against its schema) with the SHA-256 of every file
before it; last the signature over everything released, report.json included. All of it
happens in staging folders (tdd_priv.rundir), so a signed run folder appears whole or not at
all, and nothing private is ever written into the release.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from safetensors.numpy import save_file

from tdd_priv.data.release import AuditedRelease
from tdd_priv.errors import DataValidationError
from tdd_priv.fingerprint import sha256_file
from tdd_priv.report.attest import (
    ENVELOPE_FILE,
    PREDICATE_TYPE,
    PRIVATE_DIR,
    PUBLIC_KEY_FILE,
    REPORT_FILE,
    released_files,
    sign_run_folder,
)
from tdd_priv.report.figures import draw_figures
from tdd_priv.report.html import render_html
from tdd_priv.report.markdown import render_markdown
from tdd_priv.report.record import RunRecord, build_report
from tdd_priv.report.schema import validate_report
from tdd_priv.rundir import RunFolders
from tdd_priv.signing import SigningKey, resolve_signing_key

__all__ = ["PRIVATE_DIR", "released_files", "write_run_folder"]


def _write_synthetic(folder: Path, record: RunRecord) -> None:
    realized, names = record.realized, record.labeled.label_names
    folder.mkdir()
    rows: list[dict[str, Any]] = [
        {"text": text, "label": int(label), "label_name": names[int(label)]}
        for text, label in zip(realized.texts, realized.labels, strict=True)
    ]
    columns = ["text", "label", "label_name"]
    if realized.flagged is not None:  # the detox step ran: mark texts over a toxicity threshold
        columns.append("flagged")
        for row, flagged in zip(rows, realized.flagged, strict=True):
            row["flagged"] = bool(flagged)
    if realized.soft_labels is not None:  # the labels the utility was measured with
        columns.append("soft_label")
        for row, soft in zip(rows, realized.soft_labels.tolist(), strict=True):
            row["soft_label"] = soft
    with (folder / "data.jsonl").open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
    pd.DataFrame(rows, columns=columns).to_parquet(folder / "data.parquet", index=False)
    tensors: dict[str, np.ndarray] = {
        "embeddings": np.ascontiguousarray(record.synthetic.embeddings, dtype=np.float32),
        "labels": np.ascontiguousarray(record.synthetic.labels, dtype=np.int64),
        "text_embeddings": np.ascontiguousarray(realized.embeddings, dtype=np.float32),
    }
    if record.synthetic.soft_labels is not None:
        tensors["soft_labels"] = np.ascontiguousarray(record.synthetic.soft_labels, np.float32)
    if realized.soft_labels is not None:
        tensors["text_soft_labels"] = np.ascontiguousarray(realized.soft_labels, np.float32)
    save_file(
        tensors,
        str(folder / "embeddings.safetensors"),
        metadata={"method": record.synthetic.method},
    )


def _copy_release(folder: Path, release: AuditedRelease) -> None:
    """The audited release file, byte for byte, beside the normalised data.jsonl: the
    signature then covers exactly what was audited (refused if it changed since it was read)."""
    copy = folder / release.file.copy_name
    shutil.copyfile(release.file.path, copy)
    if sha256_file(copy) != release.file.sha256:
        raise DataValidationError(
            f"{release.file.path}: the release file changed during the audit (its SHA-256 is no "
            "longer the one audited); audit it again once it stays unchanged."
        )


def _write_private(folder: Path, record: RunRecord) -> None:
    """The private record: splits, realized row ids, canary secrets. Never released."""
    folder.mkdir(exist_ok=True)
    (folder / "splits.json").write_text(json.dumps(record.splits.to_json()), encoding="utf-8")
    # the full config, local paths included, so the owner can repeat the run (never the noise
    # seed: it is stored nowhere)
    (folder / "config.yaml").write_text(
        yaml.safe_dump(record.config.without_noise_seed().to_dict(), sort_keys=False),
        encoding="utf-8",
    )
    (folder / "realized_rows.json").write_text(
        json.dumps({"source": record.realized.source, "rows": record.realized.rows.tolist()}),
        encoding="utf-8",
    )
    splits = record.splits
    if len(splits.canaries):  # the canary audit's secrets: never released
        dataset = record.labeled.dataset.select(splits.canaries.tolist())
        canaries = [
            {"row": int(row), "text": text, "label": int(label), "included": bool(included)}
            for row, text, label, included in zip(
                splits.canaries,
                dataset["text"],
                dataset["label"],
                np.isin(splits.canaries, splits.members),
                strict=True,
            )
        ]
        (folder / "canaries.json").write_text(
            json.dumps(canaries, ensure_ascii=False), encoding="utf-8"
        )


def _artifacts(folder: Path) -> list[dict[str, str]]:
    return [
        {"path": name, "sha256": sha256_file(folder / name)}
        for name in released_files(folder)
        if name != REPORT_FILE
    ]


def write_run_folder(
    folders: RunFolders, record: RunRecord, *, signing_key: SigningKey | None = None
) -> dict[str, Any]:
    """Write the private record into `folders.private`, and data, figures, config, reports and
    the signature into `folders.release`; returns report.json's content. Signs with
    `signing_key`, else with the key that `record.config.signing_key`, $TDD_PRIV_SIGNING_KEY or
    the per-user default names."""
    key = signing_key or resolve_signing_key(record.config.signing_key)
    _write_private(folders.private, record)
    folder = folders.release
    _write_synthetic(folder / "synthetic", record)
    if record.release is not None:
        _copy_release(folder / "synthetic", record.release)
    (folder / "config.resolved.yaml").write_text(
        yaml.safe_dump(record.config.released_dict(), sort_keys=False), encoding="utf-8"
    )
    report = build_report(record)
    report["signing"] = {
        "algorithm": "ed25519",
        "key_id": key.key_id,
        "public_key": PUBLIC_KEY_FILE,
        "envelope": ENVELOPE_FILE,
        "predicate_type": PREDICATE_TYPE,
    }
    report["figures"] = []
    report["artifacts"] = _artifacts(folder)  # the data files so far, for the rendered reports
    validate_report(report)  # a report that breaks its own schema is a bug: never sign one
    report["figures"] = draw_figures(report, folder / "figures")
    (folder / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (folder / "report.html").write_text(render_html(report, folder), encoding="utf-8")
    report["artifacts"] = _artifacts(folder)
    validate_report(report)
    text = json.dumps(report, indent=2, allow_nan=False)  # strict JSON: NaN and ∞ are bugs here
    (folder / REPORT_FILE).write_text(text + "\n", encoding="utf-8")
    sign_run_folder(folder, key)
    return report
