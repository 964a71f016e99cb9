"""The store-device agent: read the signed index of its class, fetch the signed manifest it
names for this device, verify everything, and swap the new model in atomically; forecast with
the installed model.

State folder layout (and `device/trust.py`'s root, keyring and index version)::

    STATE/models/<sha256>.tflite   the installed model and the one before it
    STATE/installed.json            {"current": {...}, "previous": {...} | null}

Any failure during `sync` raises SyncError and leaves the installed model untouched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import json
import math
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from device.features import KEPT_DAYS, WINDOW_DAYS, series_inputs
from device.files import write_atomically
from device.manifest import (
    INDEX_FILE,
    ContractUnsupported,
    Manifest,
    ManifestError,
    ReleaseIndex,
    verify_envelope,
    verify_index,
)
from device.probe import CONTRACTS, probe_from_dict
from device.runtime import Forecaster, forecast_latency_us
from device.trust import (
    MAX_ROOT_BYTES,
    Root,
    TrustError,
    read_root,
    record_index_version,
    root_file,
    seen_index_version,
    trusted_keys,
    update_root,
)

FETCH_TIMEOUT_S = 30
MANIFEST_MAX_BYTES = 1 << 20
STATE_FILE = "installed.json"


class SyncError(RuntimeError):
    """Why a sync refused a release; the installed model is unchanged."""


class ChannelUnavailable(SyncError):
    """The channel could not be reached or read (network, DNS, a server error): nothing was
    refused, the installed model keeps serving, and a later sync may succeed."""


class AgentOutdated(SyncError):
    """The release's model needs an input contract this agent cannot feed: the installed model
    keeps serving, and the device reports that its agent needs an upgrade."""


class IndexMismatch(SyncError):
    """The manifest file is not the one the index names (perhaps re-signed since)."""


@dataclass(frozen=True)
class SyncResult:
    status: str  # installed | up-to-date
    manifest: Manifest
    learned_roots: list[int] = field(default_factory=list)  # root versions walked to


def fetch(url: str, *, max_bytes: int) -> bytes | None:
    """GET `url` (http, https, file or a plain path); None when it does not exist."""
    if "://" not in url:
        url = Path(url).resolve().as_uri()
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            content = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        unavailable = ChannelUnavailable if exc.code >= 500 else SyncError
        raise unavailable(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except FileNotFoundError:
        return None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, FileNotFoundError):
            return None
        raise ChannelUnavailable(f"{url}: unreachable: {exc.reason}") from exc
    except http.client.IncompleteRead as exc:
        raise SyncError(f"{url}: truncated download ({len(exc.partial)} bytes arrived)") from exc
    except OSError as exc:
        raise ChannelUnavailable(f"{url}: unreachable: {exc}") from exc
    if len(content) > max_bytes:
        raise SyncError(f"{url}: larger than the {max_bytes} bytes expected")
    return content


def _verified_manifest(url: str, envelope: bytes, public_keys, device_class: str,
                       contracts: tuple[int, ...] = CONTRACTS) -> Manifest:
    try:
        manifest = verify_envelope(envelope, public_keys, device_class=device_class,
                                   contracts=contracts)
    except ContractUnsupported as exc:
        raise AgentOutdated(f"{url}: {exc}") from exc
    except ManifestError as exc:
        raise SyncError(f"{url}: {exc}") from exc
    _refuse_expired(url, f"manifest of release {manifest.release_id}", manifest.expires_at,
                    "stale")
    return manifest


def _refuse_expired(url: str, what: str, expires_at: dt.datetime, state: str) -> None:
    """A signed record past its expiry is refused: the server re-signs nightly, so an expired
    one means a channel that is `state` (stale, frozen) or replayed."""
    if dt.datetime.now(dt.UTC) >= expires_at:
        raise SyncError(f"{url}: {what} expired at {expires_at.isoformat()} (the server "
                        f"re-signs nightly: the channel is {state} or replayed); keeping the "
                        "installed model")


def read_index(channel_url: str, device_class: str, state: Path,
               public_keys: list[Ed25519PublicKey]) -> ReleaseIndex:
    """The class's signed index, verified, not expired and not older than the newest this
    device has seen (which it then remembers). A channel without an index is refused, whether
    or not this device saw one before: its manifests alone cannot say what was withdrawn."""
    url = f"{channel_url.rstrip('/')}/{device_class}/{INDEX_FILE}"
    envelope = fetch(url, max_bytes=MANIFEST_MAX_BYTES)
    seen = seen_index_version(state)
    if envelope is None:
        raise SyncError(f"{url}: not found: a channel without its signed index is refused "
                        "(its manifests alone cannot show a withdrawn canary); keeping the "
                        "installed model")
    try:
        index = verify_index(envelope, public_keys, device_class=device_class)
    except ManifestError as exc:
        raise SyncError(f"{url}: {exc}") from exc
    _refuse_expired(url, f"index version {index.version}", index.expires_at, "frozen")
    if seen is not None and index.version < seen:
        raise SyncError(f"{url}: index version {index.version} is older than version {seen}, "
                        "which this device has seen: a replayed index is refused (rollback or "
                        "freeze attack); keeping the installed model")
    record_index_version(state, index.version)
    return index


def manifest_from_index(channel_url: str, index: ReleaseIndex, store: int,
                        public_keys: list[Ed25519PublicKey],
                        contracts: tuple[int, ...] = CONTRACTS) -> Manifest:
    """The manifest of the highest release the index lists for `store`: the very file the
    index names (by sha256), for the same release, channel and stores."""
    entry = index.choose(store)
    if entry is None:
        raise SyncError(f"index version {index.version} of {index.device_class!r} lists no "
                        f"release for store {store}")
    url = f"{channel_url.rstrip('/')}/{entry.manifest_path}"
    envelope = fetch(url, max_bytes=MANIFEST_MAX_BYTES)
    if envelope is None:
        raise SyncError(f"{url}: not found, though index version {index.version} lists release "
                        f"{entry.release_id} there")
    if hashlib.sha256(envelope).hexdigest() != entry.manifest_sha256:
        raise IndexMismatch(f"{url}: not the manifest index version {index.version} names for release "
                        f"{entry.release_id} (sha256 differs): an old (replayed) or altered "
                        "file, or the channel is being re-signed; keeping the installed model")
    manifest = _verified_manifest(url, envelope, public_keys, index.device_class, contracts)
    if (manifest.release_id, manifest.channel, manifest.stores) != \
            (entry.release_id, entry.channel, entry.stores):
        raise SyncError(f"{url}: manifest of release {manifest.release_id} on "
                        f"{manifest.channel} does not match the index's release "
                        f"{entry.release_id} on {entry.channel}")
    return manifest


def learn_roots(channel_url: str, state: Path,
                public_key_pem: bytes | None) -> tuple[Root, list[int]]:
    """The device's root after walking the channel's root versions from its own (before its
    first: from version 1 and a key it was given, its keyring or `public_key_pem`)."""
    base = channel_url.rstrip("/")

    def fetch_root(version: int) -> bytes | None:
        return fetch(f"{base}/{root_file(version)}", max_bytes=MAX_ROOT_BYTES)

    try:
        given = [] if read_root(state) else trusted_keys(state, public_key_pem)
        return update_root(state, fetch_root, given)
    except (ManifestError, TrustError) as exc:
        raise SyncError(f"{base}/root: {exc}") from exc


def smoke_test(content: bytes, manifest: Manifest) -> float:
    """Load the model in LiteRT and check it runs the manifest's input contract and reproduces
    its probe forecast (for contract 3, from features this device computes itself)."""
    try:
        forecaster = Forecaster(content)
        if forecaster.contract_version != manifest.contract_version:
            raise ValueError(f"the model runs input contract {forecaster.contract_version}, the "
                             f"manifest says {manifest.contract_version}")
        forecast = forecaster.forecast_one(*manifest.probe.inputs())
    except Exception as exc:  # noqa: BLE001 - any load or run failure refuses the model
        raise SyncError(f"model {manifest.sha256[:12]} does not run on LiteRT: {exc}") from exc
    expected = manifest.probe.forecast
    allowed = manifest.probe_tolerance * max(1.0, abs(expected))
    if not math.isfinite(forecast) or abs(forecast - expected) > allowed:
        raise SyncError(f"smoke test failed: the probe window gave {forecast!r}, the manifest "
                        f"expects {expected!r} (tolerance {allowed:.3g})")
    return forecast


def read_state(state: Path) -> dict:
    path = Path(state) / STATE_FILE
    if not path.exists():
        return {"current": None, "previous": None}
    return json.loads(path.read_text())


def install(state: Path, content: bytes, manifest: Manifest) -> None:
    """Write the model, then point installed.json at it; keep the previous model."""
    models = Path(state) / "models"
    models.mkdir(parents=True, exist_ok=True)
    model_path = models / f"{manifest.sha256}.tflite"
    write_atomically(model_path, content)
    before = read_state(state)
    entry = {"release_id": manifest.release_id, "channel": manifest.channel,
             "device_class": manifest.device_class, "model_version": manifest.model_version,
             "variant": manifest.variant, "sha256": manifest.sha256,
             "artifact_bytes": manifest.artifact_bytes, "model_file": str(model_path.name),
             "manifest_created_at": manifest.created_at,
             "contract_version": manifest.contract_version, "probe": manifest.probe.as_dict(),
             "installed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    after = {"current": entry, "previous": before["current"]}
    write_atomically(Path(state) / STATE_FILE, json.dumps(after, indent=2).encode())
    keep = {entry["model_file"], (before["current"] or {}).get("model_file")}
    for stale in models.glob("*.tflite"):
        if stale.name not in keep:
            stale.unlink()


def sync(channel_url: str, device_class: str, store: int, state: Path,
         public_key_pem: bytes | None = None, *,
         contracts: tuple[int, ...] = CONTRACTS) -> SyncResult:
    """Walk the channel's root versions, read the class's index signed by the root's release
    keys, fetch the manifest it names for this store, verify it (signature, expiry, class,
    size, sha256, LiteRT smoke test) and install. `public_key_pem` (or the keyring) vouches for
    the channel's first root only, before the device has one. `contracts`: the input
    contracts this agent feeds (a test passes (2,) to play an agent that predates version 3)."""
    root, learned = learn_roots(channel_url, state, public_key_pem)
    keys = root.role_keys("release")
    index = read_index(channel_url, device_class, state, keys)
    try:
        manifest = manifest_from_index(channel_url, index, store, keys, contracts)
    except IndexMismatch:
        # the server writes the manifests, then the index: read between the two, the index
        # is one signing behind; once more, and a file that still differs is refused
        index = read_index(channel_url, device_class, state, keys)
        manifest = manifest_from_index(channel_url, index, store, keys, contracts)
    installed = read_state(state)
    current = installed["current"]
    if current and manifest.release_id < current["release_id"] \
            and current["release_id"] not in index.rolled_back:
        raise SyncError(f"the {manifest.channel} manifest is release {manifest.release_id}, older "
                        f"than the installed release {current['release_id']}: a replayed manifest "
                        "is not installed (every rollback is published as a new release or "
                        "listed as rolled back in the signed index)")
    if current and current["sha256"] == manifest.sha256 \
            and (Path(state) / "models" / current["model_file"]).exists():
        if (current["channel"], current["release_id"]) != (manifest.channel, manifest.release_id):
            # same model under a new release (a canary that graduated): record the release
            current.update(channel=manifest.channel, release_id=manifest.release_id)
            after = {**installed, "current": current}
            write_atomically(Path(state) / STATE_FILE, json.dumps(after, indent=2).encode())
        return SyncResult("up-to-date", manifest, learned)
    url = f"{channel_url.rstrip('/')}/{manifest.artifact_path}"
    content = fetch(url, max_bytes=manifest.artifact_bytes)
    if content is None:
        raise SyncError(f"{url}: artifact not found")
    if len(content) != manifest.artifact_bytes:
        raise SyncError(f"{url}: {len(content)} bytes arrived, the manifest says "
                        f"{manifest.artifact_bytes} (truncated download?)")
    sha256 = hashlib.sha256(content).hexdigest()
    if sha256 != manifest.sha256:
        raise SyncError(f"{url}: sha256 {sha256} does not match the manifest's {manifest.sha256}")
    smoke_test(content, manifest)
    install(state, content, manifest)
    return SyncResult("installed", manifest, learned)


def installed_model(state: Path) -> tuple[dict, bytes]:
    """The current entry and its model bytes, re-checked against the recorded sha256."""
    current = read_state(state)["current"]
    if current is None:
        raise SyncError(f"{state}: no model installed; run `shelfcast-device sync` first")
    content = (Path(state) / "models" / current["model_file"]).read_bytes()
    if hashlib.sha256(content).hexdigest() != current["sha256"]:
        raise SyncError(f"{state}: installed model file does not match its sha256; run sync again")
    return current, content


def latency_us(state: Path, *, repeats: int = 1000) -> dict:
    """p50 and p90 of one forecast of the installed model on this device, in microseconds,
    over `repeats` invokes of the manifest's probe window after a warm-up."""
    current, content = installed_model(state)
    if "forecast" not in current.get("probe", {}):
        raise SyncError(f"{state}: installed by an older agent without a probe window; run sync again")
    p50, p90 = forecast_latency_us(Forecaster(content),
                                   *probe_from_dict(current["probe"]).inputs(), repeats=repeats)
    return {"model_version": current["model_version"], "variant": current["variant"],
            "device_class": current["device_class"], "artifact_bytes": current["artifact_bytes"],
            "repeats": repeats, "latency_us_p50": round(p50, 1), "latency_us_p90": round(p90, 1)}


def predict(state: Path, sales: list[float | None], day: dt.date) -> float:
    """Sales on `day` from the installed model, given the series' daily sales before it, oldest
    first (None: a day not recorded): at least the 14 days before it; a contract-3 model also
    reads up to a year of them (`device/features.py`), and forecasts better with 8 weeks or
    more."""
    if not WINDOW_DAYS <= len(sales) <= KEPT_DAYS:
        raise ValueError(f"need the {WINDOW_DAYS} daily sales before {day.isoformat()} (up to "
                         f"{KEPT_DAYS}), got {len(sales)}")
    bad = [(k + 1, v) for k, v in enumerate(sales)
           if v is not None and (not math.isfinite(v) or v < 0)]
    if bad:
        raise ValueError(f"daily sales value {bad[0][0]} is {bad[0][1]!r}: sales must be "
                         "finite and non-negative")
    window, weekday, static = series_inputs(sales, day)
    _, content = installed_model(state)
    forecaster = Forecaster(content)
    return forecaster.forecast_one(window, weekday,
                                   static if forecaster.contract_version == 3 else None)
