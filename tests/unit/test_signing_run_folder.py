"""Signing and verifying a hand-made run folder (no pipeline): the checks of `tdd-priv verify`."""

import json
from pathlib import Path
from typing import Any

import pytest

from tdd_priv.cli import main
from tdd_priv.fingerprint import sha256_file
from tdd_priv.privacy.ledger import compute_epsilon
from tdd_priv.report import released_files, report_summary, sign_run_folder
from tdd_priv.report.attest import PREDICATE_TYPE, PREDICATE_TYPES
from tdd_priv.signing import (
    SigningKey,
    generate_key_pair,
    load_private_key,
    make_statement,
    resolve_trust_anchor,
    sign_envelope,
)
from tdd_priv.verify import VerifyExit, verify_run
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
    assert verification.outcome is VerifyExit.VERIFIED
    assert len(verification.checks) == 11
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
    # With the key shipped in the folder (the forger's), the forgery is self-consistent, so
    # every check passes, but without a trusted key that is UNAUTHENTICATED, never VERIFIED...
    unanchored = verify_run(run)
    assert unanchored.passed and unanchored.outcome is VerifyExit.UNAUTHENTICATED
    assert not unanchored.verified
    # ...and with the signer's public key it is caught.
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


def _forge(run: Path, forger_path: Path) -> None:
    """Edit a released data line, then re-sign with another key so every check but the
    signer's identity agrees (key id in report.json, artifacts, envelope, shipped key)."""
    generate_key_pair(forger_path)
    forger = SigningKey(load_private_key(forger_path), forger_path, "--key")
    (run / "synthetic/data.jsonl").write_text('{"text": "forged", "label": 0, "label_name": "W"}\n')
    report = json.loads((run / "report.json").read_text())
    report["artifacts"] = [
        {"path": a["path"], "sha256": sha256_file(run / a["path"])} for a in report["artifacts"]
    ]
    report["signing"]["key_id"] = forger.key_id
    (run / "report.json").write_text(json.dumps(report))
    sign_run_folder(run, forger)


def test_a_keyring_or_a_pinned_key_id_accepts_the_signer_and_rejects_a_forgery(
    tmp_path: Path, key_path: Path
) -> None:
    genuine, forged = tmp_path / "genuine", tmp_path / "forged"
    key = _make_run(genuine, key_path, non_private_report())
    _make_run(forged, key_path, non_private_report())
    _forge(forged, tmp_path / "forger")
    assert verify_run(forged).outcome is VerifyExit.UNAUTHENTICATED  # self-consistent
    ring = tmp_path / "ring"
    ring.mkdir()
    generate_key_pair(ring / "colleague")  # any key of the ring may have signed
    (ring / "colleague").unlink()
    (ring / "signer.pub").write_bytes(key_path.with_name("signer.pub").read_bytes())
    for trust in (
        resolve_trust_anchor(keyrings=[ring]),
        resolve_trust_anchor(key_ids=[key.key_id]),
        resolve_trust_anchor(key_ids=[key.key_id[:16]]),
        resolve_trust_anchor(environ={"TDD_PRIV_TRUSTED_KEYS": str(ring)}),
    ):
        accepted = verify_run(genuine, trust=trust)
        assert accepted.outcome is VerifyExit.VERIFIED, accepted.failures
        assert accepted.signer is not None and accepted.signer.key_id == key.key_id
        rejected = verify_run(forged, trust=trust)
        assert rejected.outcome is VerifyExit.NOT_VERIFIED
        assert {check.name for check in rejected.failures} == {"signature", "signing key named"}
    pinned = verify_run(forged, trust=resolve_trust_anchor(key_ids=[key.key_id[:16]]))
    assert "not the pinned key id" in pinned.failures[0].detail


def test_a_pinned_key_id_needs_the_shipped_key_to_match(tmp_path: Path, key_path: Path) -> None:
    run = tmp_path / "run"
    key = _make_run(run, key_path, non_private_report())
    (run / "signing-key.pub").unlink()
    missing = verify_run(run, trust=resolve_trust_anchor(key_ids=[key.key_id]))
    assert "signature" in {check.name for check in missing.failures}
    # A named key still verifies without the shipped one; a pin adds to it, not replaces it.
    both = resolve_trust_anchor(keys=[key_path.with_name("signer.pub")], key_ids=["0" * 16])
    assert verify_run(run, trust=both).outcome is VerifyExit.VERIFIED


