"""The signature of a run folder: which files are released, and the signed summary.

`report.dsse.json` is a DSSE envelope (payloadType application/vnd.in-toto+json) over an in-toto
Statement v1 whose subjects are every released file with its SHA-256, and whose predicate
(type `PREDICATE_TYPE`) is a summary of report.json. The released files are every file of the
run folder except the envelope itself, the shipped public key and the folder's marker
(`.tdd-priv-folder`, which says only that tdd-priv wrote the folder). The private record lives
in a folder of its own; run folders of older versions kept it in `private/`, which is never a
released file either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tdd_priv.fingerprint import sha256_file
from tdd_priv.rundir import MARKER_FILE
from tdd_priv.signing import (
    IN_TOTO_PAYLOAD_TYPE,
    SigningKey,
    make_statement,
    public_key_pem,
    sign_envelope,
)

__all__ = [
    "ENVELOPE_FILE",
    "PREDICATE_TYPE",
    "PREDICATE_TYPES",
    "PRIVATE_DIR",
    "PUBLIC_KEY_FILE",
    "REPORT_FILE",
    "released_files",
    "report_summary",
    "sign_run_folder",
]

PRIVATE_DIR = "private"  # where run folders of older versions kept the private record
REPORT_FILE = "report.json"
ENVELOPE_FILE = "report.dsse.json"
PUBLIC_KEY_FILE = "signing-key.pub"
PREDICATE_TYPE = "https://tdd-priv.dev/report/v2"
# Every predicate type a verifier accepts: v1 (reports of schema 0.x/1.x) and v2 (schema 2.x).
PREDICATE_TYPES = ("https://tdd-priv.dev/report/v1", "https://tdd-priv.dev/report/v2")


def released_files(run_dir: Path) -> list[str]:
    """Every released file of a run folder (POSIX paths relative to it), sorted: all files but
    the signature envelope, the shipped public key, the folder's marker and a legacy `private/`."""
    unsigned = {ENVELOPE_FILE, PUBLIC_KEY_FILE, MARKER_FILE}
    names = (path.relative_to(run_dir).as_posix() for path in run_dir.rglob("*"))
    return sorted(
        name
        for name in names
        if (run_dir / name).is_file() and name.split("/")[0] != PRIVATE_DIR and name not in unsigned
    )


def report_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """The predicate: what a reviewer checks first, all taken from report.json."""
    privacy, method = report["privacy"], report["method"]
    return {
        "run_id": report["run_id"],
        "schema_version": report["schema_version"],
        "dataset": {
            "name": report["dataset"]["name"],
            "fingerprint": report["dataset"]["fingerprint"],
        },
        "method": method["name"],
        "per_class": method["per_class"],
        "privacy": {
            "mode": privacy["mode"],
            "epsilon": privacy["epsilon"],
            "delta": privacy["delta"],
            "accountant": privacy["accountant"],
            "mechanisms": len(privacy["mechanisms"]),
            # since schema 2.0.0: what the claim covers (older reports have no claim)
            **({"claim": privacy["claim"]["status"]} if "claim" in privacy else {}),
        },
        "utility": {
            key: entry["accuracy_mean"]
            for key, entry in report["utility"].items()
            if isinstance(entry, Mapping) and "accuracy_mean" in entry
        },
        "verdicts": {name: verdict.get("status") for name, verdict in report["verdicts"].items()},
    }


def sign_run_folder(run_dir: Path, key: SigningKey) -> dict[str, Any]:
    """Write `signing-key.pub` and `report.dsse.json` (over every released file, report.json
    included) into `run_dir`; returns the envelope. report.json must already be written."""
    report = json.loads((run_dir / REPORT_FILE).read_text(encoding="utf-8"))
    subjects = {name: sha256_file(run_dir / name) for name in released_files(run_dir)}
    statement = make_statement(
        subjects, predicate_type=PREDICATE_TYPE, predicate=report_summary(report)
    )
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )
    envelope = sign_envelope(
        payload, payload_type=IN_TOTO_PAYLOAD_TYPE, private_key=key.private_key
    )
    (run_dir / PUBLIC_KEY_FILE).write_bytes(public_key_pem(key.public_key))
    (run_dir / ENVELOPE_FILE).write_text(json.dumps(envelope, indent=2) + "\n", encoding="utf-8")
    return envelope
