"""The file store by URL: artifacts, their weights, and the files a night's steps hand each
other (windows, weights, exports) all go through these few functions.

A location is a URL: `file:///...` or a plain path for a local folder or a shared mount (the
default), `s3://bucket/prefix` for an S3-compatible object store, or any other fsspec
protocol that is installed. Credentials never sit in the URL: they come from the environment
the filesystem library reads (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, for a
store that is not AWS, AWS_ENDPOINT_URL), so they appear in no setting, log or error line.
A Dask worker on another machine then needs the store's URL and its credentials, never the
flow's disk.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from device.files import write_atomically
from storage.errors import RegistryError, Unavailable

LOCAL = "file"


@dataclass(frozen=True)
class Transfers:
    """What a process moved through the store: bytes read and written, and the seconds the
    reads (existence checks included) and the writes (removals included) took."""

    read_bytes: int = 0
    read_s: float = 0.0
    written_bytes: int = 0
    write_s: float = 0.0

    def __add__(self, other: Transfers) -> Transfers:
        return Transfers(self.read_bytes + other.read_bytes, self.read_s + other.read_s,
                         self.written_bytes + other.written_bytes, self.write_s + other.write_s)

    def __sub__(self, other: Transfers) -> Transfers:
        return Transfers(self.read_bytes - other.read_bytes, self.read_s - other.read_s,
                         self.written_bytes - other.written_bytes, self.write_s - other.write_s)


_moved = Transfers()
_moved_lock = threading.Lock()


def transfers() -> Transfers:
    """This process's transfers through the store since it started (a night sums its
    processes' differences)."""
    return _moved


@contextlib.contextmanager
def _counted(kind: str) -> Iterator[list[int]]:
    """Count the block's seconds as a `read` or a `write`, and the bytes it appends to the
    list it gets as read or written."""
    global _moved
    moved: list[int] = []
    started = time.perf_counter()
    try:
        yield moved
    finally:
        seconds, size = time.perf_counter() - started, sum(moved)
        counted = Transfers(read_bytes=size, read_s=seconds) if kind == "read" else \
            Transfers(written_bytes=size, write_s=seconds)
        with _moved_lock:
            _moved = _moved + counted


def as_url(location: str | Path) -> str:
    """`location` as a URL: a path (relative ones resolved) becomes a file:// URL; a URL stays
    as it is, once checked (`check_url`)."""
    text = str(location)
    if "://" not in text:
        return Path(text).resolve().as_uri()
    check_url(text)
    return text.rstrip("/") if not text.startswith("file://") else text


def check_url(url: str) -> str:
    """`url` if a store can be reached by it, else a one-line RegistryError: an unknown or
    uninstalled protocol, or credentials written into the URL."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise RegistryError(f"store URL {parts.scheme}://{parts.hostname or ''}/...: credentials do "
                            "not belong in the URL; set them in the environment (for S3: "
                            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
    if parts.scheme != LOCAL:
        import fsspec

        try:
            fsspec.get_filesystem_class(parts.scheme)
        except (ValueError, ImportError) as exc:
            raise RegistryError(f"store URL {url[:80]!r}: {str(exc).splitlines()[0][:200]}") from None
    return url


def join(url: str, *parts: str) -> str:
    """The URL of `parts` under `url`."""
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])


def local_path(url: str) -> Path | None:
    """The path of a file:// URL; None for any other store."""
    return Path(url.removeprefix("file://")) if url.startswith("file://") else None


@functools.lru_cache(maxsize=8)
def _filesystem(protocol: str):
    """One filesystem per protocol and process. No listings cache: other processes (the
    night's workers) write to the same store."""
    import fsspec

    return fsspec.filesystem(protocol, skip_instance_cache=True, use_listings_cache=False)


def _remote(url: str):
    """(filesystem, path) of a URL that is not file://."""
    check_url(url)
    protocol, _, path = url.partition("://")
    return _filesystem(protocol), path


def read_bytes(url: str) -> bytes:
    """The bytes at `url`: FileNotFoundError when there is nothing (a local file's or an
    object's), Unavailable when the store cannot be reached."""
    with _counted("read") as moved:
        path = local_path(url)
        if path is not None:
            content = path.read_bytes()
        else:
            fs, key = _remote(url)
            with _reaching(url, "read"):
                content = fs.cat_file(key)
        moved.append(len(content))
    return content


def write_bytes(url: str, content: bytes) -> None:
    """Write `content` at `url`, whole or not at all: a local file atomically (temporary file,
    rename); an object store's put is atomic per object."""
    with _counted("write") as moved:
        path = local_path(url)
        if path is not None:  # a full or read-only disk speaks for itself (errno)
            write_atomically(path, content)
        else:
            fs, key = _remote(url)
            with _reaching(url, "written"):
                fs.pipe_file(key, content)
        moved.append(len(content))


def exists(url: str) -> bool:
    with _counted("read"):
        path = local_path(url)
        if path is not None:
            return path.is_file()
        fs, key = _remote(url)
        with _reaching(url, "read"):
            return fs.exists(key)


def remove_tree(url: str) -> None:
    """Remove everything under `url` (nothing there is no error)."""
    import shutil

    with _counted("write"):
        path = local_path(url)
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
            return
        fs, key = _remote(url)
        try:
            fs.rm(key, recursive=True)
        except FileNotFoundError:
            pass


@contextlib.contextmanager
def _reaching(url: str, verb: str) -> Iterator[None]:
    """A missing object as FileNotFoundError naming it; any other failure of the store as
    Unavailable, in one line (the filesystem's own words, never its credentials)."""
    try:
        yield
    except FileNotFoundError:
        raise FileNotFoundError(f"{_shown(url)}: not in the store") from None
    except OSError as exc:
        raise Unavailable(f"{_shown(url)}: the store could not be {verb}: {_reason(exc)}") from None


def _shown(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."


def _reason(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
