"""The signed release manifest, as a device reads it.

A channel file is a JSON envelope ``{"payload": "<manifest JSON>", "signature": "<base64>",
"key_id": "<hex>"}``. The Ed25519 signature covers the payload string's exact UTF-8
bytes, so nothing depends on how JSON is re-serialised. The server builds envelopes with
the same constants (`storage/channel.py`); this module only parses and verifies.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from device.features import CONTRACT_VERSION, KEPT_DAYS, LOOK_BACK_DAYS, STATIC_FIELDS, WINDOW_DAYS
from device.messages import echo
from device.probe import CONTRACTS, Probe, contract_probe

MANIFEST_FORMAT = "shelfcast-manifest/1"
CHANNELS = ("canary", "stable")
# Version 2 added the forecast day's weekday as a second input; version 3 adds the static
# inputs the device computes from its own kept sales (`device/features.py`). An agent compares
# the whole contract of the version a manifest names, and refuses a version it cannot feed: a
# model is never fed inputs it was not made for. This agent feeds versions 2 and 3
# (`device.probe.CONTRACTS`); one that knows only 2 keeps its model and says it needs upgrading.
INPUT_CONTRACTS = {
    2: {
        "version": 2,
        "input": "the last 14 raw daily sales of one store and item, oldest first",
        "input_shape": [1, 14],
        "input_dtype": "float32",
        "weekday": "the weekday of the forecast day, 0 = Monday .. 6 = Sunday",
        "weekday_shape": [1],
        "weekday_dtype": "int32",
        "output": "the forecast day's sales",
        "output_shape": [1, 1],
    },
    3: {
        "version": 3,
        "input": "the last 14 raw daily sales of one store and item, oldest first",
        "input_shape": [1, WINDOW_DAYS],
        "input_dtype": "float32",
        "weekday": "the weekday of the forecast day, 0 = Monday .. 6 = Sunday",
        "weekday_shape": [1],
        "weekday_dtype": "int32",
        "static": "computed by device/features.py from the series' kept daily sales (up to "
                  f"{KEPT_DAYS} days before the forecast day) and the forecast date",
        "static_fields": list(STATIC_FIELDS),
        "static_look_back_days": [LOOK_BACK_DAYS[name] for name in STATIC_FIELDS],
        "static_shape": [1, len(STATIC_FIELDS)],
        "static_dtype": "float32",
        "output": "the forecast day's sales",
        "output_shape": [1, 1],
    },
}
INPUT_CONTRACT = INPUT_CONTRACTS[CONTRACT_VERSION]  # what the nightly's models run
# The largest model each device class stores and loads (DESIGN's device classes). A manifest
# naming more is refused before any download; the registry's gate limits may be tighter.
MAX_ARTIFACT_BYTES = {"sensor": 8 * 1024, "handheld": 32 * 1024, "tablet": 128 * 1024}
# For a class the table does not list (the device was told its class): far above any model
# this project builds (LSTM-64 is about 70 KB), so only a broken or hostile manifest hits it,
# and the agent never reads an unbounded download into memory.
MAX_ANY_ARTIFACT_BYTES = 16 * 1024 * 1024
# The widest relative tolerance of the smoke test. The server signs 1e-3 and the device runs
# the same LiteRT kernels, so honest differences are float32 rounding, far below that; 5 %
# leaves room for another CPU's kernels while a model other than the one measured still fails.
# A wider tolerance would let any model through: the check turned off, so it is refused.
MAX_PROBE_TOLERANCE = 0.05
MAX_ID = 2_147_483_647  # store, release and version ids: the registry's Integer columns
MAX_DEVICE_CLASS_CHARS = 32  # the registry's column widths
MAX_VARIANT_CHARS = 64
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"  # device classes and variants: path- and log-safe
PRINTABLE = r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]+"  # free text: no control characters, one line
MAX_TEXT_CHARS = 256
REQUIRED_FIELDS = ("format", "release_id", "channel", "device_class", "stores", "model_version",
                   "variant", "artifact", "input_contract", "probe", "created_at", "expires_at")


INDEX_FORMAT = "shelfcast-index/1"
INDEX_REQUIRED_FIELDS = ("format", "device_class", "version", "created_at", "expires_at",
                         "releases", "rolled_back")
MAX_INDEX_RELEASES = 16  # a class has a stable and at most one canary open; room to grow
INDEX_FILE = "index.json"  # CHANNEL/<device_class>/index.json
MAX_ROLLED_BACK = 100  # the newest rolled-back releases the index names


class ManifestError(ValueError):
    """A manifest that must not be trusted, with the reason."""


class ContractUnsupported(ManifestError):
    """A manifest whose model needs an input contract this agent cannot feed: the agent keeps
    its installed model until it is upgraded."""

    def __init__(self, needed: int, contracts: Sequence[int]):
        self.needed, self.contracts = needed, tuple(contracts)
        super().__init__(
            f"the model needs input contract {needed}, this agent feeds "
            f"{', '.join(map(str, self.contracts))}: upgrade the device agent (docs/"
            "fleet-and-trust.md, 'Input contracts'); keeping the installed model")


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
    contract_version: int  # of the model's inputs (INPUT_CONTRACTS)
    probe: Probe
    probe_tolerance: float
    created_at: str
    expires_at: dt.datetime  # aware; a device refuses the manifest from then on
    payload: dict

    def covers(self, store: int) -> bool:
        return self.stores is None or store in self.stores


@dataclass(frozen=True)
class IndexEntry:
    """One open channel of a class as the signed index lists it."""

    release_id: int
    channel: str
    stores: list[int] | None  # None: every store of the class
    manifest_path: str  # relative to the channel's base URL: '<device_class>/<channel>.json'
    manifest_sha256: str  # of the manifest file's bytes

    def covers(self, store: int) -> bool:
        return self.stores is None or store in self.stores


@dataclass(frozen=True)
class ReleaseIndex:
    """The signed list of a device class's open releases (TUF's snapshot): a device reads it
    first, so a withdrawn canary is gone even while its old manifest file is still served."""

    device_class: str
    version: int  # grows with every signing; a device refuses one older than it has seen
    created_at: str
    expires_at: dt.datetime
    releases: list[IndexEntry]
    rolled_back: list[int]  # releases rolled back: a device running one may go to a lower id

    def choose(self, store: int) -> IndexEntry | None:
        """The highest release that covers `store`, or None."""
        covering = [entry for entry in self.releases if entry.covers(store)]
        return max(covering, key=lambda entry: entry.release_id) if covering else None


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


def verify_envelope(
    envelope: bytes, public_key: Ed25519PublicKey | Sequence[Ed25519PublicKey], *,
    device_class: str | None = None, contracts: Sequence[int] = CONTRACTS
) -> Manifest:
    """Check the envelope's signature with `public_key` (or the trusted set of keys), then parse
    and validate the manifest.

    Any input gives a `Manifest` or a one-line `ManifestError`, never another exception: the
    bytes come from the network. `device_class` is the device's own (see `parse_manifest`).
    """
    return parse_manifest(open_envelope(envelope, public_key), device_class=device_class,
                          contracts=contracts)


def open_envelope(envelope: bytes, public_key: Ed25519PublicKey | Sequence[Ed25519PublicKey],
                  *, what: str = "manifest") -> object:
    """The parsed payload of a signed envelope (a manifest, an index, a key rotation), once its
    signature verifies with the key it names, which must be `public_key` or one of the trusted
    set; else a one-line `ManifestError`."""
    keys = [public_key] if isinstance(public_key, Ed25519PublicKey) else list(public_key)
    outer = _json(envelope, "envelope")
    if not isinstance(outer, dict):
        raise ManifestError(f"not a signed {what} envelope: a JSON {_kind(outer)}, expected an "
                            "object with 'payload' and 'signature'")
    payload_text, signature_b64 = outer.get("payload"), outer.get("signature")
    for name, value in (("payload", payload_text), ("signature", signature_b64)):
        if name not in outer:
            raise ManifestError(f"not a signed {what} envelope: no {name!r}")
        if not isinstance(value, str):
            raise ManifestError(f"not a signed {what} envelope: {name!r} is a JSON "
                                f"{_kind(value)}, expected a string")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        signed = payload_text.encode("utf-8")
    except (binascii.Error, ValueError) as exc:  # UnicodeEncodeError: a lone surrogate
        raise ManifestError(f"not a signed {what} envelope: {_reason(exc)}") from exc
    named = outer.get("key_id")
    by_id = {key_id(key): key for key in keys}
    if not isinstance(named, str) or named not in by_id:
        # the key id is not signed, so it only picks the key; an unknown one is refused at once
        raise ManifestError(f"bad signature: the {what} names signing key {echo(named)}, which "
                            f"this device does not trust (it trusts "
                            f"{', '.join(sorted(by_id)) or 'no key'}); a new release key comes "
                            "only with a new root version (shelfcast keys rotate)")
    key = by_id[named]
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        raise ManifestError(
            f"bad signature: the {what} was not signed by key {key_id(key)} "
            f"(envelope names key {echo(named)}) or was altered"
        ) from None
    return _json(payload_text, "payload")


def verify_index(envelope: bytes, public_keys: Sequence[Ed25519PublicKey], *,
                 device_class: str) -> ReleaseIndex:
    """Check a class's signed index with the trusted keys, then parse and validate it strictly;
    a `ReleaseIndex` or a one-line `ManifestError`."""
    return parse_index(open_envelope(envelope, public_keys, what="index"),
                       device_class=device_class)


def parse_index(payload: object, *, device_class: str) -> ReleaseIndex:
    """Validate every field of a (verified) index payload; refuse with one line."""
    try:
        return _parse_index(payload, device_class)
    except ManifestError as exc:
        # the field checkers speak of "manifest"; here they read the index
        raise ManifestError("index " + str(exc).removeprefix("manifest ")) from None


def _parse_index(payload: object, device_class: str) -> ReleaseIndex:
    if not isinstance(payload, dict):
        raise ManifestError(f"payload is a JSON {_kind(payload)}, expected an object")
    missing = [name for name in INDEX_REQUIRED_FIELDS if name not in payload]
    if missing:
        raise ManifestError(f"lacks {missing}")
    if payload["format"] != INDEX_FORMAT:
        raise ManifestError(f"format {echo(payload['format'])}, expected {INDEX_FORMAT!r}")
    if payload["device_class"] != device_class:
        raise ManifestError(f"is for device class {echo(payload['device_class'])}, this device "
                            f"is {echo(device_class)}")
    releases, rolled_back = payload["releases"], payload["rolled_back"]
    for name, value, most in (("releases", releases, MAX_INDEX_RELEASES),
                              ("rolled_back", rolled_back, MAX_ROLLED_BACK)):
        if not isinstance(value, list) or len(value) > most:
            raise ManifestError(f"field {name!r}: {echo(value)} is not a list of at most {most}")
    entries = []
    for k in range(len(releases)):
        entry = _object(releases, k, "releases")
        channel = entry.get("channel")
        if channel not in CHANNELS:
            raise ManifestError(f"field 'releases[{k}].channel': {echo(channel)} is not one of "
                                f"{CHANNELS}")
        stores = entry.get("stores")
        if stores is not None and not isinstance(stores, list):
            raise ManifestError(f"field 'releases[{k}].stores': {echo(stores)} is a JSON "
                                f"{_kind(stores)}, expected a list of store ids or null")
        _check_channel_stores(channel, stores, f"releases[{k}].stores")
        path = _text(entry, "manifest", f"releases[{k}]", max_chars=MAX_TEXT_CHARS)
        if path != f"{device_class}/{channel}.json":
            raise ManifestError(f"field 'releases[{k}].manifest': {echo(path)} is not "
                                f"'{device_class}/{channel}.json'")
        entries.append(IndexEntry(
            release_id=_integer(entry, "release_id", f"releases[{k}]", maximum=MAX_ID),
            channel=channel, manifest_path=path,
            stores=None if stores is None else [
                _integer(stores, j, f"releases[{k}].stores", maximum=MAX_ID)
                for j in range(len(stores))],
            manifest_sha256=_text(entry, "sha256", f"releases[{k}]", max_chars=64,
                                  pattern="[0-9a-f]{64}")))
    if len({entry.channel for entry in entries}) != len(entries):
        raise ManifestError("lists a channel twice")
    rolled_back = [_integer(rolled_back, k, "rolled_back", maximum=MAX_ID)
                   for k in range(len(rolled_back))]
    withdrawn = [entry.release_id for entry in entries if entry.release_id in rolled_back]
    if withdrawn:
        raise ManifestError(f"lists release {withdrawn[0]} both open and rolled back")
    return ReleaseIndex(
        device_class=device_class, version=_integer(payload, "version", maximum=2**53,
                                                    why="a signing counter"),
        created_at=_time(payload, "created_at").isoformat(),
        expires_at=_time(payload, "expires_at"), releases=entries, rolled_back=rolled_back)


def _check_channel_stores(channel: str, stores: list | None, name: str) -> None:
    """A canary names its stores (an empty list would cover none, or, read as null, all); the
    stable channel covers every store (null)."""
    if channel == "canary" and not stores:
        raise ManifestError(f"manifest field {name!r}: {echo(stores)} for a canary, expected a "
                            "non-empty list of store ids")
    if channel == "stable" and stores is not None:
        raise ManifestError(f"manifest field {name!r}: {echo(stores)} for the stable channel, "
                            "expected null (every store)")


def _time(container: dict, key: str) -> dt.datetime:
    """An ISO 8601 time with a time zone."""
    text = _text(container, key, max_chars=64)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ManifestError(f"manifest field {key!r}: {echo(text)} is not an ISO 8601 "
                            "time") from None
    if value.tzinfo is None:
        raise ManifestError(f"manifest field {key!r}: {echo(text)} has no time zone")
    return value


def _json(text: bytes | str, what: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
        raise ManifestError(f"{what} is not JSON: {_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    """A library's error text on one line, cut: some (UnicodeError) quote the input."""
    return " ".join(echo(str(exc), max_chars=120).split())


