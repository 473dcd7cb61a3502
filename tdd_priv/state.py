"""The user's tdd-priv state folder: secrets and records that stay on this machine.

`state_dir()` is $TDD_PRIV_STATE, else $XDG_STATE_HOME/tdd-priv, else ~/.local/state/tdd-priv.
It holds the per-user secret that keys digests of private data (`keyed_digest`) and the privacy
budget ledgers (`tdd_priv.privacy.budget`). Nothing in it is ever released.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

__all__ = ["STATE_ENV", "keyed_digest", "secret_key", "state_dir"]

STATE_ENV = "TDD_PRIV_STATE"
_SECRET_FILE = "secret-key"
_SECRET_BYTES = 32


def state_dir() -> Path:
    """The state folder (not created here)."""
    explicit = os.environ.get(STATE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tdd-priv"


def _create_secret(path: Path) -> None:
    """Write a fresh secret to `path` (mode 0600) atomically, unless another process did."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(handle, 0o600)
        os.write(handle, secrets.token_bytes(_SECRET_BYTES))
        os.fsync(handle)
        os.close(handle)
        handle = -1
        with contextlib.suppress(FileExistsError):  # another run made it first: keep that one
            os.link(temporary, path)  # never replaces an existing secret
    finally:
        if handle != -1:
            os.close(handle)
        os.unlink(temporary)


def secret_key() -> bytes:
    """The per-user secret (32 random bytes), created on first use."""
    path = state_dir() / _SECRET_FILE
    if not path.is_file():
        _create_secret(path)
    secret = path.read_bytes()
    if len(secret) != _SECRET_BYTES:
        raise OSError(
            f"{path} should hold {_SECRET_BYTES} bytes but holds {len(secret)}; it is damaged. "
            "Move it away (digests made with it can then no longer be matched) and rerun."
        )
    return secret


def keyed_digest(purpose: str, value: str) -> str:
    """HMAC-SHA256 (hex) of `value` under the per-user secret, separated by `purpose`.

    Without the secret it reveals nothing about `value`; with it, the owner can tell whether
    two digests come from the same value (the same dataset, the same noise seed).
    """
    message = f"{purpose}\x00{value}".encode()
    return hmac.new(secret_key(), message, hashlib.sha256).hexdigest()
