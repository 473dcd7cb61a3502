"""DSSE (Dead Simple Signing Envelope) v1 with Ed25519, as in the DSSE specification.

The signature covers PAE(payloadType, payload) =
"DSSEv1" SP LEN(payloadType) SP payloadType SP LEN(payload) SP payload, where LEN is the byte
length in ASCII decimal and SP one space. The JSON envelope is
{"payload": base64(payload), "payloadType": ..., "signatures": [{"keyid": ..., "sig": base64}]}.
The key id is an unauthenticated hint: verification tries the given public key against every
signature and never trusts `keyid` for the decision.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tdd_priv.signing.keys import key_id

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "EnvelopeError",
    "SignatureError",
    "open_envelope",
    "pae",
    "sign_envelope",
    "unverified_payload",
]

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class EnvelopeError(ValueError):
    """The envelope is not a well-formed DSSE JSON envelope."""


class SignatureError(ValueError):
    """No signature in the envelope verifies with the given public key."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding of (payloadType, payload): the bytes signed."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def sign_envelope(
    payload: bytes, *, payload_type: str, private_key: Ed25519PrivateKey
) -> dict[str, Any]:
    """A DSSE JSON envelope over `payload` with one Ed25519 signature (keyid = key id)."""
    signature = private_key.sign(pae(payload_type, payload))
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [
            {
                "keyid": key_id(private_key.public_key()),
                "sig": base64.b64encode(signature).decode("ascii"),
            }
        ],
    }


def _b64decode(value: Any, field: str) -> bytes:
    """Standard or URL-safe base64, padded or not (the spec allows either encoding)."""
    if not isinstance(value, str):
        raise EnvelopeError(f"envelope field {field} must be a base64 string")
    padded = value + "=" * (-len(value) % 4)
    try:
        if "-" in value or "_" in value:
            return base64.urlsafe_b64decode(padded.encode("ascii"))
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as error:
        raise EnvelopeError(f"envelope field {field} is not valid base64: {error}") from error


def unverified_payload(envelope: Mapping[str, Any]) -> bytes:
    """The envelope's payload bytes, without checking any signature (for diagnostics only)."""
    if "payload" not in envelope:
        raise EnvelopeError("envelope has no 'payload' field")
    return _b64decode(envelope["payload"], "payload")


def open_envelope(envelope: Mapping[str, Any], *, public_key: Ed25519PublicKey) -> bytes:
    """Return the payload if any signature of `envelope` verifies with `public_key`.

    Raises EnvelopeError for a malformed envelope and SignatureError when no signature verifies.
    """
    for field in ("payload", "payloadType", "signatures"):
        if field not in envelope:
            raise EnvelopeError(f"envelope has no {field!r} field")
    payload_type = envelope["payloadType"]
    if not isinstance(payload_type, str):
        raise EnvelopeError("envelope field payloadType must be a string")
    signatures = envelope["signatures"]
    if not isinstance(signatures, list) or not signatures:
        raise EnvelopeError("envelope has no signatures")
    payload = _b64decode(envelope["payload"], "payload")
    message = pae(payload_type, payload)
    for number, entry in enumerate(signatures):
        if not isinstance(entry, Mapping) or "sig" not in entry:
            raise EnvelopeError(f"signature {number} has no 'sig' field")
        try:
            public_key.verify(_b64decode(entry["sig"], f"signatures[{number}].sig"), message)
        except InvalidSignature:
            continue
        return payload
    raise SignatureError(
        f"none of the envelope's {len(signatures)} signature(s) verifies with the key "
        f"{key_id(public_key)[:16]}…"
    )