def parse_manifest(payload: object, *, device_class: str | None = None,
                   contracts: Sequence[int] = CONTRACTS) -> Manifest:
    """Validate every field of a (verified) manifest payload strictly; refuse with one line.

    A signature proves who wrote a manifest, not that it is sane, so nothing is coerced:
    ints are ints (not bools or floats), numbers finite, the artifact named by its hash and
    within `MAX_ARTIFACT_BYTES` of its class. `device_class` is the class this device was told
    it is: the manifest must be for it, and it vouches for a class `MAX_ARTIFACT_BYTES` does
    not list (bounded then by `MAX_ANY_ARTIFACT_BYTES`). Without it only listed classes pass.
    `contracts` are the input contracts this agent can feed; a manifest of another is refused
    with a `ContractUnsupported` that says the agent needs an upgrade.
    """
    if not isinstance(payload, dict):
        raise ManifestError(f"manifest payload is a JSON {_kind(payload)}, expected an object")
    missing = [name for name in REQUIRED_FIELDS if name not in payload]
    if missing:
        raise ManifestError(f"manifest lacks {missing}")
    if payload["format"] != MANIFEST_FORMAT:
        raise ManifestError(f"manifest format {echo(payload['format'])}, expected {MANIFEST_FORMAT!r}")
    if payload["channel"] not in CHANNELS:
        raise ManifestError(f"manifest channel {echo(payload['channel'])}, expected one of {CHANNELS}")
    manifest_class = _text(payload, "device_class", max_chars=MAX_DEVICE_CLASS_CHARS,
                           pattern=NAME_PATTERN)
    if device_class is not None and manifest_class != device_class:
        raise ManifestError(f"manifest is for device class {echo(manifest_class)}, "
                            f"this device is {echo(device_class)}")
    if manifest_class not in MAX_ARTIFACT_BYTES and manifest_class != device_class:
        raise ManifestError(f"manifest device class {echo(manifest_class)} is none of "
                            f"{sorted(MAX_ARTIFACT_BYTES)}; a device of another class must be "
                            "told its class")
    contract = _contract_version(payload["input_contract"], contracts)
    stores = payload["stores"]
    if stores is not None:
        if not isinstance(stores, list):
            raise ManifestError(f"manifest field 'stores': {echo(stores)} is a JSON "
                                f"{_kind(stores)}, expected a list of store ids or null")
        stores = [_integer(stores, k, "stores", maximum=MAX_ID) for k in range(len(stores))]
    _check_channel_stores(payload["channel"], stores, "stores")
    artifact = _object(payload, "artifact")
    probe = _object(payload, "probe")
    sha256 = _text(artifact, "sha256", "artifact", max_chars=64, pattern="[0-9a-f]{64}")
    path = _text(artifact, "path", "artifact", max_chars=MAX_TEXT_CHARS)
    if path != f"artifacts/{sha256}.tflite":
        raise ManifestError(f"manifest field 'artifact.path': {echo(path)} is not "
                            "'artifacts/<sha256>.tflite' for the manifest's sha256")
    if manifest_class in MAX_ARTIFACT_BYTES:
        max_bytes, why = MAX_ARTIFACT_BYTES[manifest_class], f"the most a {manifest_class} device takes"
    else:
        max_bytes, why = MAX_ANY_ARTIFACT_BYTES, "the most this agent takes for any class"
    artifact_bytes = _integer(artifact, "bytes", "artifact", maximum=max_bytes, why=why)
    tolerance = _number(probe, "tolerance", "probe", minimum=0.0, maximum=MAX_PROBE_TOLERANCE,
                        why="the widest this agent accepts: wider would turn the smoke test off")
    created_at = _text(payload, "created_at", max_chars=64)
    try:
        dt.datetime.fromisoformat(created_at)
    except ValueError:
        raise ManifestError(f"manifest field 'created_at': {echo(created_at)} is not an ISO "
                            "8601 time") from None
    expires_text = _text(payload, "expires_at", max_chars=64)
    try:
        expires_at = dt.datetime.fromisoformat(expires_text)
    except ValueError:
        raise ManifestError(f"manifest field 'expires_at': {echo(expires_text)} is not an ISO "
                            "8601 time") from None
    if expires_at.tzinfo is None:
        raise ManifestError(f"manifest field 'expires_at': {echo(expires_text)} has no time zone")
    return Manifest(
        release_id=_integer(payload, "release_id", maximum=MAX_ID),
        channel=payload["channel"], device_class=manifest_class, stores=stores,
        model_version=_integer(payload, "model_version", maximum=MAX_ID),
        variant=_text(payload, "variant", max_chars=MAX_VARIANT_CHARS, pattern=NAME_PATTERN),
        artifact_path=path, sha256=sha256, artifact_bytes=artifact_bytes,
        contract_version=contract, probe=_probe(probe, contract), probe_tolerance=tolerance,
        created_at=created_at, expires_at=expires_at, payload=payload,
    )


