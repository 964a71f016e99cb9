"""The release channel: a folder any static file host can serve, holding signed manifests and
the artifacts they name, and the Ed25519 key that signs them.

    CHANNEL/artifacts/<sha256>.tflite
    CHANNEL/<device_class>/canary.json   (only while a canary is open)
    CHANNEL/<device_class>/stable.json

The envelope format and the manifest fields are defined once, in `device/manifest.py`.
"""

from __future__ import annotations

import base64
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
from device.manifest import INPUT_CONTRACT, MANIFEST_FORMAT, key_id

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
        raise FileExistsError(f"{private_path} exists; devices trust it. Use --force to replace it "
                              "(and give every device the new public key)")
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    fd = os.open(private_path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.replace(private_path.with_suffix(".tmp"), private_path)
    public = public_key_path(private_path)
    public.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return public, key_id(key.public_key())


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


def withdraw(root: Path, device_class: str, channel: str) -> None:
    """Take a channel's manifest down (its devices fall back to the stable manifest)."""
    manifest_path(root, device_class, channel).unlink(missing_ok=True)
