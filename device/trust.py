"""What a device trusts: the root of the channel's chain of trust (TUF's root role), the
newest index it has seen, and the walk from one root version to the next.

State folder additions::

    STATE/root.json       the newest root this device verified (its enrolment's, then each next)
    STATE/keyring.json    {"trusted": {key_id: PEM}, "retired": [key_id, ...]}: keys installed
                          by `shelfcast-device trust --public-key` before a root was known
    STATE/channel.json    {"index_version": N}: the newest signed index this device has seen

A root (``CHANNEL/root/<N>.root.json``) names the keys of two roles: ``root`` (signs the next
root) and ``release`` (signs the indexes and manifests), each with a threshold. A device starts
from the root it got at enrolment (``trust --root``), or from version 1 signed by a key it was
given (``trust --public-key``), and walks N -> N+1 -> ... in order: version N+1 counts only when
a threshold of version N's root keys and a threshold of its own root keys signed it, so a key
the chain has moved past can never extend it alone. As in TUF, a root that names new release
keys resets the index version the device remembers (a fast-forwarded index signed by a stolen
release key cannot hold the device back after the rotation that revokes that key).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from device.files import write_atomically
from device.manifest import (
    ManifestError,
    _integer,
    _text,
    _time,
    echo,
    key_id,
    load_public_key,
)

KEYRING_FILE = "keyring.json"
CHANNEL_STATE_FILE = "channel.json"
ROOT_STATE_FILE = "root.json"
ROOT_FORMAT = "shelfcast-root/1"
ROLES = ("root", "release")
MAX_ROOT_BYTES = 64 * 1024  # a root names a few keys; more is endless data
MAX_ROOT_STEPS = 64  # root versions walked in one sync; more is endless data
MAX_ROOT_KEYS = 16
MAX_ROOT_VERSION = 2**31 - 1


def root_file(version: int) -> str:
    """A root version's path, relative to the channel's base URL."""
    return f"root/{version}.root.json"


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


def forget_index_version(state: Path) -> None:
    """Forget the newest index version (TUF's fast-forward recovery, after new release keys)."""
    (Path(state) / CHANNEL_STATE_FILE).unlink(missing_ok=True)


@dataclass(frozen=True)
class Root:
    """One verified root version: the keys of each role and how many must sign."""

    version: int
    expires_at: dt.datetime
    keys: dict[str, Ed25519PublicKey]
    roles: dict[str, tuple[tuple[str, ...], int]]  # role -> (key ids, threshold)
    envelope: bytes  # as fetched, kept in STATE/root.json

    def role_keys(self, role: str) -> list[Ed25519PublicKey]:
        return [self.keys[kid] for kid in self.roles[role][0]]

    def role_ids(self, role: str) -> tuple[str, ...]:
        return self.roles[role][0]


def parse_root(envelope: bytes) -> tuple[Root, dict[str, bytes], bytes]:
    """(root, {key id: signature}, the signed bytes) of a root envelope, every field validated
    strictly; signatures are not checked here. A one-line `ManifestError` otherwise."""
    if len(envelope) > MAX_ROOT_BYTES:
        raise ManifestError(f"root is {len(envelope):,} bytes, more than the {MAX_ROOT_BYTES:,} "
                            "a root takes (endless data)")
    try:
        outer = json.loads(envelope)
    except (ValueError, RecursionError) as exc:
        raise ManifestError(f"root is not JSON: {echo(str(exc), max_chars=80)}") from None
    if not isinstance(outer, dict) or not isinstance(outer.get("payload"), str) \
            or not isinstance(outer.get("signatures"), list) \
            or not 1 <= len(outer["signatures"]) <= MAX_ROOT_KEYS:
        raise ManifestError("not a signed root envelope: expected an object with a 'payload' "
                            f"string and 1 to {MAX_ROOT_KEYS} 'signatures'")
    signatures = {}
    for entry in outer["signatures"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("key_id"), str) \
                or not isinstance(entry.get("signature"), str):
            raise ManifestError("not a signed root envelope: a signature is not "
                                "{'key_id': ..., 'signature': ...}")
        try:
            signatures[entry["key_id"]] = base64.b64decode(entry["signature"], validate=True)
        except (binascii.Error, ValueError):
            raise ManifestError("not a signed root envelope: a signature is not base64") from None
    try:
        signed = outer["payload"].encode("utf-8")
        payload = json.loads(outer["payload"])
    except (ValueError, RecursionError) as exc:
        raise ManifestError(f"root payload is not JSON: {echo(str(exc), max_chars=80)}") from None
    try:
        return _parse_root_payload(payload, envelope), signatures, signed
    except ManifestError as exc:
        raise ManifestError("root " + str(exc).removeprefix("manifest ")) from None


def _parse_root_payload(payload: object, envelope: bytes) -> Root:
    if not isinstance(payload, dict) or payload.get("format") != ROOT_FORMAT:
        raise ManifestError(f"payload is not a {ROOT_FORMAT!r} object")
    keys_field, roles_field = payload.get("keys"), payload.get("roles")
    if not isinstance(keys_field, dict) or not 1 <= len(keys_field) <= MAX_ROOT_KEYS:
        raise ManifestError(f"field 'keys' is not an object of 1 to {MAX_ROOT_KEYS} keys")
    keys = {}
    for kid in keys_field:
        key = load_public_key(_text(keys_field, kid, "keys", max_chars=512,
                                    pattern=r"[-A-Za-z0-9+/=\n ]+").encode())
        if key_id(key) != kid:
            raise ManifestError(f"field 'keys.{echo(kid)}' is the key {key_id(key)}")
        keys[kid] = key
    if not isinstance(roles_field, dict) or sorted(roles_field) != sorted(ROLES):
        raise ManifestError(f"field 'roles' must name exactly the roles {list(ROLES)}")
    roles = {}
    for role in ROLES:
        entry = roles_field[role]
        ids = entry.get("key_ids") if isinstance(entry, dict) else None
        if not isinstance(ids, list) or not ids or len(set(ids)) != len(ids) \
                or not all(isinstance(kid, str) and kid in keys for kid in ids):
            raise ManifestError(f"field 'roles.{role}.key_ids' is not a list of distinct keys "
                                "the root names")
        threshold = _integer(entry, "threshold", f"roles.{role}", maximum=len(ids),
                             why="at most the role's keys")
        roles[role] = (tuple(ids), threshold)
    return Root(version=_integer(payload, "version", maximum=MAX_ROOT_VERSION,
                                 why="a root version"),
                expires_at=_time(payload, "expires_at"), keys=keys, roles=roles,
                envelope=envelope)


def _signers(signed: bytes, signatures: dict[str, bytes], root: Root, role: str) -> list[str]:
    """The key ids of `root`'s `role` whose signature over `signed` verifies."""
    valid = []
    for kid in root.role_ids(role):
        if kid in signatures:
            try:
                root.keys[kid].verify(signatures[kid], signed)
            except InvalidSignature:
                continue
            valid.append(kid)
    return valid


def _check_threshold(signed: bytes, signatures: dict[str, bytes], by: Root, *, what: str,
                     whose: str) -> None:
    ids, threshold = by.roles["root"]
    valid = _signers(signed, signatures, by, "root")
    if len(valid) < threshold:
        raise ManifestError(f"bad signature: {what} is signed by {len(valid)} of the {len(ids)} "
                            f"root key(s) of {whose}, which needs {threshold} "
                            f"({', '.join(ids)}); keys this device does not trust cannot extend "
                            "its chain of roots")


def next_root(trusted: Root, envelope: bytes, version: int) -> Root:
    """Root `version` (= trusted.version + 1), once a threshold of `trusted`'s root keys and
    a threshold of its own signed it; else a one-line `ManifestError`."""
    new, signatures, signed = parse_root(envelope)
    if new.version != version:
        raise ManifestError(f"{root_file(version)} holds root version {new.version}: a root "
                            f"that skips or repeats a version is refused (this device is at "
                            f"version {trusted.version})")
    _check_threshold(signed, signatures, trusted, what=f"root version {version}",
                     whose=f"version {trusted.version}")
    _check_threshold(signed, signatures, new, what=f"root version {version}",
                     whose="its own")
    return new


def first_root(envelope: bytes, keys: list[Ed25519PublicKey]) -> Root:
    """A device's first root from a key it was given (`trust --public-key`): a root whose own
    root keys signed it to their threshold, and that a given key both belongs to and signed."""
    root, signatures, signed = parse_root(envelope)
    _check_threshold(signed, signatures, root, what=f"root version {root.version}",
                     whose="its own")
    given = {key_id(key) for key in keys}
    vouching = [kid for kid in set(_signers(signed, signatures, root, "root"))
                | set(_signers(signed, signatures, root, "release")) if kid in given]
    if not vouching:
        raise ManifestError(f"bad signature: root version {root.version} names signing key(s) "
                            f"{', '.join(sorted(signatures))}, which this device does not trust "
                            f"(it trusts {', '.join(sorted(given)) or 'no key'}); enrol it with "
                            "the channel's root (shelfcast-device trust --root)")
    return root


def read_root(state: Path) -> Root | None:
    """The newest root this device verified, None before its first."""
    path = Path(state) / ROOT_STATE_FILE
    if not path.exists():
        return None
    try:
        return parse_root(path.read_bytes())[0]
    except (OSError, ManifestError) as exc:
        raise TrustError(f"{path}: not a root ({exc}); enrol the device again with "
                         "`shelfcast-device trust --root`") from None


def install_root(state: Path, envelope: bytes) -> Root:
    """Install the root a device got at enrolment (its own root keys signed it); refused when
    the device already follows a chain: it moves on by the channel's roots only."""
    try:
        root, signatures, signed = parse_root(envelope)
        _check_threshold(signed, signatures, root, what=f"root version {root.version}",
                         whose="its own")
    except ManifestError as exc:
        raise TrustError(f"root: {exc}") from None
    current = read_root(state)
    if current is not None and current.envelope != envelope:
        raise TrustError(f"this device follows root version {current.version} already; it "
                         "learns later roots from the channel, never from a file")
    write_atomically(Path(state) / ROOT_STATE_FILE, envelope)
    return root


def update_root(state: Path, fetch_root: Callable[[int], bytes | None],
                given: list[Ed25519PublicKey]) -> tuple[Root, list[int]]:
    """Walk the channel's roots from the device's (or, before its first, from version 1 and a
    key in `given`), version by version, and keep the newest; (root, versions learned). Refuses
    (one line) a root that skips a version, is not signed by the thresholds, or, the newest,
    has expired (a frozen channel)."""
    trusted = read_root(state)
    learned = []
    if trusted is None:
        envelope = fetch_root(1)
        if envelope is None:
            raise ManifestError(f"the channel has no {root_file(1)}: a channel without its root "
                                "is refused")
        trusted = first_root(envelope, given)
        learned.append(trusted.version)
    start, passed = trusted, set(trusted.keys)
    for _ in range(MAX_ROOT_STEPS):
        envelope = fetch_root(trusted.version + 1)
        if envelope is None:
            break
        trusted = next_root(trusted, envelope, trusted.version + 1)
        learned.append(trusted.version)
        passed |= set(trusted.keys)
    else:
        raise ManifestError(f"more than {MAX_ROOT_STEPS} root versions after version "
                            f"{start.version} in one sync (endless data); sync again to go on")
    if dt.datetime.now(dt.UTC) >= trusted.expires_at:
        raise ManifestError(f"root version {trusted.version} expired at "
                            f"{trusted.expires_at.isoformat()} and no newer root is served "
                            "(a frozen channel); keeping the installed model")
    if learned:
        old_release = set(start.role_ids("release")) if read_root(state) else set()
        if set(trusted.role_ids("release")) != old_release:
            forget_index_version(state)
        _retire(state, passed - set(trusted.keys))
        write_atomically(Path(state) / ROOT_STATE_FILE, trusted.envelope)
    return trusted, learned


def _retire(state: Path, key_ids: set[str]) -> None:
    """Record keys the chain moved past, so `trust --public-key` refuses them from now on."""
    if not key_ids:
        return
    keyring = read_keyring(state)
    for kid in sorted(key_ids):
        keyring["trusted"].pop(kid, None)
        if kid not in keyring["retired"]:
            keyring["retired"].append(kid)
    _write_keyring(state, keyring)