def _kind(value: object) -> str:
    """The JSON type of a parsed value, as messages name it."""
    kinds = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
             (list, "array"), (dict, "object"))
    return next((kind for python, kind in kinds if isinstance(value, python)), "null")


def _get(container: dict | list, key: str | int, parent: str | None) -> tuple[object, str]:
    """A member of an object (or array) and its name for messages: 'probe.history[3]'."""
    if parent is None:
        name = str(key)
    elif isinstance(key, int):
        name = f"{parent}[{key}]"
    else:
        name = f"{parent}.{key}"
    if isinstance(container, dict) and key not in container:
        raise ManifestError(f"manifest lacks field {name!r}")
    return container[key], name


def _object(container: dict, key: str, parent: str | None = None) -> dict:
    value, name = _get(container, key, parent)
    if not isinstance(value, dict):
        raise ManifestError(f"manifest field {name!r}: {echo(value)} is a JSON {_kind(value)}, "
                            "expected an object")
    return value


def _text(container: dict, key: str, parent: str | None = None, *, max_chars: int,
          pattern: str = PRINTABLE) -> str:
    """A string of 1..`max_chars` characters matching `pattern` (by default: no control
    characters or line breaks, since it may be printed or logged)."""
    value, name = _get(container, key, parent)
    if not isinstance(value, str) or len(value) > max_chars or not re.fullmatch(pattern, value):
        shape = "without control characters" if pattern == PRINTABLE else f"matching {pattern}"
        raise ManifestError(f"manifest field {name!r}: {echo(value)} is not a string of 1 to "
                            f"{max_chars} characters {shape}")
    return value


