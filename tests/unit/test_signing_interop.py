"""Our envelopes are standard DSSE: securesystemslib verifies ours and we verify its."""

import json

import pytest

pytest.importorskip("securesystemslib")

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from tdd_priv.signing import (
    IN_TOTO_PAYLOAD_TYPE,
    STATEMENT_TYPE,
    key_id,
    make_statement,
    open_envelope,
    sign_envelope,
)


def _statement_payload() -> bytes:
    statement = make_statement(
        {"report.json": "a" * 64},
        predicate_type="https://tdd-priv.dev/report/v1",
        predicate={"epsilon": None},
    )
    return json.dumps(statement).encode()


def _sslib_key(key: Ed25519PrivateKey) -> SSlibKey:
    # DSSE key ids are agreed out of band; ours is the SHA-256 of the raw public key.
    return SSlibKey.from_crypto(key.public_key(), keyid=key_id(key.public_key()))


def test_securesystemslib_verifies_our_envelope() -> None:
    key = Ed25519PrivateKey.generate()
    ours = sign_envelope(_statement_payload(), payload_type=IN_TOTO_PAYLOAD_TYPE, private_key=key)
    envelope = Envelope.from_dict(json.loads(json.dumps(ours)))
    accepted = envelope.verify([_sslib_key(key)], threshold=1)
    assert list(accepted) == [key_id(key.public_key())]
    statement = json.loads(envelope.payload)
    assert statement["_type"] == STATEMENT_TYPE
    assert envelope.payload_type == "application/vnd.in-toto+json"
    assert statement["subject"][0] == {"name": "report.json", "digest": {"sha256": "a" * 64}}
    assert statement["predicateType"].startswith("https://")

    stranger = Ed25519PrivateKey.generate()
    impostor = SSlibKey.from_crypto(stranger.public_key(), keyid=key_id(key.public_key()))
    with pytest.raises(VerificationError):
        Envelope.from_dict(json.loads(json.dumps(ours))).verify([impostor], threshold=1)


def test_we_verify_an_envelope_signed_by_securesystemslib() -> None:
    key = Ed25519PrivateKey.generate()
    signer = CryptoSigner(key, _sslib_key(key))
    envelope = Envelope(_statement_payload(), IN_TOTO_PAYLOAD_TYPE, {})
    envelope.sign(signer)
    assert open_envelope(envelope.to_dict(), public_key=key.public_key()) == _statement_payload()
