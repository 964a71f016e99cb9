"""The signed release manifest, as a device reads it.

A channel file is a JSON envelope ``{"payload": "<manifest JSON>", "signature": "<base64>",
"key_id": "<hex>"}``. The Ed25519 signature covers the payload string's exact UTF-8
bytes, so nothing depends on how JSON is re-serialised. The server builds envelopes with
the same constants (`storage/channel.py`); this module only parses and verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

MANIFEST_FORMAT = "shelfcast-manifest/1"
CHANNELS = ("canary", "stable")
INPUT_CONTRACT = {
    "input": "the last 14 raw daily sales of one store and item, oldest first",
    "input_shape": [1, 14],
    "input_dtype": "float32",
    "output": "next-day sales",
    "output_shape": [1, 1],
}
REQUIRED_FIELDS = ("format", "release_id", "channel", "device_class", "stores", "model_version",
                   "variant", "artifact", "input_contract", "probe", "created_at")


class ManifestError(ValueError):
    """A manifest that must not be trusted, with the reason."""


@dataclass(frozen=True)
class Manifest:
    release_id: int
    channel: str
    device_class: str
    stores: list[int] | None  # None: every store of the class
    model_version: int
    variant: str
    artifact_path: str  # relative to the channel's base URL
    sha256: str
    artifact_bytes: int
    probe_history: list[float]
    probe_forecast: float
    probe_tolerance: float
    created_at: str
    payload: dict

    def covers(self, store: int) -> bool:
        return self.stores is None or store in self.stores


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key: the first 16 hex digits of its raw bytes' sha256."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(pem)
    except ValueError as exc:
        raise ManifestError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ManifestError(f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


def verify_envelope(envelope: bytes, public_key: Ed25519PublicKey) -> Manifest:
    """Check the envelope's signature with `public_key`, then parse and validate the manifest."""
    try:
        outer = json.loads(envelope)
        payload_text, signature_b64 = outer["payload"], outer["signature"]
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ManifestError(f"not a signed manifest envelope: {exc}") from exc
    try:
        public_key.verify(signature, payload_text.encode("utf-8"))
    except InvalidSignature:
        raise ManifestError(
            f"bad signature: the manifest was not signed by key {key_id(public_key)} "
            f"(envelope names key {outer.get('key_id')!r}) or was altered"
        ) from None
    return parse_manifest(json.loads(payload_text))


def parse_manifest(payload: dict) -> Manifest:
    missing = [name for name in REQUIRED_FIELDS if name not in payload]
    if missing:
        raise ManifestError(f"manifest lacks {missing}")
    if payload["format"] != MANIFEST_FORMAT:
        raise ManifestError(f"manifest format {payload['format']!r}, expected {MANIFEST_FORMAT!r}")
    if payload["channel"] not in CHANNELS:
        raise ManifestError(f"manifest channel {payload['channel']!r}, expected one of {CHANNELS}")
    if payload["input_contract"] != INPUT_CONTRACT:
        raise ManifestError(f"manifest input contract {payload['input_contract']!r} is not the "
                            f"one this agent runs: {INPUT_CONTRACT!r}")
    artifact, probe = payload["artifact"], payload["probe"]
    try:
        return Manifest(
            release_id=int(payload["release_id"]), channel=payload["channel"],
            device_class=str(payload["device_class"]),
            stores=None if payload["stores"] is None else [int(s) for s in payload["stores"]],
            model_version=int(payload["model_version"]), variant=str(payload["variant"]),
            artifact_path=str(artifact["path"]), sha256=str(artifact["sha256"]),
            artifact_bytes=int(artifact["bytes"]),
            probe_history=[float(v) for v in probe["history"]],
            probe_forecast=float(probe["forecast"]), probe_tolerance=float(probe["tolerance"]),
            created_at=str(payload["created_at"]), payload=payload,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"malformed manifest field: {exc!r}") from exc
