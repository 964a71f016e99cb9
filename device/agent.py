"""The store-device agent: fetch the signed manifest for this device, verify everything, and
swap the new model in atomically; forecast with the installed model.

State folder layout::

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.files import write_atomically
from device.manifest import CHANNELS, Manifest, ManifestError, load_public_key, verify_envelope
from device.runtime import Forecaster, forecast_latency_us

FETCH_TIMEOUT_S = 30
MANIFEST_MAX_BYTES = 1 << 20
STATE_FILE = "installed.json"


class SyncError(RuntimeError):
    """Why a sync refused a release; the installed model is unchanged."""


@dataclass(frozen=True)
class SyncResult:
    status: str  # installed | up-to-date
    manifest: Manifest


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
        raise SyncError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except FileNotFoundError:
        return None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, FileNotFoundError):
            return None
        raise SyncError(f"{url}: {exc.reason}") from exc
    except http.client.IncompleteRead as exc:
        raise SyncError(f"{url}: truncated download ({len(exc.partial)} bytes arrived)") from exc
    except OSError as exc:
        raise SyncError(f"{url}: {exc}") from exc
    if len(content) > max_bytes:
        raise SyncError(f"{url}: larger than the {max_bytes} bytes expected")
    return content


def choose_manifest(channel_url: str, device_class: str, store: int, public_key) -> Manifest:
    """The canary manifest if this store is in the canary group, else the stable one."""
    base = channel_url.rstrip("/")
    found: dict[str, Manifest] = {}
    for channel in CHANNELS:
        url = f"{base}/{device_class}/{channel}.json"
        envelope = fetch(url, max_bytes=MANIFEST_MAX_BYTES)
        if envelope is None:
            continue
        try:
            manifest = verify_envelope(envelope, public_key, device_class=device_class)
        except ManifestError as exc:
            raise SyncError(f"{url}: {exc}") from exc
        if manifest.channel != channel:
            raise SyncError(f"{url}: manifest says channel {manifest.channel!r}")
        if dt.datetime.now(dt.UTC) >= manifest.expires_at:
            raise SyncError(f"{url}: manifest of release {manifest.release_id} expired at "
                            f"{manifest.expires_at.isoformat()} (the server re-signs nightly: "
                            "the channel is stale or replayed); keeping the installed model")
        found[channel] = manifest
    for channel in CHANNELS:
        if channel in found and found[channel].covers(store):
            return found[channel]
    raise SyncError(f"{base}: no release for device class {device_class!r} and store {store}")


def smoke_test(content: bytes, manifest: Manifest) -> float:
    """Load the model in LiteRT and check it reproduces the manifest's probe forecast."""
    try:
        forecaster = Forecaster(content)
        forecast = forecaster.forecast_one(np.asarray(manifest.probe_history),
                                           manifest.probe_weekday)
    except Exception as exc:  # noqa: BLE001 - any load or run failure refuses the model
        raise SyncError(f"model {manifest.sha256[:12]} does not run on LiteRT: {exc}") from exc
    allowed = manifest.probe_tolerance * max(1.0, abs(manifest.probe_forecast))
    if not math.isfinite(forecast) or abs(forecast - manifest.probe_forecast) > allowed:
        raise SyncError(f"smoke test failed: the probe window gave {forecast!r}, the manifest "
                        f"expects {manifest.probe_forecast!r} (tolerance {allowed:.3g})")
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
             "probe": {"history": manifest.probe_history, "weekday": manifest.probe_weekday,
                       "forecast": manifest.probe_forecast},
             "installed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    after = {"current": entry, "previous": before["current"]}
    write_atomically(Path(state) / STATE_FILE, json.dumps(after, indent=2).encode())
    keep = {entry["model_file"], (before["current"] or {}).get("model_file")}
    for stale in models.glob("*.tflite"):
        if stale.name not in keep:
            stale.unlink()


def sync(channel_url: str, device_class: str, store: int, state: Path,
         public_key_pem: bytes) -> SyncResult:
    """Fetch, verify (signature, class, size, sha256, LiteRT smoke test) and install."""
    try:
        public_key = load_public_key(public_key_pem)
    except ManifestError as exc:
        raise SyncError(f"public key: {exc}") from exc
    manifest = choose_manifest(channel_url, device_class, store, public_key)
    installed = read_state(state)
    current = installed["current"]
    if current and manifest.release_id < current["release_id"]:
        raise SyncError(f"the {manifest.channel} manifest is release {manifest.release_id}, older "
                        f"than the installed release {current['release_id']}: a replayed manifest "
                        "is not installed (every rollback is published as a new release)")
    if current and current["sha256"] == manifest.sha256 \
            and (Path(state) / "models" / current["model_file"]).exists():
        if (current["channel"], current["release_id"]) != (manifest.channel, manifest.release_id):
            # same model under a new release (a canary that graduated): record the release
            current.update(channel=manifest.channel, release_id=manifest.release_id)
            after = {**installed, "current": current}
            write_atomically(Path(state) / STATE_FILE, json.dumps(after, indent=2).encode())
        return SyncResult("up-to-date", manifest)
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
    return SyncResult("installed", manifest)


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
    if "weekday" not in current.get("probe", {}):
        raise SyncError(f"{state}: installed by an older agent without a probe window; run sync again")
    p50, p90 = forecast_latency_us(Forecaster(content), np.asarray(current["probe"]["history"]),
                                   current["probe"]["weekday"], repeats=repeats)
    return {"model_version": current["model_version"], "variant": current["variant"],
            "device_class": current["device_class"], "artifact_bytes": current["artifact_bytes"],
            "repeats": repeats, "latency_us_p50": round(p50, 1), "latency_us_p90": round(p90, 1)}


def predict(state: Path, history: list[float], day: dt.date) -> float:
    """Sales on `day` from the installed model, given the 14 raw daily sales before it,
    oldest first."""
    values = np.asarray(history, dtype=np.float64)
    if values.shape != (14,):
        raise ValueError(f"--history needs 14 daily sales, got {values.size}")
    bad = [(k + 1, v) for k, v in enumerate(history) if not math.isfinite(v) or v < 0]
    if bad:
        raise ValueError(f"--history value {bad[0][0]} is {bad[0][1]!r}: sales must be finite "
                         "and non-negative")
    _, content = installed_model(state)
    return Forecaster(content).forecast_one(values, day.weekday())