def _integer(container: dict | list, key: str | int, parent: str | None = None, *,
             maximum: int, minimum: int = 1, why: str = "the largest id the registry holds") -> int:
    """An integer within `minimum`..`maximum`; a bool or a float (even 3.0) is refused, not
    coerced."""
    value, name = _get(container, key, parent)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(f"manifest field {name!r}: {echo(value)} is a JSON {_kind(value)}, "
                            "expected an integer")
    if not minimum <= value <= maximum:
        raise ManifestError(f"manifest field {name!r}: {echo(value)} is outside "
                            f"{minimum}..{maximum} ({why})")
    return value


def _number(container: dict | list, key: str | int, parent: str | None = None, *,
            minimum: float = -math.inf, maximum: float = math.inf, why: str = "") -> float:
    """A finite number within [minimum, maximum]; NaN and infinities are refused (JSON as
    Python reads it has them, and one would make the smoke test pass or fail whatever runs)."""
    value, name = _get(container, key, parent)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(f"manifest field {name!r}: {echo(value)} is a JSON {_kind(value)}, "
                            "expected a number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        number = math.inf
    if not math.isfinite(number):
        raise ManifestError(f"manifest field {name!r}: {echo(value)} is not a finite number")
    if not minimum <= number <= maximum:
        raise ManifestError(f"manifest field {name!r}: {echo(value)} is outside {minimum:g} to "
                            f"{maximum:g}" + (f" ({why})" if why else ""))
    return number


def _contract_version(contract: object, contracts: Sequence[int]) -> int:
    """The version of a manifest's input contract, when this agent feeds it and the manifest
    states it exactly as this agent knows it."""
    version = contract.get("version") if isinstance(contract, dict) else None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ManifestError(f"manifest input contract {echo(contract)} names no version")
    if version not in contracts or version not in INPUT_CONTRACTS:
        raise ContractUnsupported(version, contracts)
    if contract != INPUT_CONTRACTS[version]:
        raise ManifestError(f"manifest input contract {echo(contract)} is not version {version} "
                            "as this agent knows it")
    return version


def _probe(probe: dict, contract: int) -> Probe:
    """The probe of a contract-2 manifest (a window and a weekday) or of a contract-3 one (the
    kept days, null where unknown, and the forecast date), every value checked."""
    forecast = _number(probe, "forecast", "probe")
    if contract == 2:
        history = _list(probe, "history", exactly=WINDOW_DAYS, what="daily sales (the window)")
        return Probe(contract=2, forecast=forecast,
                     history=[_number(history, k, "probe.history", minimum=0.0)
                              for k in range(WINDOW_DAYS)],
                     weekday=_integer(probe, "weekday", "probe", minimum=0, maximum=6,
                                      why="a weekday, 0 = Monday"))
    kept = _list(probe, "kept", at_least=WINDOW_DAYS, at_most=KEPT_DAYS,
                 what="kept daily sales, oldest first")
    values = [None if kept[k] is None and k < len(kept) - WINDOW_DAYS
              else _number(kept, k, "probe.kept", minimum=0.0) for k in range(len(kept))]
    text = _text(probe, "date", "probe", max_chars=10, pattern=r"\d{4}-\d{2}-\d{2}")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ManifestError(f"manifest field 'probe.date': {echo(text)} is not a date") from None
    return contract_probe(values, day, forecast)


def _list(container: dict, key: str, *, what: str, exactly: int | None = None,
          at_least: int = 0, at_most: int | None = None) -> list:
    value, name = _get(container, key, "probe")
    if exactly is not None:
        at_least = at_most = exactly
    if not isinstance(value, list):
        raise ManifestError(f"manifest field {name!r}: {echo(value)} is a JSON {_kind(value)}, "
                            f"expected a list of {what}")
    if not at_least <= len(value) <= at_most:
        size = at_least if at_least == at_most else f"{at_least} to {at_most}"
        raise ManifestError(f"manifest field {name!r} has {len(value)} values, expected {size} "
                            f"{what}")
    return value
