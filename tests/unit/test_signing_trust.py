"""The trust anchor of `verify`: only keys and key ids the user names are trusted."""

from pathlib import Path

import pytest

from tdd_priv.signing import (
    TRUSTED_KEYS_ENV,
    SigningKeyError,
    TrustAnchor,
    generate_key_pair,
    key_id,
    parse_key_id,
    resolve_trust_anchor,
)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    """Three key pairs in tmp_path/keys: name -> key id."""
    folder = tmp_path / "keys"
    folder.mkdir()
    return {name: key_id(generate_key_pair(folder / name)) for name in ("alice", "bob", "carol")}


def test_key_ids_are_full_or_a_prefix_of_at_least_16_hex_characters(keys: dict[str, str]) -> None:
    full = keys["alice"]
    assert parse_key_id(full) == full
    assert parse_key_id(full.upper()) == full
    assert parse_key_id(f" {full[:16]}… ") == full[:16]  # as `verify` prints it
    assert parse_key_id(full[:20] + "...") == full[:20]
    for bad in (full[:15], full + "0", "g" * 16, "", "sha256:" + full):
        with pytest.raises(SigningKeyError, match="first 16 or more"):
            parse_key_id(bad)


def test_named_keys_keyrings_and_pins_make_the_anchor(tmp_path: Path, keys: dict[str, str]) -> None:
    folder = tmp_path / "keys"
    ring = tmp_path / "ring"
    ring.mkdir()
    for name in ("bob", "carol"):
        (ring / f"{name}.pub").write_bytes((folder / f"{name}.pub").read_bytes())
    (ring / "README.txt").write_text("only *.pub files are keys")
    anchor = resolve_trust_anchor(
        keys=[folder / "alice.pub", folder / "bob.pub"], keyrings=[ring], key_ids=[keys["carol"]]
    )
    assert [key.key_id for key in anchor.keys] == [keys["alice"], keys["bob"], keys["carol"]]
    assert anchor.keys[1].source == f"--key {folder / 'bob.pub'}"  # bob's first naming is kept
    assert anchor.pinned_ids == (keys["carol"],)
    assert not anchor.empty
    assert anchor.pin_for(keys["carol"]) == keys["carol"]
    assert anchor.pin_for(keys["alice"]) is None
    assert resolve_trust_anchor(key_ids=[keys["bob"][:16]]).pin_for(keys["bob"]) == keys["bob"][:16]


def test_nothing_named_is_an_empty_anchor(tmp_path: Path) -> None:
    assert resolve_trust_anchor().empty
    assert resolve_trust_anchor(environ={}).empty
    assert resolve_trust_anchor(environ={TRUSTED_KEYS_ENV: ""}).empty
    assert TrustAnchor().describe() == "no trusted key"


def test_the_environment_names_a_key_or_keyring_only_when_the_command_line_does_not(
    tmp_path: Path, keys: dict[str, str]
) -> None:
    folder = tmp_path / "keys"
    by_file = resolve_trust_anchor(environ={TRUSTED_KEYS_ENV: str(folder / "alice.pub")})
    assert [key.key_id for key in by_file.keys] == [keys["alice"]]
    assert TRUSTED_KEYS_ENV in by_file.keys[0].source
    ring = tmp_path / "ring"
    ring.mkdir()
    (ring / "bob.pub").write_bytes((folder / "bob.pub").read_bytes())
    by_ring = resolve_trust_anchor(environ={TRUSTED_KEYS_ENV: str(ring)})
    assert [key.key_id for key in by_ring.keys] == [keys["bob"]]
    overridden = resolve_trust_anchor(
        keys=[folder / "carol.pub"], environ={TRUSTED_KEYS_ENV: str(ring)}
    )
    assert [key.key_id for key in overridden.keys] == [keys["carol"]]
    with pytest.raises(SigningKeyError, match=f"{TRUSTED_KEYS_ENV} names .*does not exist"):
        resolve_trust_anchor(environ={TRUSTED_KEYS_ENV: str(tmp_path / "nowhere")})


def test_an_unusable_key_or_keyring_is_an_error_not_an_empty_anchor(
    tmp_path: Path, keys: dict[str, str]
) -> None:
    folder = tmp_path / "keys"
    with pytest.raises(SigningKeyError, match="not found"):
        resolve_trust_anchor(keys=[tmp_path / "missing.pub"])
    with pytest.raises(SigningKeyError, match="is a private key"):
        resolve_trust_anchor(keys=[folder / "alice"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SigningKeyError, match=r"holds no \*\.pub file"):
        resolve_trust_anchor(keyrings=[tmp_path / "empty"])
    with pytest.raises(SigningKeyError, match="is not a folder"):
        resolve_trust_anchor(keyrings=[folder / "alice.pub"])
    (folder / "junk.pub").write_text("not a key")
    with pytest.raises(SigningKeyError, match=r"junk\.pub is not a PEM public key"):
        resolve_trust_anchor(keyrings=[folder])
