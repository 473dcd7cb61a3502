"""Ed25519 signing keys: generation, files, the per-user default key and key ids.

Private keys are PKCS#8 PEM files (unencrypted, mode 0600); public keys are SubjectPublicKeyInfo
PEM files beside them, named `FILE.pub`. As with ssh, a private key file that its group or other
users may read or write is refused: it is the only thing between a forger and your signature.
A key id is the SHA-256 (hex) of the 32 raw bytes of the public key, so anyone can recompute it
from the public key alone.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tdd_priv.errors import TddPrivError

__all__ = [
    "SIGNING_KEY_ENV",
    "SigningKey",
    "SigningKeyError",
    "check_signing_key",
    "default_key_path",
    "generate_key_pair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "public_key_pem",
    "resolve_signing_key",
]

SIGNING_KEY_ENV = "TDD_PRIV_SIGNING_KEY"
KeyOrigin = Literal["--key", "TDD_PRIV_SIGNING_KEY", "per-user default"]


class SigningKeyError(TddPrivError, ValueError):
    """A key file is missing, unreadable, of the wrong kind, or would be overwritten."""


@dataclass(frozen=True)
class SigningKey:
    """A loaded private key, where it came from, and whether this call created it."""

    private_key: Ed25519PrivateKey
    path: Path
    origin: KeyOrigin
    created: bool = False

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)


def key_id(public_key: Ed25519PublicKey) -> str:
    """SHA-256 (64 hex characters) of the raw 32-byte public key."""
    return hashlib.sha256(public_key.public_bytes_raw()).hexdigest()


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _private_key_pem(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_new(path: Path, content: bytes, *, mode: int) -> None:
    """Write `content` to `path` with `mode`, atomically, never replacing an existing file.

    The bytes go to a temporary file in the same folder first, which is then hard-linked to
    `path` (a link fails if `path` exists), so no reader ever sees a half-written key.
    """
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(handle, mode)
        os.write(handle, content)
        os.fsync(handle)
        os.close(handle)
        handle = -1
        os.link(temporary, path)
    finally:
        if handle != -1:
            os.close(handle)
        os.unlink(temporary)


def generate_key_pair(path: Path) -> Ed25519PublicKey:
    """Write a new private key to `path` (mode 0600) and its public key to `path` + ".pub".

    Refuses to replace either file, so that an existing key is never lost.
    """
    public_path = path.with_name(path.name + ".pub")
    for existing in (path, public_path):
        if existing.exists():
            raise SigningKeyError(
                f"{existing} already exists; refusing to overwrite a key. Choose another FILE "
                "or move the old key away first."
            )
    if not path.parent.is_dir():
        raise SigningKeyError(f"folder {path.parent} does not exist; create it first.")
    private_key = Ed25519PrivateKey.generate()
    try:
        _write_new(path, _private_key_pem(private_key), mode=0o600)
    except FileExistsError as error:
        raise SigningKeyError(f"{path} appeared while writing it; nothing overwritten.") from error
    _write_new(public_path, public_key_pem(private_key.public_key()), mode=0o644)
    return private_key.public_key()


@dataclass(frozen=True)
class _KeyFile:
    data: bytes
    mode: int  # permission bits of the file that was read (not of a later one at the same path)


def _read_pem(path: Path, what: str) -> _KeyFile:
    if not path.is_file():
        raise SigningKeyError(
            f"{what} file not found: {path}. Create a key pair with `tdd-priv keys generate FILE`."
        )
    try:
        with path.open("rb") as handle:
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            return _KeyFile(handle.read(), mode)
    except OSError as error:
        raise SigningKeyError(f"cannot read {what} file {path}: {error}") from error


def _refuse_shared_private_key(path: Path, mode: int) -> None:
    """Like ssh: a private key that group or others may read or write is no longer private."""
    if os.name == "posix" and mode & 0o077:  # other systems have no such mode bits
        raise SigningKeyError(
            f"{path} is a private key with mode {mode:04o}: its group or other users may read or "
            "write it, so any of them could sign as you. Fix: chmod 600 "
            f"{path} (and, if others may have copied it, make a new key with "
            "`tdd-priv keys generate FILE`)."
        )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an unencrypted Ed25519 private key (PEM, PKCS#8) from `path`, which must be a
    file that only its owner may read or write (mode 0600 or stricter)."""
    key_file = _read_pem(path, "signing key")
    data = key_file.data
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as error:  # encrypted with a passphrase
        raise SigningKeyError(
            f"{path} is encrypted with a passphrase; tdd-priv reads unencrypted keys only "
            "(protect the file with mode 0600 instead)."
        ) from error
    except ValueError as error:
        hint = (
            " It looks like a public key: pass the private key FILE, not FILE.pub."
            if (b"PUBLIC KEY" in data)
            else ""
        )
        raise SigningKeyError(f"{path} is not a PEM private key.{hint}") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"{path} holds a {type(key).__name__}; tdd-priv signs with Ed25519 keys only. "
            "Create one with `tdd-priv keys generate FILE`."
        )
    _refuse_shared_private_key(path, key_file.mode)
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key (PEM, SubjectPublicKeyInfo) from `path`."""
    data = _read_pem(path, "public key").data
    if b"PRIVATE KEY" in data:
        raise SigningKeyError(
            f"{path} is a private key; verify with the public key (FILE.pub) and keep the "
            "private key to yourself."
        )
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as error:
        raise SigningKeyError(f"{path} is not a PEM public key.") from error
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key.")
    return key


def default_key_path() -> Path:
    """The per-user signing key: $XDG_CONFIG_HOME/tdd-priv/signing-key (~/.config if unset)."""
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "tdd-priv" / "signing-key"


def _explicit_key(explicit: Path | None) -> tuple[Path, KeyOrigin] | None:
    if explicit is not None:
        return explicit, "--key"
    from_env = os.environ.get(SIGNING_KEY_ENV)
    if from_env:
        return Path(from_env), "TDD_PRIV_SIGNING_KEY"
    return None


def check_signing_key(explicit: Path | None) -> None:
    """Fail fast (before a run does any work) when the key the run would sign with cannot be
    used: a named one (--key, $TDD_PRIV_SIGNING_KEY), else the per-user key if it exists (one
    that does not exist yet is created when the run signs)."""
    named = _explicit_key(explicit)
    if named is not None:
        load_private_key(named[0])
    elif default_key_path().exists():
        load_private_key(default_key_path())


def resolve_signing_key(explicit: Path | None) -> SigningKey:
    """The key a run signs with: `explicit` (--key), else $TDD_PRIV_SIGNING_KEY, else the
    per-user default key, created on first use (and said so on stderr)."""
    named = _explicit_key(explicit)
    if named is not None:
        path, origin = named
        return SigningKey(load_private_key(path), path, origin)
    path = default_key_path()
    if path.exists():
        return SigningKey(load_private_key(path), path, "per-user default")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        public_key = generate_key_pair(path)
    except SigningKeyError:
        if not path.exists():  # not a lost race with another run creating the same key
            raise
        return SigningKey(load_private_key(path), path, "per-user default")
    print(
        f"tdd-priv: created your signing key {path} (public key {path}.pub, key id "
        f"{key_id(public_key)[:16]}…); runs are signed with it unless --key or "
        f"{SIGNING_KEY_ENV} names another.",
        file=sys.stderr,
    )
    return SigningKey(load_private_key(path), path, "per-user default", created=True)
