"""Ed25519 keys, DSSE envelopes and in-toto Statements: the signature of a run folder, and the
trust anchor (the keys a reviewer names) that a verification checks it against.

Generic signing only; which files of a run are signed, and with what summary, is decided by
`tdd_priv.report.attest`, and checked by `tdd_priv.verify`.
"""

from tdd_priv.signing.dsse import (
    IN_TOTO_PAYLOAD_TYPE,
    EnvelopeError,
    SignatureError,
    open_envelope,
    pae,
    sign_envelope,
    unverified_payload,
)
from tdd_priv.signing.keys import (
    SIGNING_KEY_ENV,
    SigningKey,
    SigningKeyError,
    check_signing_key,
    default_key_path,
    generate_key_pair,
    key_id,
    load_private_key,
    load_public_key,
    public_key_pem,
    resolve_signing_key,
)
from tdd_priv.signing.statement import (
    STATEMENT_TYPE,
    Statement,
    StatementError,
    make_statement,
    parse_statement,
)
from tdd_priv.signing.trust import (
    MIN_KEY_ID_PREFIX,
    TRUSTED_KEYS_ENV,
    TrustAnchor,
    TrustedKey,
    parse_key_id,
    resolve_trust_anchor,
)

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "MIN_KEY_ID_PREFIX",
    "SIGNING_KEY_ENV",
    "STATEMENT_TYPE",
    "TRUSTED_KEYS_ENV",
    "EnvelopeError",
    "SignatureError",
    "SigningKey",
    "SigningKeyError",
    "Statement",
    "StatementError",
    "TrustAnchor",
    "TrustedKey",
    "check_signing_key",
    "default_key_path",
    "generate_key_pair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "make_statement",
    "open_envelope",
    "pae",
    "parse_key_id",
    "parse_statement",
    "public_key_pem",
    "resolve_signing_key",
    "resolve_trust_anchor",
    "sign_envelope",
    "unverified_payload",
]
