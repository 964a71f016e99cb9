"""The artifact store: content-addressed `.tflite` files under a folder, written atomically."""

from __future__ import annotations

import hashlib
from pathlib import Path

from device.files import write_atomically


def save_artifact(root: Path, run_key: str, variant: str, content: bytes) -> tuple[str, str]:
    """Write `content` to root/run_key/variant-<sha12>.tflite; return (uri, sha256).

    Writing twice is harmless: the same content lands at the same path.
    """
    sha256 = hashlib.sha256(content).hexdigest()
    folder = Path(root) / run_key
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{variant}-{sha256[:12]}.tflite"
    if not path.exists():
        write_atomically(path, content)
    return path.resolve().as_uri(), sha256


def read_artifact(uri: str) -> bytes:
    if not uri.startswith("file://"):
        raise ValueError(f"unsupported artifact URI {uri!r}: only file:// is stored here")
    return Path(uri.removeprefix("file://")).read_bytes()
