"""The artifact store: content-addressed `.tflite` files under a store URL (a folder by
default, or an object store: `storage.store`), with the Keras weights of each model beside it,
and the arrays a night's steps hand each other (windows, weights) as `.npz` bytes."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from storage import store


def save_artifact(root: str | Path, run_key: str, variant: str, content: bytes) -> tuple[str, str]:
    """Write `content` to <root>/run_key/variant-<sha12>.tflite (`root` a folder or a store
    URL); return (uri, sha256).

    Writing twice is harmless: the same content lands at the same place.
    """
    sha256 = hashlib.sha256(content).hexdigest()
    uri = store.join(store.as_url(root), run_key, f"{variant}-{sha256[:12]}.tflite")
    if not store.exists(uri):
        store.write_bytes(uri, content)
    return uri, sha256


def read_artifact(uri: str) -> bytes:
    """The bytes at an artifact store URI (an artifact, or weights beside one)."""
    return store.read_bytes(uri)  # an unknown protocol is refused there, in one line


def weights_uri(artifact_uri: str) -> str:
    """Where the Keras weights of the model behind `artifact_uri` are kept: beside it, as
    `<variant>-<sha12>.weights.h5` (warm starts fine-tune from them)."""
    if not artifact_uri.endswith(".tflite"):
        raise ValueError(f"not a .tflite artifact URI: {artifact_uri[:80]!r}")
    return artifact_uri.removesuffix(".tflite") + ".weights.h5"


def save_weights(artifact_uri: str, content: bytes) -> str:
    """Write the Keras weights of the model behind `artifact_uri` beside it; return their URI."""
    uri = weights_uri(artifact_uri)
    store.write_bytes(uri, content)
    return uri


def weights_stored(artifact_uri: str) -> bool:
    return store.exists(weights_uri(artifact_uri))


def save_arrays(location: str | Path, arrays: dict[str, np.ndarray]) -> str:
    """Write named arrays as one `.npz` file (no pickled objects) at `location` (a path or a
    store URL), whole or not at all, so a reader on another machine sees all of it or none.
    Returns its URL."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    url = store.as_url(location)
    store.write_bytes(url, buffer.getvalue())
    return url


def load_arrays(location: str | Path) -> dict[str, np.ndarray]:
    """The arrays `save_arrays` wrote, in their order."""
    content = store.read_bytes(store.as_url(location))
    with np.load(io.BytesIO(content), allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}
