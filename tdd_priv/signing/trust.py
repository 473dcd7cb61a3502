"""The trust anchor of a verification: which public keys the reviewer accepts as the signer.

A signature proves who signed only relative to a key obtained apart from the signed folder: a
folder can ship any key, and whoever edits it can re-sign it with a key of their own. So the
keys a verification trusts are the ones the user names: public key files, keyring folders of
`*.pub` files (any of them may have signed), and pinned key ids (full, or a prefix of at least
`MIN_KEY_ID_PREFIX` hex characters) that the key shipped in the folder must match to be used.
When the command line names none, `$TDD_PRIV_TRUSTED_KEYS` may name a key file or a keyring.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tdd_priv.signing.keys import SigningKeyError, key_id, load_public_key

__all__ = [
    "MIN_KEY_ID_PREFIX",
    "TRUSTED_KEYS_ENV",
    "TrustAnchor",
    "TrustedKey",
    "parse_key_id",
    "resolve_trust_anchor",
]

TRUSTED_KEYS_ENV = "TDD_PRIV_TRUSTED_KEYS"
# 16 hex characters are 64 bits: matching them takes a forger about 2**64 key generations.
MIN_KEY_ID_PREFIX = 16
_KEY_ID_LENGTH = 64
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True)
class TrustedKey:
    """A public key the user named, its key id (64 hex) and where it was named (for messages)."""

    public_key: Ed25519PublicKey
    key_id: str
    source: str


@dataclass(frozen=True)
class TrustAnchor:
    """What a verification may accept as the signer: `keys` the user named, and `pinned_ids`
    (64 hex characters, or a prefix of at least 16) that the folder's shipped key must match."""

    keys: tuple[TrustedKey, ...] = ()
    pinned_ids: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the user named no key and no key id: only the shipped key is left."""
        return not self.keys and not self.pinned_ids

    def pin_for(self, identifier: str) -> str | None:
        """The pinned id that `identifier` (a full key id) matches, if any."""
        return next((pin for pin in self.pinned_ids if identifier.startswith(pin)), None)

    def describe(self) -> str:
        """The anchor in words, e.g. "the named keys 1a2b…, 3c4d… and the pinned key id 5e6f…"."""
        parts = []
        if self.keys:
            ids = ", ".join(f"{key.key_id[:16]}…" for key in self.keys[:5])
            more = f" and {len(self.keys) - 5} more" if len(self.keys) > 5 else ""
            parts.append(f"the named key{'s' if len(self.keys) > 1 else ''} {ids}{more}")
        if self.pinned_ids:
            pins = ", ".join(f"{pin[:16]}…" for pin in self.pinned_ids)
            parts.append(f"the pinned key id{'s' if len(self.pinned_ids) > 1 else ''} {pins}")
        return " and ".join(parts) or "no trusted key"


def parse_key_id(text: str) -> str:
    """A key id or prefix as the user typed it -> lowercase hex (16 to 64 characters).

    A trailing "…" or "..." (as `verify` and `keys generate` abbreviate ids) is ignored.
    """
    cleaned = text.strip().lower().removesuffix("…").removesuffix("...")
    if not _HEX.match(cleaned) or not MIN_KEY_ID_PREFIX <= len(cleaned) <= _KEY_ID_LENGTH:
        raise SigningKeyError(
            f"--key-id {text!r} is not a key id: give the signer's key id, {_KEY_ID_LENGTH} hex "
            f"characters or its first {MIN_KEY_ID_PREFIX} or more (`tdd-priv keys id PUBKEY` "
            "prints it)."
        )
    return cleaned


def _key_file(path: Path, source: str) -> TrustedKey:
    public_key = load_public_key(path)
    return TrustedKey(public_key, key_id(public_key), source)


def _keyring(folder: Path, source: str) -> list[TrustedKey]:
    if not folder.is_dir():
        raise SigningKeyError(
            f"keyring {folder} ({source}) is not a folder; give a folder of trusted *.pub keys."
        )
    files = sorted(folder.glob("*.pub"))
    if not files:
        raise SigningKeyError(
            f"keyring {folder} ({source}) holds no *.pub file; copy the public keys you trust "
            "into it (e.g. the signer's signing-key.pub, obtained from the signer)."
        )
    return [_key_file(path, f"{source} {folder}") for path in files]


def _unique(keys: Iterable[TrustedKey]) -> tuple[TrustedKey, ...]:
    """One entry per key id, the first place it was named kept."""
    seen: dict[str, TrustedKey] = {}
    for key in keys:
        seen.setdefault(key.key_id, key)
    return tuple(seen.values())


def resolve_trust_anchor(
    *,
    keys: Iterable[Path] = (),
    keyrings: Iterable[Path] = (),
    key_ids: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> TrustAnchor:
    """The anchor named by the user: `keys` (PEM public key files, --key), `keyrings` (folders
    of *.pub files, --keyring) and `key_ids` (--key-id); when all three are empty,
    `environ[TRUSTED_KEYS_ENV]` (a key file or a keyring folder); else an empty anchor.

    Raises SigningKeyError when a named key, keyring or key id cannot be used: a verification
    against the wrong anchor would be worse than none.
    """
    keys, keyrings, key_ids = list(keys), list(keyrings), list(key_ids)
    named: list[TrustedKey] = [_key_file(path, f"--key {path}") for path in keys]
    for folder in keyrings:
        named.extend(_keyring(folder, "--keyring"))
    pins = tuple(dict.fromkeys(parse_key_id(text) for text in key_ids))
    if named or pins:
        return TrustAnchor(_unique(named), pins)
    from_env = (environ or {}).get(TRUSTED_KEYS_ENV, "").strip()
    if not from_env:
        return TrustAnchor()
    path = Path(from_env).expanduser()
    if path.is_dir():
        return TrustAnchor(_unique(_keyring(path, f"${TRUSTED_KEYS_ENV}")))
    if not path.exists():
        raise SigningKeyError(
            f"${TRUSTED_KEYS_ENV} names {path}, which does not exist; set it to a trusted public "
            "key file or a folder of *.pub keys, or unset it."
        )
    return TrustAnchor((_key_file(path, f"${TRUSTED_KEYS_ENV} {path}"),))
