"""Nights in flight, on the local disk: a marker per running night, so a night that died
without telling the registry (killed hard, or the registry down when it failed) is reported as
failed by the next night."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from device.files import write_atomically

FOLDER = "nights-in-flight"


@dataclass(frozen=True)
class UnrecordedFailure:
    flow_run: str
    error: str
    marker: Path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def marker_path(home: Path, flow_run: str) -> Path:
    return Path(home) / FOLDER / f"{flow_run}.json"


def begin_night(home: Path, flow_run: str) -> Path:
    """Mark the night as running in this process."""
    marker = marker_path(home, flow_run)
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(marker, json.dumps({"flow_run": flow_run, "pid": os.getpid()}).encode())
    return marker


def end_night(marker: Path) -> None:
    """The night's outcome is in the registry: forget the marker."""
    Path(marker).unlink(missing_ok=True)


def note_failure(marker: Path, error: str) -> None:
    """The night failed and the registry could not be told: keep why, for the next night."""
    data = json.loads(Path(marker).read_text())
    write_atomically(Path(marker), json.dumps({**data, "pid": None, "error": error}).encode())


def unrecorded_failures(home: Path, *, running: str | None = None) -> list[UnrecordedFailure]:
    """Markers of nights that are not running any more and whose failure the registry has not
    heard of: killed (their process is gone) or failed while the registry was down."""
    folder = Path(home) / FOLDER
    found = []
    for marker in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            data = json.loads(marker.read_text())
        except (OSError, ValueError):
            data = {"flow_run": marker.stem, "pid": None, "error": "unreadable night marker"}
        if data.get("flow_run") == running:
            continue
        pid = data.get("pid")
        if pid is not None and _pid_alive(int(pid)) and int(pid) != os.getpid():
            continue  # another night is running now
        error = data.get("error") or "the night stopped without an outcome (killed, or its " \
                                     "machine went down)"
        found.append(UnrecordedFailure(str(data.get("flow_run", marker.stem)), error, marker))
    return found
