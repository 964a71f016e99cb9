"""Device reports: what this device tells the fleet service (installed release, last sync,
smoke test, latency, free space), sent with the standard library only and queued in the state
folder while the service cannot be reached.

State folder additions::

    STATE/last_sync.json             {"result": ..., "reason": ..., "at": ...} of the last sync
    STATE/report-queue/<ns>-<pid>.json  reports not delivered yet, oldest first by name
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from device.agent import SyncError, installed_model, read_state
from device.files import write_atomically
from device.manifest import MAX_PROBE_TOLERANCE
from device.probe import probe_from_dict
from device.runtime import Forecaster, forecast_latency_us

LAST_SYNC_FILE = "last_sync.json"
QUEUE_DIR = "report-queue"
MAX_QUEUED = 100  # the newest kept; a device offline for months must not fill its disk
MAX_REASON_CHARS = 500  # what the service accepts
SEND_TIMEOUT_S = 15
LATENCY_REPEATS = 200
# statuses after which a queued report is dropped: the service will never accept it
UNDELIVERABLE = (400, 413, 422)


@dataclass(frozen=True)
class Delivery:
    sent: int  # reports the service accepted now
    queued: int  # reports still waiting in the queue
    dropped: list[str]  # why queued reports the service refused for good were dropped
    problem: str | None = None  # why the queue still waits
    unreachable: bool = False  # it waits because the service was not reached (or erred: 5xx)


def record_sync(state: Path, result: str, reason: str = "") -> None:
    """Remember how the last sync went, for the next report. Best effort: a state folder that
    cannot be written must not hide why the sync itself failed."""
    entry = {"result": result, "reason": reason[:MAX_REASON_CHARS],
             "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    try:
        write_atomically(Path(state) / LAST_SYNC_FILE, json.dumps(entry).encode())
    except OSError:
        pass


def build_report(state: Path) -> dict:
    """This device's report, from its state folder and a smoke test of the installed model."""
    state = Path(state)
    current = read_state(state)["current"]
    last_sync = _read_json(state / LAST_SYNC_FILE) or {}
    smoke_test_ok, p50 = smoke_test_installed(state) if current else (None, None)
    return {
        "reported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "release_id": current and current["release_id"],
        "sha256": current and current["sha256"],
        "sync_result": last_sync.get("result"),
        "sync_reason": str(last_sync.get("reason") or "")[:MAX_REASON_CHARS],
        "smoke_test_ok": smoke_test_ok,
        "latency_us_p50": p50,
        "free_bytes": shutil.disk_usage(state).free,
        "forecasts_made": None,  # the agent does not count its forecasts yet
    }


def smoke_test_installed(state: Path) -> tuple[bool, float | None]:
    """(passed, p50 µs): the installed model verifies against its sha256, runs on LiteRT and
    reproduces its manifest's probe forecast; its latency only when it passed."""
    try:
        current, content = installed_model(state)
        probe = probe_from_dict(current["probe"])
        forecaster = Forecaster(content)
        forecast = forecaster.forecast_one(*probe.inputs())
        allowed = MAX_PROBE_TOLERANCE * max(1.0, abs(probe.forecast))
        if not math.isfinite(forecast) or abs(forecast - probe.forecast) > allowed:
            return False, None
        p50, _ = forecast_latency_us(forecaster, *probe.inputs(), repeats=LATENCY_REPEATS)
    except (SyncError, OSError, KeyError, ValueError, RuntimeError):
        return False, None
    return True, round(p50, 1)


def send_report(server: str, token_file: Path, state: Path) -> Delivery:
    """Queue this device's report, then send the queue oldest first to `server`'s
    /api/v1/reports. Stops at the first report that cannot be delivered now (service
    unreachable, token refused, server error) and keeps it and the rest queued."""
    token = read_report_target(server, token_file)
    queue = Path(state) / QUEUE_DIR
    queue.mkdir(parents=True, exist_ok=True)
    report = build_report(state)
    write_atomically(queue / f"{time.time_ns():020d}-{os.getpid()}.json",
                     json.dumps(report).encode())
    _prune(queue)
    url = f"{server.rstrip('/')}/api/v1/reports"
    sent, dropped, problem, unreachable = 0, [], None, False
    for path in sorted(queue.glob("*.json")):
        status, detail = _post(url, token, path.read_bytes())
        if 200 <= status < 300:
            path.unlink()
            sent += 1
        elif status in UNDELIVERABLE:
            path.unlink()
            dropped.append(f"HTTP {status}: {detail}")
        else:
            problem = detail if status == 0 else f"{url}: HTTP {status}: {detail}"
            unreachable = status == 0 or status >= 500
            break
    return Delivery(sent, len(list(queue.glob("*.json"))), dropped, problem, unreachable)


def read_report_target(server: str, token_file: Path, *, option: str = "--server") -> str:
    """The device token, once `server` is an http(s) URL and `token_file` holds a token;
    checked before a sync so a bad command line changes nothing."""
    if not server.startswith(("http://", "https://")):
        raise ValueError(f"{option} must be an http:// or https:// URL, got {server[:80]!r}")
    token = Path(token_file).read_text().strip()
    if not token:
        raise ValueError(f"{token_file}: empty token file")
    return token


def _post(url: str, token: str, body: bytes) -> tuple[int, str]:
    """(HTTP status, the service's reason); status 0 when the service was not reached."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        try:
            detail = str(json.loads(exc.read(4096)).get("detail", exc.reason))
        except (ValueError, AttributeError, OSError):
            detail = str(exc.reason)
        return exc.code, detail[:200]
    except (urllib.error.URLError, OSError) as exc:
        return 0, f"{url}: {getattr(exc, 'reason', exc)}"


def _prune(queue: Path) -> None:
    for stale in sorted(queue.glob("*.json"))[:-MAX_QUEUED]:
        stale.unlink(missing_ok=True)


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
