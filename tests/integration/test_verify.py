"""A real tiny run is signed, verifies against its signer's key, and every kind of tampering
with it is caught, a forgery re-signed with another key included."""

import base64
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tdd_priv.cli import main
from tdd_priv.config import RunConfig
from tdd_priv.fingerprint import sha256_file
from tdd_priv.pipeline import run
from tdd_priv.report.attest import sign_run_folder
from tdd_priv.report.claim import build_claim
from tdd_priv.signing import (
    IN_TOTO_PAYLOAD_TYPE,
    SigningKey,
    TrustAnchor,
    generate_key_pair,
    key_id,
    load_private_key,
    load_public_key,
    resolve_trust_anchor,
)
from tdd_priv.verify import Verification, VerifyExit, verify_run
from tests.helpers import tiny_run_overrides

PRIVATE_RECORD_SUFFIX = ".private"


@pytest.fixture(autouse=True)
def no_trusted_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`verify` honours $TDD_PRIV_TRUSTED_KEYS; the tests name their keys themselves."""
    monkeypatch.delenv("TDD_PRIV_TRUSTED_KEYS", raising=False)
    yield


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "signer"
    generate_key_pair(path)
    return path


@pytest.fixture(scope="module")
def signed_run(tiny_ag_news: Path, signer: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "signed"
    overrides = {
        **tiny_run_overrides(tiny_ag_news, out),
        "signing_key": str(signer),
        # Signing does not depend on how utility is measured: keep the run short.
        "evaluation.text_models": [],
        "evaluation.baselines": ["random"],
    }
    run(RunConfig().with_overrides(overrides))
    # A release holds no private record: it belongs in DIR.private, beside the folder. Move it
    # there if this pipeline still writes it inside (it is not signed, so nothing else changes).
    if (out / "private").is_dir():
        shutil.move(out / "private", _private_record(out))
    return out


def _private_record(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + PRIVATE_RECORD_SUFFIX)


@pytest.fixture
def copy(signed_run: Path, tmp_path: Path) -> Path:
    """A fresh copy of the signed run for a test to tamper with."""
    return Path(shutil.copytree(signed_run, tmp_path / "copy"))


def _failed(verification: Verification) -> set[str]:
    return {check.name for check in verification.failures}


def _public(signer: Path) -> Path:
    return signer.with_name(signer.name + ".pub")


def test_the_run_folder_is_signed_over_every_released_file(signed_run: Path, signer: Path) -> None:
    for name in ("report.html", "report.dsse.json", "signing-key.pub"):
        assert (signed_run / name).is_file(), name
    envelope = json.loads((signed_run / "report.dsse.json").read_text())
    assert envelope["payloadType"] == IN_TOTO_PAYLOAD_TYPE
    report = json.loads((signed_run / "report.json").read_text())
    assert report["signing"]["key_id"] == key_id(load_public_key(_public(signer)))
    assert load_public_key(signed_run / "signing-key.pub") == load_public_key(_public(signer))
    commit = report["environment"]["commit"]
    assert commit is None or re.fullmatch(r"[0-9a-f]{40,64}", commit)
    verification = verify_run(signed_run, public_key=_public(signer))
    statement = json.loads(base64.b64decode(envelope["payload"]))
    names = {subject["name"] for subject in statement["subject"]}
    assert {
        "report.json",
        "report.md",
        "report.html",
        "config.resolved.yaml",
        "figures/utility.png",
        "synthetic/data.jsonl",
        "synthetic/data.parquet",
        "synthetic/embeddings.safetensors",
    } <= names
    assert not any(name.startswith("private/") for name in names)
    assert verification.passed, verification.failures


def test_a_valid_run_verifies_through_the_cli(
    signed_run: Path, signer: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(signed_run), "--key", str(_public(signer))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(line.startswith("✓") for line in lines[:-1]) and len(lines) == 12
    assert lines[-1].startswith("verified: all 11 checks passed")
    assert key_id(load_public_key(_public(signer))) in lines[-1]
    # Without a trusted key, the shipped key is used, and the output says what that proves.
    assert main(["verify", str(signed_run)]) == VerifyExit.UNAUTHENTICATED
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("UNAUTHENTICATED: all 11 checks passed")
    assert "the files match what that key signed" in last


def _forge(folder: Path, forger: Path) -> None:
    """What anyone can do to a copied run folder: change a released data line, then re-sign
    with a fresh key, fixing report.json's key id and artifacts, so every internal check agrees."""
    data = folder / "synthetic" / "data.jsonl"
    lines = data.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[0])
    row["text"] = "a sentence the signer never released"
    lines[0] = json.dumps(row)
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    generate_key_pair(forger)
    key = SigningKey(load_private_key(forger), forger, "--key")
    report = json.loads((folder / "report.json").read_text())
    report["signing"]["key_id"] = key.key_id
    report["artifacts"] = [
        {"path": item["path"], "sha256": sha256_file(folder / item["path"])}
        for item in report["artifacts"]
    ]
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    sign_run_folder(folder, key)


