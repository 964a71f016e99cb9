"""The release channel: a folder any static file host can serve, holding signed manifests and
the artifacts they name, and the Ed25519 key that signs them.

    CHANNEL/artifacts/<sha256>.tflite
    CHANNEL/<device_class>/canary.json   (only while a canary is open)
    CHANNEL/<device_class>/stable.json
    CHANNEL/<device_class>/index.json    every open channel of the class, signed (read first)
    CHANNEL/keys.json                    key rotations, each signed by the key it replaces

The envelope format, the manifest and index fields are defined once, in `device/manifest.py`;
the rotations in `device/trust.py`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from device.files import write_atomically
from device.manifest import (
    INDEX_FILE,
    INDEX_FORMAT,
    INPUT_CONTRACT,
    MANIFEST_FORMAT,
    MAX_ROLLED_BACK,
    key_id,
)
from device.trust import KEYS_FILE, KEYS_FORMAT, ROTATION_FORMAT

PROBE_TOLERANCE = 1e-3  # relative; the device runs the same LiteRT, so this is headroom


class SigningKeyMissing(FileNotFoundError):
    pass


def public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name.removesuffix(".pem") + ".pub.pem")


def init_signing_key(private_path: Path, *, force: bool = False) -> tuple[Path, str]:
    """Make a new Ed25519 key pair (private key mode 0600); return the public key's path and
    key id. Refuses to replace an existing key unless `force`: devices trust the old one."""
    private_path = Path(private_path)
    if private_path.exists() and not force:
        raise FileExistsError(f"{private_path} exists; devices trust it. Use `shelfcast keys "
                              "rotate` to replace it (devices learn the new key), or --force "
                              "(and give every device the new public key)")
    return _write_key_pair(private_path, Ed25519PrivateKey.generate())


def _write_key_pair(private_path: Path, key: Ed25519PrivateKey) -> tuple[Path, str]:
    os.replace(_write_private_key(private_path, key), private_path)
    public = public_key_path(private_path)
    write_atomically(public, _public_pem(key))
    return public, key_id(key.public_key())


def _write_private_key(private_path: Path, key: Ed25519PrivateKey) -> Path:
    """Write the private key (mode 0600) beside `private_path`; return that file, to be renamed
    over `private_path`."""
    private_path.parent.mkdir(parents=True, exist_ok=True)
    pending = private_path.with_name(private_path.name + ".new")
    fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        handle.flush()
        os.fsync(handle.fileno())
    return pending


def _public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def rotate_signing_key(private_path: Path, root: Path, old_key: Ed25519PrivateKey, *,
                       now: str, by: str) -> tuple[Path, str, str]:
    """Replace the signing key: make a new one, announce its public key in the channel's
    `keys.json`, signed by `old_key` (devices that trust the old key learn the new one from
    it), then put the new private key where the old one was. Returns (public key path, old
    key id, new key id). The caller re-signs every open release and index with the new key."""
    new_key = Ed25519PrivateKey.generate()
    old_id, new_id = key_id(old_key.public_key()), key_id(new_key.public_key())
    path = Path(root) / KEYS_FILE
    rotations = json.loads(path.read_bytes())["rotations"] if path.exists() else []
    announcement = {"format": ROTATION_FORMAT, "previous_key_id": old_id, "new_key_id": new_id,
                    "new_public_key": _public_pem(new_key).decode("ascii"), "rotated_at": now,
                    "rotated_by": by}
    rotations.append(json.loads(signed_envelope(announcement, old_key)))
    # the new private key is on disk before devices can learn it: stopped after the
    # announcement, it waits at <key>.new to be moved over the old one by hand
    pending = _write_private_key(Path(private_path), new_key)
    write_atomically(path, json.dumps({"format": KEYS_FORMAT, "rotations": rotations},
                                      indent=1).encode())
    os.replace(pending, private_path)
    public = public_key_path(Path(private_path))
    write_atomically(public, _public_pem(new_key))
    return public, old_id, new_id


def load_signing_key(private_path: Path) -> Ed25519PrivateKey:
    if not Path(private_path).exists():
        raise SigningKeyMissing(f"no release signing key at {private_path}: run `shelfcast keys init`")
    key = load_pem_private_key(Path(private_path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{private_path}: expected an Ed25519 private key")
    return key


def signed_envelope(payload: dict, key: Ed25519PrivateKey) -> bytes:
    text = json.dumps(payload, sort_keys=True)
    signature = base64.b64encode(key.sign(text.encode("utf-8"))).decode("ascii")
    return json.dumps({"payload": text, "signature": signature,
                       "key_id": key_id(key.public_key())}, indent=1).encode()


def manifest_payload(*, release_id: int, channel: str, device_class: str, stores: list[int] | None,
                     model_version: int, variant: str, sha256: str, artifact_bytes: int,
                     probe: dict, created_at: str, expires_at: str) -> dict:
    return {
        "format": MANIFEST_FORMAT, "release_id": release_id, "channel": channel,
        "device_class": device_class, "stores": stores, "model_version": model_version,
        "variant": variant,
        "artifact": {"path": f"artifacts/{sha256}.tflite", "sha256": sha256,
                     "bytes": artifact_bytes},
        "input_contract": dict(INPUT_CONTRACT),
        "probe": {"history": probe["history"], "weekday": probe["weekday"],
                  "forecast": probe["forecast"],
                  "tolerance": PROBE_TOLERANCE},
        "created_at": created_at,
        "expires_at": expires_at,
    }


def manifest_path(root: Path, device_class: str, channel: str) -> Path:
    return Path(root) / device_class / f"{channel}.json"


def publish(root: Path, payload: dict, content: bytes, key: Ed25519PrivateKey) -> Path:
    """Write the artifact (if new), then the signed manifest that names it; return the
    manifest's path. The artifact lands first so a device never sees a manifest whose file is
    not there yet."""
    sha256 = payload["artifact"]["sha256"]
    if hashlib.sha256(content).hexdigest() != sha256 or len(content) != payload["artifact"]["bytes"]:
        raise ValueError(f"artifact content does not match the manifest (sha256 {sha256[:12]})")
    artifact = Path(root) / payload["artifact"]["path"]
    if not artifact.exists():
        write_atomically(artifact, content)
    path = manifest_path(root, payload["device_class"], payload["channel"])
    write_atomically(path, signed_envelope(payload, key))
    return path


def index_path(root: Path, device_class: str) -> Path:
    return Path(root) / device_class / INDEX_FILE


def publish_index(root: Path, device_class: str, releases: list[dict], rolled_back: list[int],
                  key: Ed25519PrivateKey, *, created_at: str, expires_at: str) -> Path:
    """Sign and write a class's index: `releases` are its open channels, each
    {"release_id", "channel", "stores"}, whose manifests are already written (the index names
    each by the sha256 of its file); `rolled_back` the newest rolled-back release ids. Its
    version is above the index it replaces, so devices can refuse an older one: the signing
    time in milliseconds since 1970, or one more than the last version when that is higher, so
    a release folder made anew still continues above what devices have seen."""
    path = index_path(root, device_class)
    version = int(dt.datetime.fromisoformat(created_at).timestamp() * 1000)
    if path.exists():
        try:
            last = json.loads(json.loads(path.read_bytes())["payload"])["version"]
            version = max(version, int(last) + 1)
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}: not an index this server wrote; move it away to start "
                             "the index over") from None
    entries = []
    for release in sorted(releases, key=lambda r: r["release_id"]):
        manifest = manifest_path(root, device_class, release["channel"])
        entries.append({**release, "manifest": f"{device_class}/{release['channel']}.json",
                        "sha256": hashlib.sha256(manifest.read_bytes()).hexdigest()})
    payload = {"format": INDEX_FORMAT, "device_class": device_class, "version": version,
               "created_at": created_at, "expires_at": expires_at, "releases": entries,
               "rolled_back": sorted(rolled_back)[-MAX_ROLLED_BACK:]}
    write_atomically(path, signed_envelope(payload, key))
    return path


def withdraw(root: Path, device_class: str, channel: str) -> None:
    """Take a channel's manifest down (its devices fall back to the stable manifest)."""
    manifest_path(root, device_class, channel).unlink(missing_ok=True)
