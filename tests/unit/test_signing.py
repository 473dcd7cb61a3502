"""Ed25519 key files, DSSE envelopes (PAE as in the spec) and in-toto Statements."""

import base64
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tdd_priv.cli import main
from tdd_priv.signing import (
    IN_TOTO_PAYLOAD_TYPE,
    EnvelopeError,
    SignatureError,
    SigningKeyError,
    StatementError,
    check_signing_key,
    default_key_path,
    generate_key_pair,
    key_id,
    load_private_key,
    load_public_key,
    make_statement,
    open_envelope,
    pae,
    parse_statement,
    resolve_signing_key,
    sign_envelope,
)


def test_pae_matches_the_dsse_specification_example() -> None:
    # The worked example of the DSSE protocol document.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    # Lengths count bytes, not characters.
    assert pae("t/é", "ε".encode()) == b"DSSEv1 4 t/\xc3\xa9 2 \xce\xb5"


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """umask 000: files are created readable and writable by everyone unless code says otherwise."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_keys_round_trip_through_files_with_a_private_mode(tmp_path: Path) -> None:
    path = tmp_path / "signer"
    public_key = generate_key_pair(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "signer.pub").is_file()
    private_key = load_private_key(path)
    assert private_key.public_key() == public_key == load_public_key(tmp_path / "signer.pub")
    assert key_id(public_key) == hashlib.sha256(public_key.public_bytes_raw()).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signer", "signer.pub"]


@pytest.mark.usefixtures("permissive_umask")
def test_generated_and_per_user_keys_are_mode_0600_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "generate", str(tmp_path / "cli")]) == 0
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    created = resolve_signing_key(None)
    assert created.created
    for private in (tmp_path / "cli", created.path):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
        assert stat.S_IMODE(private.with_name(private.name + ".pub").stat().st_mode) == 0o644
        assert load_private_key(private)  # and they load, which a 0644 private key would not
    capsys.readouterr()


@pytest.mark.parametrize(
    "mode", [0o640, 0o604, 0o620, 0o602, 0o610, 0o601, 0o644, 0o666], ids=lambda mode: f"{mode:04o}"
)
def test_a_private_key_others_may_read_or_write_is_refused_with_the_fix(
    mode: int, tmp_path: Path
) -> None:
    path = tmp_path / "signer"
    generate_key_pair(path)
    path.chmod(mode)
    with pytest.raises(SigningKeyError) as refused:
        load_private_key(path)
    message = str(refused.value)
    assert f"mode {mode:04o}" in message and f"chmod 600 {path}" in message
    path.chmod(0o600)
    assert load_private_key(path)


def test_an_owner_only_private_key_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "signer"
    generate_key_pair(path)
    for mode in (0o600, 0o400, 0o700):
        path.chmod(mode)
        assert load_private_key(path)


def test_a_shared_private_key_is_refused_from_option_environment_and_user_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    default = default_key_path()
    default.parent.mkdir(parents=True)
    for path in (tmp_path / "option", tmp_path / "env", default):
        generate_key_pair(path)
        path.chmod(0o644)
    with pytest.raises(SigningKeyError, match=r"chmod 600 .*option"):
        check_signing_key(tmp_path / "option")
    with pytest.raises(SigningKeyError, match=r"chmod 600 .*option"):
        resolve_signing_key(tmp_path / "option")
    monkeypatch.setenv("TDD_PRIV_SIGNING_KEY", str(tmp_path / "env"))
    with pytest.raises(SigningKeyError, match=r"chmod 600 .*env"):
        check_signing_key(None)
    with pytest.raises(SigningKeyError, match=r"chmod 600 .*env"):
        resolve_signing_key(None)
    monkeypatch.delenv("TDD_PRIV_SIGNING_KEY")
    with pytest.raises(SigningKeyError, match=re.escape(f"chmod 600 {default}")):
        check_signing_key(None)  # the existing per-user key is checked before a run starts
    with pytest.raises(SigningKeyError, match=re.escape(f"chmod 600 {default}")):
        resolve_signing_key(None)
    default.chmod(0o600)
    check_signing_key(None)
    assert resolve_signing_key(None).path == default


def test_a_run_with_a_shared_private_key_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generate_key_pair(tmp_path / "signer")
    (tmp_path / "signer").chmod(0o640)
    out = tmp_path / "runs" / "run"
    code = main(["run", "--data", "demo", "--no-dp", "--orchestrator", "local",
                 "--key", str(tmp_path / "signer"), "--out", str(out)])  # fmt: skip
    assert code == 2
    error = capsys.readouterr().err
    assert "mode 0640" in error and f"chmod 600 {tmp_path / 'signer'}" in error
    assert len(error.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_cli_prints_the_key_id_of_a_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public_key = generate_key_pair(tmp_path / "k")
    assert main(["keys", "id", str(tmp_path / "k.pub")]) == 0
    assert capsys.readouterr().out.strip() == key_id(public_key)
    assert main(["keys", "id", str(tmp_path / "k")]) == 2
    assert "is a private key" in capsys.readouterr().err


def test_generating_never_overwrites_a_key(tmp_path: Path) -> None:
    path = tmp_path / "signer"
    generate_key_pair(path)
    before = path.read_bytes()
    with pytest.raises(SigningKeyError, match="refusing to overwrite"):
        generate_key_pair(path)
    assert path.read_bytes() == before
    (tmp_path / "other.pub").write_text("x")
    with pytest.raises(SigningKeyError, match=r"other\.pub already exists"):
        generate_key_pair(tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_cli_generates_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "k"
    assert main(["keys", "generate", str(path)]) == 0
    printed = capsys.readouterr().out
    assert key_id(load_public_key(tmp_path / "k.pub")) in printed
    assert main(["keys", "generate", str(path)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_key_files_of_the_wrong_kind_fail_with_a_fix(tmp_path: Path) -> None:
    generate_key_pair(tmp_path / "k")
    with pytest.raises(SigningKeyError, match=r"pass the private key FILE, not FILE\.pub"):
        load_private_key(tmp_path / "k.pub")
    with pytest.raises(SigningKeyError, match="is a private key"):
        load_public_key(tmp_path / "k")
    with pytest.raises(SigningKeyError, match="tdd-priv keys generate"):
        load_private_key(tmp_path / "missing")
    (tmp_path / "junk").write_text("hello")
    with pytest.raises(SigningKeyError, match="not a PEM private key"):
        load_private_key(tmp_path / "junk")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    (tmp_path / "rsa").write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(SigningKeyError, match="Ed25519 keys only"):
        load_private_key(tmp_path / "rsa")


def test_the_signing_key_comes_from_option_then_environment_then_user_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert default_key_path() == tmp_path / "config" / "tdd-priv" / "signing-key"
    generate_key_pair(tmp_path / "option")
    generate_key_pair(tmp_path / "env")
    monkeypatch.setenv("TDD_PRIV_SIGNING_KEY", str(tmp_path / "env"))
    assert resolve_signing_key(tmp_path / "option").path == tmp_path / "option"
    chosen = resolve_signing_key(None)
    assert (chosen.path, chosen.origin) == (tmp_path / "env", "TDD_PRIV_SIGNING_KEY")
    monkeypatch.delenv("TDD_PRIV_SIGNING_KEY")

    first = resolve_signing_key(None)
    assert first.created and first.path == default_key_path()
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    told = capsys.readouterr().err
    assert str(default_key_path()) in told and "created" in told
    again = resolve_signing_key(None)
    assert not again.created and again.key_id == first.key_id
    assert capsys.readouterr().err == ""  # said once, on creation only


def test_a_named_key_that_cannot_be_used_fails_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SigningKeyError, match="not found"):
        check_signing_key(tmp_path / "nope")
    monkeypatch.setenv("TDD_PRIV_SIGNING_KEY", str(tmp_path / "nope-either"))
    with pytest.raises(SigningKeyError, match="nope-either"):
        check_signing_key(None)


def _envelope(payload: bytes = b'{"x": 1}') -> tuple[dict, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    return sign_envelope(payload, payload_type=IN_TOTO_PAYLOAD_TYPE, private_key=key), key


def test_an_envelope_opens_with_its_key_only() -> None:
    envelope, key = _envelope()
    assert set(envelope) == {"payload", "payloadType", "signatures"}
    assert envelope["signatures"][0]["keyid"] == key_id(key.public_key())
    assert open_envelope(envelope, public_key=key.public_key()) == b'{"x": 1}'
    with pytest.raises(SignatureError):
        open_envelope(envelope, public_key=Ed25519PrivateKey.generate().public_key())


def test_any_change_to_the_envelope_breaks_the_signature() -> None:
    envelope, key = _envelope()
    changed_payload = {**envelope, "payload": base64.b64encode(b'{"x": 2}').decode()}
    changed_type = {**envelope, "payloadType": "application/json"}
    signature = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    signature[0] ^= 1
    changed_sig = {
        **envelope,
        "signatures": [{"keyid": "", "sig": base64.b64encode(signature).decode()}],
    }
    for tampered in (changed_payload, changed_type, changed_sig):
        with pytest.raises(SignatureError):
            open_envelope(tampered, public_key=key.public_key())


def test_keyid_is_only_a_hint_and_malformed_envelopes_are_errors() -> None:
    envelope, key = _envelope()
    envelope["signatures"][0]["keyid"] = "someone else"
    assert open_envelope(envelope, public_key=key.public_key())
    urlsafe = {**envelope, "payload": base64.urlsafe_b64encode(b'{"x": 1}').decode().rstrip("=")}
    assert open_envelope(urlsafe, public_key=key.public_key()) == b'{"x": 1}'
    for broken in (
        {**envelope, "payload": "%%%"},
        {**envelope, "signatures": []},
        {"payload": envelope["payload"]},
    ):
        with pytest.raises(EnvelopeError):
            open_envelope(broken, public_key=key.public_key())


def test_statements_round_trip_and_bad_ones_are_refused() -> None:
    statement = make_statement(
        {"b.txt": "1" * 64, "a.txt": "2" * 64}, predicate_type="https://x/v1", predicate={"k": 1}
    )
    assert [s["name"] for s in statement["subject"]] == ["a.txt", "b.txt"]
    parsed = parse_statement(json.dumps(statement).encode())
    assert parsed.subjects == {"a.txt": "2" * 64, "b.txt": "1" * 64}
    assert (parsed.predicate_type, parsed.predicate) == ("https://x/v1", {"k": 1})
    for change in (
        {"_type": "https://in-toto.io/Statement/v0.1"},
        {"subject": []},
        {"subject": [{"name": "a", "digest": {"sha1": "00"}}]},
        {"subject": [{"name": "a", "digest": {"sha256": "1" * 64}}] * 2},
        {"predicateType": ""},
    ):
        with pytest.raises(StatementError):
            parse_statement(json.dumps({**statement, **change}).encode())


def test_a_run_with_an_unusable_key_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(["run", "--data", "demo", "--no-dp", "--orchestrator", "local",
                 "--key", str(tmp_path / "missing"), "--out", str(out)])  # fmt: skip
    assert code == 2
    assert "tdd-priv keys generate" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
