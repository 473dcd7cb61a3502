"""Signing and verifying a hand-made run folder (no pipeline): the checks of `tdd-priv verify`."""

import json
from pathlib import Path
from typing import Any

import pytest

from tdd_priv.fingerprint import sha256_file
from tdd_priv.privacy.ledger import compute_epsilon
from tdd_priv.report import released_files, report_summary, sign_run_folder
from tdd_priv.signing import (
    SigningKey,
    generate_key_pair,
    load_private_key,
    make_statement,
    sign_envelope,
)
from tdd_priv.verify import verify_run
from tests.report_samples import MECHANISMS, non_private_report, private_report

FILES = {
    "synthetic/data.jsonl": '{"text": "a public text", "label": 0, "label_name": "World"}\n',
    "figures/utility.png": "not really a png",
    "config.resolved.yaml": "seed: 0\n",
    "report.md": "# report\n",
    "report.html": "<!DOCTYPE html><title>report</title>\n",
    "private/splits.json": '{"members": [1, 2]}',  # where older versions kept it
    ".tdd-priv-folder": '{"role": "release", "written_by": "tdd-priv"}\n',
}


def _make_run(folder: Path, key_path: Path, report: dict[str, Any]) -> SigningKey:
    for name, content in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content)
    key = SigningKey(load_private_key(key_path), key_path, "--key")
    report["signing"]["key_id"] = key.key_id
    report["artifacts"] = [
        {"path": name, "sha256": sha256_file(folder / name)} for name in released_files(folder)
    ]
    (folder / "report.json").write_text(json.dumps(report, indent=2))
    sign_run_folder(folder, key)
    return key


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    generate_key_pair(tmp_path / "signer")
    return tmp_path / "signer"


def _failed(folder: Path, key_path: Path) -> set[str]:
    verification = verify_run(folder, public_key=key_path.with_name("signer.pub"))
    return {check.name for check in verification.failures}


def test_released_files_exclude_private_the_envelope_the_key_and_the_marker(
    tmp_path: Path, key_path: Path
) -> None:
    run = tmp_path / "run"
    _make_run(run, key_path, non_private_report())
    assert (run / "report.dsse.json").is_file() and (run / "signing-key.pub").is_file()
    unreleased = {"private/splits.json", ".tdd-priv-folder"}
    expected = [name for name in FILES if name not in unreleased] + ["report.json"]
    assert released_files(run) == sorted(expected)


def test_a_signed_folder_verifies_and_the_predicate_is_the_summary(
    tmp_path: Path, key_path: Path
) -> None:
    run = tmp_path / "run"
    _make_run(run, key_path, non_private_report())
    verification = verify_run(run, public_key=key_path.with_name("signer.pub"))
    assert verification.passed, verification.failures
    assert len(verification.checks) == 10
    summary = report_summary(json.loads((run / "report.json").read_text()))
    assert summary["privacy"] == {"mode": "none", "epsilon": None, "delta": None,
                                  "accountant": None, "mechanisms": 0}  # fmt: skip
    assert summary["utility"]["full_data"] == 0.86
    assert "protocol" not in summary["utility"]


def test_a_private_folder_verifies_only_with_the_ledgers_epsilon(
    tmp_path: Path, key_path: Path
) -> None:
    epsilon = compute_epsilon(MECHANISMS, delta=1e-5, accountant="rdp")
    _make_run(tmp_path / "exact", key_path, private_report(epsilon=epsilon))
    assert _failed(tmp_path / "exact", key_path) == set()
    _make_run(tmp_path / "close", key_path, private_report(epsilon=epsilon * (1 + 1e-7)))
    assert _failed(tmp_path / "close", key_path) == set()  # within the 1e-6 tolerance
    _make_run(tmp_path / "off", key_path, private_report(epsilon=epsilon * (1 + 1e-5)))
    assert _failed(tmp_path / "off", key_path) == {"privacy ledger ε"}


def test_a_report_edited_and_re_signed_by_someone_else_fails_with_the_signers_key(
    tmp_path: Path, key_path: Path
) -> None:
    run = tmp_path / "run"
    _make_run(run, key_path, non_private_report())
    generate_key_pair(tmp_path / "forger")
    forger = SigningKey(load_private_key(tmp_path / "forger"), tmp_path / "forger", "--key")
    (run / "report.md").write_text("# a better story\n")
    report = json.loads((run / "report.json").read_text())
    report["artifacts"] = [
        {"path": a["path"], "sha256": sha256_file(run / a["path"])} for a in report["artifacts"]
    ]
    report["signing"]["key_id"] = forger.key_id
    (run / "report.json").write_text(json.dumps(report))
    sign_run_folder(run, forger)
    # With the key shipped in the folder (the forger's), the forgery is self-consistent: a
    # shipped key proves integrity, not origin...
    assert verify_run(run).passed
    # ...with the signer's public key it is caught.
    assert _failed(run, key_path) == {"signature", "signing key named"}


def test_subjects_must_stay_inside_the_released_files(tmp_path: Path, key_path: Path) -> None:
    run = tmp_path / "run"
    key = _make_run(run, key_path, non_private_report())
    statement = make_statement(
        {"private/splits.json": sha256_file(run / "private/splits.json")},
        predicate_type="https://tdd-priv.dev/report/v1",
        predicate={},
    )
    envelope = sign_envelope(
        json.dumps(statement).encode(),
        payload_type="application/vnd.in-toto+json",
        private_key=key.private_key,
    )
    (run / "report.dsse.json").write_text(json.dumps(envelope))
    assert "signed statement" in _failed(run, key_path)