def test_private_material_in_an_old_report_warns_and_in_a_2x_report_fails(
    tmp_path: Path, key_path: Path
) -> None:
    old = tmp_path / "old"
    _make_run(old, key_path, non_private_report())  # schema 1.0.0, private/ inside by design
    verification = verify_run(old, public_key=key_path.with_name("signer.pub"))
    assert verification.outcome is VerifyExit.VERIFIED
    (warning,) = verification.warnings
    assert warning.name == "no private material" and warning.symbol == "⚠"
    assert "private material is inside this folder; do not share it as is" in warning.detail
    assert "move `private/` out" in warning.detail

    report = non_private_report()
    report["schema_version"] = "2.0.0"
    current = tmp_path / "current"
    _make_run(current, key_path, report)
    assert "no private material" in _failed(current, key_path)
    (current / "private" / "splits.json").rename(tmp_path / "splits.json")
    (current / "private").rmdir()
    assert "no private material" not in _failed(current, key_path)
    for name in ("canaries.json", "realized_rows.json", "splits.json"):
        stray = current / "figures" / name
        stray.write_text("{}")
        verification = verify_run(current, public_key=key_path.with_name("signer.pub"))
        failure = next(c for c in verification.failures if c.name == "no private material")
        assert f"figures/{name}" in failure.detail
        stray.unlink()


@pytest.mark.parametrize("predicate_type", PREDICATE_TYPES)
def test_report_predicate_types_v1_and_v2_are_accepted(
    predicate_type: str, tmp_path: Path, key_path: Path
) -> None:
    assert PREDICATE_TYPE in PREDICATE_TYPES
    run = tmp_path / "run"
    key = _make_run(run, key_path, non_private_report())
    report = json.loads((run / "report.json").read_text())
    subjects = {name: sha256_file(run / name) for name in released_files(run)}
    for kind, accepted in ((predicate_type, True), ("https://tdd-priv.dev/report/v3", False)):
        statement = make_statement(subjects, predicate_type=kind, predicate=report_summary(report))
        envelope = sign_envelope(
            json.dumps(statement).encode(),
            payload_type="application/vnd.in-toto+json",
            private_key=key.private_key,
        )
        (run / "report.dsse.json").write_text(json.dumps(envelope))
        assert ("signed statement" not in _failed(run, key_path)) is accepted, kind


def test_the_cli_exit_code_and_last_line_say_what_was_proven(
    tmp_path: Path,
    key_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("TDD_PRIV_TRUSTED_KEYS", raising=False)
    genuine, forged = tmp_path / "genuine", tmp_path / "forged"
    key = _make_run(genuine, key_path, non_private_report())
    _make_run(forged, key_path, non_private_report())
    _forge(forged, tmp_path / "forger")
    public = str(key_path.with_name("signer.pub"))

    def verify(*argv: str) -> tuple[int, list[str]]:
        code = main(["verify", *argv])
        return code, capsys.readouterr().out.splitlines()

    for folder in (genuine, forged):  # without an anchor, a forgery looks like the original
        code, lines = verify(str(folder))
        assert code == VerifyExit.UNAUTHENTICATED == 3
        assert lines[-1].startswith("UNAUTHENTICATED: all 11 checks passed (1 warning)")
        assert "anyone can make such a folder" in lines[-1]
        assert not any("verified:" in line for line in lines)
        assert [line[0] for line in lines[:-1]] == ["✓"] * 5 + ["⚠"] + ["✓"] * 5
    code, lines = verify(str(genuine), "--key", public)
    assert code == VerifyExit.VERIFIED == 0
    assert lines[-1].startswith("verified: all 11 checks passed (1 warning)")
    assert f"signed by key id {key.key_id}" in lines[-1]
    code, lines = verify(str(forged), "--key", public)
    assert code == VerifyExit.NOT_VERIFIED == 1
    assert lines[0].startswith("✗ signature: none of the envelope's 1 signature(s) verifies")
    assert lines[-1].startswith("NOT VERIFIED: 2 of 11 checks failed")
    # A failed check wins over a missing anchor.
    (genuine / "report.md").write_text("edited\n")
    code, lines = verify(str(genuine))
    assert code == VerifyExit.NOT_VERIFIED and lines[-1].startswith("NOT VERIFIED: 1 of 11")


def test_the_cli_honours_trusted_keys_from_the_environment_and_refuses_bad_anchors(
    tmp_path: Path,
    key_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    key = _make_run(run, key_path, non_private_report())
    monkeypatch.setenv("TDD_PRIV_TRUSTED_KEYS", str(key_path.with_name("signer.pub")))
    assert main(["verify", str(run)]) == VerifyExit.VERIFIED
    assert "$TDD_PRIV_TRUSTED_KEYS" in capsys.readouterr().out.splitlines()[-1]
    generate_key_pair(tmp_path / "stranger")
    monkeypatch.setenv("TDD_PRIV_TRUSTED_KEYS", str(tmp_path / "stranger.pub"))
    assert main(["verify", str(run)]) == VerifyExit.NOT_VERIFIED
    # The command line wins over the environment.
    assert main(["verify", str(run), "--key-id", key.key_id]) == VerifyExit.VERIFIED
    capsys.readouterr()
    for bad in (["--key-id", "abc"], ["--key", str(tmp_path / "nope.pub")],
                ["--keyring", str(tmp_path / "nope")]):  # fmt: skip
        assert main(["verify", str(run), *bad]) == VerifyExit.ERROR == 2
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