def test_a_forgery_re_signed_with_another_key_is_never_verified(
    copy: Path, signer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _forge(copy, tmp_path / "forger")
    # Without a trust anchor every check passes (the forgery is self-consistent), so verify
    # must not claim more than that.
    assert main(["verify", str(copy)]) == VerifyExit.UNAUTHENTICATED == 3
    out = capsys.readouterr().out
    assert "UNAUTHENTICATED" in out and "verified:" not in out
    assert out.count("✓") == 11
    # With the original signer's public key, the signature check fails.
    assert main(["verify", str(copy), "--key", str(_public(signer))]) == VerifyExit.NOT_VERIFIED
    out = capsys.readouterr().out
    assert "✗ signature:" in out and "verified:" not in out
    assert out.splitlines()[-1].startswith("NOT VERIFIED:")


def test_a_keyring_and_a_pinned_key_id_accept_the_run_and_reject_its_forgery(
    signed_run: Path, copy: Path, signer: Path, tmp_path: Path
) -> None:
    _forge(copy, tmp_path / "forger")
    ring = tmp_path / "keyring"
    ring.mkdir()
    shutil.copy(_public(signer), ring / "signer.pub")
    generate_key_pair(tmp_path / "colleague")
    shutil.copy(tmp_path / "colleague.pub", ring / "colleague.pub")
    signer_id = key_id(load_public_key(_public(signer)))
    for anchor in (["--keyring", str(ring)], ["--key-id", signer_id], ["--key-id", signer_id[:16]]):
        assert main(["verify", str(signed_run), *anchor]) == VerifyExit.VERIFIED, anchor
        assert main(["verify", str(copy), *anchor]) == VerifyExit.NOT_VERIFIED, anchor
        failed = _failed(verify_run(copy, trust=_anchor(anchor)))
        assert "signature" in failed, anchor


def _anchor(argv: list[str]) -> TrustAnchor:
    option, value = argv
    if option == "--keyring":
        return resolve_trust_anchor(keyrings=[Path(value)])
    return resolve_trust_anchor(key_ids=[value])


def test_one_changed_byte_in_any_released_file_is_caught(
    signed_run: Path, signer: Path, tmp_path: Path
) -> None:
    report = json.loads((signed_run / "report.json").read_text())
    names = [item["path"] for item in report["artifacts"]] + ["report.json"]
    assert len(names) == 9
    for number, name in enumerate(names):
        folder = Path(shutil.copytree(signed_run, tmp_path / f"t{number}"))
        data = bytearray((folder / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (folder / name).write_bytes(bytes(data))
        failed = _failed(verify_run(folder, public_key=_public(signer)))
        assert "file digests" in failed, name
        shutil.rmtree(folder)


def test_a_changed_epsilon_in_report_json_is_caught(copy: Path, signer: Path) -> None:
    report = json.loads((copy / "report.json").read_text())
    report["privacy"]["epsilon"] = 1.0
    (copy / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    failed = _failed(verify_run(copy, public_key=_public(signer)))
    assert {"file digests", "report schema", "summary matches report", "privacy ledger ε"} <= failed


def test_a_tampered_envelope_is_caught(signed_run: Path, copy: Path, signer: Path) -> None:
    path = copy / "report.dsse.json"
    original = json.loads((signed_run / "report.dsse.json").read_text())
    sig = original["signatures"][0]["sig"]
    forged_sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    path.write_text(json.dumps({**original, "signatures": [{"keyid": "", "sig": forged_sig}]}))
    assert _failed(verify_run(copy, public_key=_public(signer))) == {
        "signature",
        "signing key named",
    }

    statement = json.loads(base64.b64decode(original["payload"]))
    statement["predicate"]["privacy"]["epsilon"] = 0.1
    forged_payload = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps({**original, "payload": forged_payload}))
    failed = _failed(verify_run(copy, public_key=_public(signer)))
    assert {"signature", "summary matches report"} <= failed

    path.write_text(json.dumps({**original, "payloadType": "application/json"}))
    assert "signature" in _failed(verify_run(copy, public_key=_public(signer)))


def test_a_different_public_key_fails(copy: Path, tmp_path: Path) -> None:
    generate_key_pair(tmp_path / "stranger")
    failed = _failed(verify_run(copy, public_key=tmp_path / "stranger.pub"))
    assert failed == {"signature", "signing key named"}
    # Replacing the shipped key does not help either: report.json names the signer's key id.
    shutil.copy(tmp_path / "stranger.pub", copy / "signing-key.pub")
    assert "signature" in _failed(verify_run(copy))


def test_a_missing_file_fails(copy: Path, signer: Path) -> None:
    (copy / "figures" / "utility.png").unlink()
    failed = _failed(verify_run(copy, public_key=_public(signer)))
    assert failed == {"listed files present"}


def test_an_added_file_fails_and_the_marker_is_not_released(copy: Path, signer: Path) -> None:
    assert (copy / ".tdd-priv-folder").is_file()  # the run folder's marker is never signed
    (copy / "synthetic" / "extra.jsonl").write_text('{"text": "smuggled"}\n')
    (copy / ".hidden").write_text("x")
    verification = verify_run(copy, public_key=_public(signer))
    assert _failed(verification) == {"no unlisted files"}
    detail = verification.failures[0].detail
    assert "synthetic/extra.jsonl" in detail and ".hidden" in detail


def test_private_material_inside_a_current_release_fails(
    signed_run: Path, copy: Path, signer: Path
) -> None:
    assert json.loads((copy / "report.json").read_text())["schema_version"].startswith("2.")
    shutil.copytree(_private_record(signed_run), copy / "private")
    verification = verify_run(copy, public_key=_public(signer))
    assert _failed(verification) == {"no private material"}
    shutil.rmtree(copy / "private")
    (copy / "figures" / "canaries.json").write_text("{}")  # found anywhere, signed or not
    assert _failed(verify_run(copy, public_key=_public(signer))) == {
        "no private material",
        "no unlisted files",
    }


def test_an_unsigned_folder_fails_every_dependent_check_with_a_list(
    copy: Path, signer: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / "report.dsse.json").unlink()
    (copy / "report.md").write_text("edited\n")
    assert main(["verify", str(copy), "--key", str(_public(signer))]) == 1
    out = capsys.readouterr().out
    assert "✗ signature: report.dsse.json is missing" in out
    assert "✓ report schema" in out  # checks that do not need the envelope still run
    assert out.splitlines()[-1].startswith("NOT VERIFIED:")
    assert main(["verify", str(copy / "nowhere")]) == 1


def test_the_report_never_contains_private_records(signed_run: Path, tiny_ag_news: Path) -> None:
    import pandas as pd

    texts = pd.read_csv(tiny_ag_news).text
    splits = json.loads((_private_record(signed_run) / "splits.json").read_text())
    private = [texts.iloc[i] for i in splits["members"] + splits["audit"]]
    for name in ("report.json", "report.md", "report.html", "report.dsse.json"):
        content = (signed_run / name).read_text()
        leaked = [text for text in private if text in content]
        assert leaked == [], name


MECHANISMS = [
    {"name": "class_means", "noise_multiplier": 2.0, "sample_rate": 1.0, "steps": 1},
    {"name": "dc_gradients", "noise_multiplier": 1.5, "sample_rate": 0.04, "steps": 2250},
]


def _resign_as_private(folder: Path, signer: Path, *, epsilon: float) -> None:
    """Turn the run's report into a DP one with a hand-made ledger, then sign it properly."""
    report = json.loads((folder / "report.json").read_text())
    summary = {"mode": "dp", "epsilon": epsilon, "delta": 1e-5, "accountant": "rdp"}
    summary["mechanisms"] = MECHANISMS
    claim = build_claim(summary=summary, members=100, pool_origin="external", released_texts=20)
    report["privacy"] = {**summary, "statement": claim.statement, "claim": claim.to_json()}
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    sign_run_folder(folder, SigningKey(load_private_key(signer), signer, "--key"))


def _opacus_epsilon() -> float:
    """ε of MECHANISMS straight from opacus's RDP accountant (no tdd-priv code involved)."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(m["noise_multiplier"], m["sample_rate"], m["steps"]) for m in MECHANISMS]
    return float(accountant.get_epsilon(delta=1e-5))


def test_epsilon_is_recomputed_from_the_ledger(copy: Path, signer: Path) -> None:
    epsilon = _opacus_epsilon()
    assert 7.33 < epsilon < 8.5  # opacus's golden value is 7.329 for the second mechanism alone
    _resign_as_private(copy, signer, epsilon=epsilon)
    assert verify_run(copy, public_key=_public(signer)).passed
    # A signed, self-consistent report whose ε is 1% off the ledger still fails.
    _resign_as_private(copy, signer, epsilon=epsilon * 0.99)
    verification = verify_run(copy, public_key=_public(signer))
    assert _failed(verification) == {"privacy ledger ε"}
    assert "ledger gives" in verification.failures[0].detail


def test_a_private_report_without_a_recomputable_ledger_fails(copy: Path, signer: Path) -> None:
    _resign_as_private(copy, signer, epsilon=7.5)
    (copy / "report.json").write_text(
        (copy / "report.json").read_text().replace('"steps": 2250', '"steps": "many"')
    )
    sign_run_folder(copy, SigningKey(load_private_key(signer), signer, "--key"))
    failed = _failed(verify_run(copy, public_key=_public(signer)))
    assert "report schema" in failed and "privacy ledger ε" in failed
