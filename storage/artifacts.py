"""The artifact store: content-addressed `.tflite` files under a folder, written atomically, and
the arrays a night's steps hand each other (windows, weights) beside them."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

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
    """The bytes at a file:// URI of the artifact store (an artifact, or weights beside one)."""
    if not uri.startswith("file://"):
        raise ValueError(f"unsupported artifact URI {uri!r}: only file:// is stored here")
    return Path(uri.removeprefix("file://")).read_bytes()


def weights_uri(artifact_uri: str) -> str:
    """Where the Keras weights of the model behind `artifact_uri` are kept: beside it, as
    `<variant>-<sha12>.weights.h5` (warm starts fine-tune from them)."""
    if not artifact_uri.endswith(".tflite"):
        raise ValueError(f"not a .tflite artifact URI: {artifact_uri[:80]!r}")
    return artifact_uri.removesuffix(".tflite") + ".weights.h5"


def save_weights(artifact_uri: str, content: bytes) -> str:
    """Write the Keras weights of the model behind `artifact_uri` beside it; return their URI."""
    uri = weights_uri(artifact_uri)
    write_atomically(Path(uri.removeprefix("file://")), content)
    return uri


def weights_stored(artifact_uri: str) -> bool:
    return Path(weights_uri(artifact_uri).removeprefix("file://")).is_file()


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write named arrays as one `.npz` file (no pickled objects), atomically, so a reader on
    another machine sees the whole file or none. Returns the path."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, buffer.getvalue())
    return path


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays `save_arrays` wrote, in their order."""
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}
