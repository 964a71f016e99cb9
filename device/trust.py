"""What a device trusts: its set of release-signing public keys and the newest index it has
seen, kept in its state folder, and the key rotations it learns from the channel.

State folder additions::

    STATE/keyring.json    {"trusted": {key_id: PEM}, "retired": [key_id, ...]}
    STATE/channel.json    {"index_version": N}: the newest signed index this device has seen

A rotation (``CHANNEL/keys.json``) is a list of envelopes, oldest first, each announcing a new
public key and signed by the key it replaces. A device that trusts the old key learns the new
one from it, trusts it, and retires the old one: a retired key is never trusted again, even
when a command line still names its file.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from device.files import write_atomically
from device.manifest import ManifestError, _text, echo, key_id, load_public_key, open_envelope

KEYRING_FILE = "keyring.json"
CHANNEL_STATE_FILE = "channel.json"
KEYS_FILE = "keys.json"  # in the channel's root
ROTATION_FORMAT = "shelfcast-key-rotation/1"
KEYS_FORMAT = "shelfcast-keys/1"
MAX_ROTATIONS = 64


class TrustError(ValueError):
    """A keyring or key file that cannot be used, with the reason."""


def read_keyring(state: Path) -> dict:
    path = Path(state) / KEYRING_FILE
    if not path.exists():
        return {"trusted": {}, "retired": []}
    try:
        keyring = json.loads(path.read_text())
        trusted, retired = dict(keyring["trusted"]), list(keyring["retired"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrustError(f"{path}: not a keyring ({exc}); install the release key again with "
                         "`shelfcast-device trust`") from exc
    return {"trusted": trusted, "retired": retired}


def _write_keyring(state: Path, keyring: dict) -> None:
    write_atomically(Path(state) / KEYRING_FILE, json.dumps(keyring, indent=1).encode())


def _pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def trust_key(state: Path, pem: bytes) -> str:
    """Add a public key to the device's trusted set (the first one is installed this way);
    return its key id. A key retired by a rotation is refused."""
    try:
        key = load_public_key(pem)
    except ManifestError as exc:
        raise TrustError(f"public key: {exc}") from exc
    keyring = read_keyring(state)
    kid = key_id(key)
    if kid in keyring["retired"]:
        raise TrustError(f"key {kid} was retired by a key rotation this device verified; it is "
                         "not trusted again")
    keyring["trusted"][kid] = _pem(key)
    _write_keyring(state, keyring)
    return kid


def trusted_keys(state: Path, extra_pem: bytes | None = None) -> list[Ed25519PublicKey]:
    """The keys this device trusts: its keyring, and `extra_pem` (a `--public-key` file, for
    this run only) unless a rotation retired it."""
    keyring = read_keyring(state)
    keys = {kid: load_public_key(pem.encode()) for kid, pem in keyring["trusted"].items()}
    if extra_pem is not None:
        try:
            extra = load_public_key(extra_pem)
        except ManifestError as exc:
            raise TrustError(f"public key: {exc}") from exc
        if key_id(extra) not in keyring["retired"]:
            keys.setdefault(key_id(extra), extra)
    if not keys:
        raise TrustError(f"{state}: no trusted release key; install one with `shelfcast-device "
                         "trust --state DIR --public-key release-signing.pub.pem` (or pass "
                         "--public-key)")
    return list(keys.values())


def learn_rotations(state: Path, keys_file: bytes, trusted: list[Ed25519PublicKey]
                    ) -> tuple[list[Ed25519PublicKey], list[str]]:
    """Walk the channel's rotations, oldest first: each one signed by a key trusted so far
    makes its new key trusted and retires the key that signed it. Saves what was learned in
    the keyring; returns the trusted keys now and the ids of the keys learned."""
    try:
        outer = json.loads(keys_file)
    except ValueError as exc:
        raise ManifestError(f"keys file is not JSON: {echo(str(exc), max_chars=80)}") from exc
    if not isinstance(outer, dict) or outer.get("format") != KEYS_FORMAT \
            or not isinstance(outer.get("rotations"), list) \
            or len(outer["rotations"]) > MAX_ROTATIONS:
        raise ManifestError(f"keys file is not a {KEYS_FORMAT!r} object with a list of at most "
                            f"{MAX_ROTATIONS} 'rotations'")
    keys = {key_id(key): key for key in trusted}
    keyring = read_keyring(state)
    learned = []
    for envelope in outer["rotations"]:
        signer = envelope.get("key_id") if isinstance(envelope, dict) else None
        if not isinstance(signer, str) or signer not in keys:
            continue  # from a key this device never trusted, or has retired already
        rotation = open_envelope(json.dumps(envelope).encode(), keys[signer],
                                 what="key rotation")
        if not isinstance(rotation, dict) or rotation.get("format") != ROTATION_FORMAT \
                or rotation.get("previous_key_id") != signer:
            raise ManifestError(f"key rotation signed by {signer} is not a {ROTATION_FORMAT!r} "
                                "announcement from that key")
        new_key = load_public_key(_text(rotation, "new_public_key", max_chars=512,
                                        pattern=r"[-A-Za-z0-9+/=\n ]+").encode())
        new_id = key_id(new_key)
        if new_id in keyring["retired"] or new_id == signer:
            continue
        keys.pop(signer)
        keys[new_id] = new_key
        keyring["trusted"].pop(signer, None)
        keyring["trusted"][new_id] = _pem(new_key)
        keyring["retired"].append(signer)
        learned.append(new_id)
    if learned:
        _write_keyring(state, keyring)
    return list(keys.values()), learned


def seen_index_version(state: Path) -> int | None:
    """The version of the newest signed index this device accepted, None before the first."""
    try:
        value = json.loads((Path(state) / CHANNEL_STATE_FILE).read_text())["index_version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) else None


def record_index_version(state: Path, version: int) -> None:
    write_atomically(Path(state) / CHANNEL_STATE_FILE,
                     json.dumps({"index_version": version}).encode())
