"""The release channel: a folder any static file host can serve, holding signed manifests and
the artifacts they name, and the Ed25519 key that signs them.

    CHANNEL/artifacts/<sha256>.tflite
    CHANNEL/<device_class>/canary.json   (only while a canary is open)
    CHANNEL/<device_class>/stable.json
    CHANNEL/<device_class>/index.json    every open channel of the class, signed (read first)
    CHANNEL/root/<N>.root.json           the chain of roots (TUF's root role), copied from KEYS/

and, beside the private signing key, in a folder that is never served::

    KEYS/release-signing.pem             the online release key (signs manifests and indexes)
    KEYS/root-signing.pem                the root key (signs the next root; may live offline)
    KEYS/root/<N>.root.json              every root version: the source of the channel's copies
    KEYS/channel.lock, channel.dirty     one writer at a time; a change that did not commit

The envelope format, the manifest and index fields are defined once, in `device/manifest.py`;
the root's in `device/trust.py`.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from device.files import write_atomically
from device.manifest import (
    INDEX_FILE,
    INDEX_FORMAT,
    INPUT_CONTRACTS,
    MANIFEST_FORMAT,
    MAX_ROLLED_BACK,
    key_id,
)
from device.trust import ROOT_FORMAT, root_file
from storage.errors import Conflict

PROBE_TOLERANCE = 1e-3  # relative; the device runs the same LiteRT, so this is headroom


class SigningKeyMissing(FileNotFoundError):
    pass


class SecretExposed(ValueError):
    """A private key or a database would sit in, or be, a folder that is served."""


# The only paths of a release folder a server publishes: everything else in it (a stray key,
# a database, an editor's backup) is a 404, whatever lands there later.
SERVED_PATH = re.compile(r"artifacts/[0-9a-f]{64}\.tflite"
                         r"|[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}/(index|stable|canary)\.json"
                         r"|root/[1-9][0-9]{0,9}\.root\.json")
DATABASE_SUFFIXES = (".sqlite", ".sqlite3", ".db", ".sqlite-wal", ".sqlite-journal", ".db-wal",
                     ".db-journal", ".sqlite-shm", ".db-shm")
SCAN_MAX_FILES = 100_000


def check_outside_served(path: Path, served: Iterable[Path], *,
                         what: str = "the private signing key") -> None:
    """Refuse (SecretExposed, one line) when `path` is inside, or is, any `served` folder (the
    release folder)."""
    path = Path(path).resolve()
    for folder in served:
        folder = Path(folder).resolve()
        if path == folder or path.is_relative_to(folder):
            raise SecretExposed(f"{what} {path} is inside the release folder {folder}, which "
                                "devices and any static host can read; move the key or the "
                                "release folder (settings signing_key / release_dir)")


def check_release_folder(root: Path, home: Path | None) -> None:
    """Refuse a release folder that is the home folder or holds it: the home holds the keys,
    the registry database and Prefect's database."""
    if home is None:
        return
    root, home = Path(root).resolve(), Path(home).resolve()
    if home == root or home.is_relative_to(root):
        raise SecretExposed(f"the release folder {root} is (or holds) the home folder "
                            f"{home}, whose keys and databases would be served; set release_dir "
                            "to a folder of its own, e.g. $SHELFCAST_HOME/releases")


def check_servable(root: Path, *, home: Path | None, secrets: Iterable[Path] = ()) -> None:
    """Refuse (SecretExposed, one line) to serve `root` when it is the home folder, holds one
    of `secrets` (the signing keys, the registry's SQLite file), a private key (PEM) or a
    database file."""
    check_release_folder(root, home)
    for secret in secrets:
        check_outside_served(secret, [root], what="the secret file")
    root = Path(root).resolve()
    for count, path in enumerate(root.rglob("*")):
        if count >= SCAN_MAX_FILES:
            break
        if not path.is_file():
            continue
        name = path.name.lower()
        if name.endswith(DATABASE_SUFFIXES) or _starts_with(path, b"SQLite format 3\x00"):
            found = "a database file"
        elif name.endswith((".pem", ".key", ".new")) and _holds(path, b"PRIVATE KEY"):
            found = "a private key"
        else:
            continue
        raise SecretExposed(f"refusing to serve {root}: it holds {found}, "
                            f"{path.relative_to(root)}; move it out of the release folder")


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(magic)) == magic
    except OSError:
        return False


def _holds(path: Path, marker: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            return marker in handle.read(8192)
    except OSError:
        return False


def public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name.removesuffix(".pem") + ".pub.pem")


ROOT_KEY_FILE = "root-signing.pem"
ROOT_VALID_DAYS = 365  # a root expires: rotate (or refresh) at least once a year
PENDING_SUFFIX = ".new"  # a key made by a rotation, until its root version is written


def root_key_path(private_path: Path) -> Path:
    """The default root key, beside the release key (move it offline: `keys rotate` then needs
    it back, see docs/threat-model.md)."""
    return Path(private_path).with_name(ROOT_KEY_FILE)


def root_history(private_path: Path) -> Path:
    return Path(private_path).parent / "root"


def init_signing_key(private_path: Path, *, force: bool = False,
                     served: Iterable[Path] = ()) -> tuple[Path, str]:
    """Make a new Ed25519 release key pair (private key mode 0600), a root key beside it and
    root version 1 naming both; return the release public key's path and key id. Refuses to
    replace an existing key unless `force` (a new chain of trust: every device must be enrolled
    again), and refuses a key path inside any `served` folder (the release folder)."""
    private_path = Path(private_path)
    check_outside_served(private_path, served)
    check_outside_served(root_key_path(private_path), served, what="the private root key")
    if private_path.exists() and not force:
        raise FileExistsError(f"{private_path} exists; devices trust it. Use `shelfcast keys "
                              "rotate` to replace it (devices learn the new key), or --force "
                              "(and enrol every device again with the new root)")
    key, root_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    if force:
        for old in root_history(private_path).glob("*.root.json"):
            old.unlink()
    _install_key(root_key_path(private_path), root_key)
    public = _install_key(private_path, key)
    _write_root(private_path, 1, release=[key], root=[root_key], threshold=1,
                signers=[root_key, key], by="keys init")
    return public, key_id(key.public_key())


def _install_key(private_path: Path, key: Ed25519PrivateKey) -> Path:
    """Write a private key (mode 0600, fsynced, renamed into place) and its public key; return
    the public key's path."""
    os.replace(_write_private_key(private_path, key), private_path)
    public = public_key_path(private_path)
    write_atomically(public, _public_pem(key))
    return public


def _write_private_key(private_path: Path, key: Ed25519PrivateKey) -> Path:
    """Write the private key (mode 0600, fsynced) beside `private_path`; return that file, to
    be renamed over `private_path`."""
    private_path.parent.mkdir(parents=True, exist_ok=True)
    pending = private_path.with_name(private_path.name + PENDING_SUFFIX)
    fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        handle.flush()
        os.fsync(handle.fileno())
    return pending


def _public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


# -- the chain of roots -------------------------------------------------------------------


def _write_root(private_path: Path, version: int, *, release: list[Ed25519PrivateKey],
                root: list[Ed25519PrivateKey], threshold: int,
                signers: list[Ed25519PrivateKey], by: str,
                now: dt.datetime | None = None) -> Path:
    """Sign root `version` with every key of `signers` and write it to the key folder's
    history (fsynced, renamed into place): the commit point of a rotation."""
    now = now or dt.datetime.now(dt.UTC)
    publics = {key_id(k.public_key()): _public_pem(k).decode("ascii") for k in release + root}
    payload = {"format": ROOT_FORMAT, "version": version, "created_at": now.isoformat(),
               "expires_at": (now + dt.timedelta(days=ROOT_VALID_DAYS)).isoformat(),
               "created_by": by, "keys": publics,
               "roles": {"root": {"key_ids": [key_id(k.public_key()) for k in root],
                                  "threshold": threshold},
                         "release": {"key_ids": [key_id(k.public_key()) for k in release],
                                     "threshold": 1}}}
    text = json.dumps(payload, sort_keys=True)
    signatures = [{"key_id": key_id(k.public_key()),
                   "signature": base64.b64encode(k.sign(text.encode("utf-8"))).decode("ascii")}
                  for k in {key_id(k.public_key()): k for k in signers}.values()]
    path = root_history(private_path) / Path(root_file(version)).name
    write_atomically(path, json.dumps({"payload": text, "signatures": signatures},
                                      indent=1).encode())
    return path


def newest_root(private_path: Path) -> tuple[int, dict] | None:
    """(version, payload) of the newest root in the key folder's history, None without one."""
    versions = sorted(int(p.name.split(".")[0]) for p in root_history(private_path).glob(
        "*.root.json") if p.name.split(".")[0].isdigit())
    if not versions:
        return None
    path = root_history(private_path) / Path(root_file(versions[-1])).name
    return versions[-1], json.loads(json.loads(path.read_bytes())["payload"])


def ensure_root(private_path: Path) -> None:
    """Give a key made before roots existed its root version 1 (and a root key beside it)."""
    if newest_root(private_path) is not None:
        return
    key = load_signing_key(private_path)
    root_path = root_key_path(private_path)
    root_key = load_signing_key(root_path) if root_path.exists() else None
    if root_key is None:
        root_key = Ed25519PrivateKey.generate()
        _install_key(root_path, root_key)
    _write_root(private_path, 1, release=[key], root=[root_key], threshold=1,
                signers=[root_key, key], by="first root of an existing key")


def finish_rotation(private_path: Path) -> None:
    """Bring the key files in line with the newest root after a rotation that stopped: a
    pending key its root names is moved into place; a pending key no root names (the rotation
    stopped before its root was written) is dropped. Refuses (one line) a release key that the
    newest root does not name."""
    newest = newest_root(private_path)
    if newest is None:
        return
    version, payload = newest
    for path, role in ((Path(private_path), "release"), (root_key_path(private_path), "root")):
        named = payload["roles"][role]["key_ids"]
        pending = path.with_name(path.name + PENDING_SUFFIX)
        if pending.exists():
            try:
                pending_id = key_id(load_signing_key(pending).public_key())
            except (ValueError, SigningKeyMissing):
                pending_id = None  # torn by a kill while it was written
            current_id = key_id(load_signing_key(path).public_key()) if path.exists() else None
            if pending_id in named and current_id not in named:
                _install_key(path, load_signing_key(pending))
            else:
                pending.unlink()
    if not Path(private_path).exists():
        return
    current = key_id(load_signing_key(private_path).public_key())
    if current not in payload["roles"]["release"]["key_ids"]:
        raise ValueError(f"the signing key {private_path} is {current}, but root version "
                         f"{version} names release key(s) "
                         f"{', '.join(payload['roles']['release']['key_ids'])}: restore that "
                         "key, or rotate with the root key to make a new root")


def rotate_signing_key(private_path: Path, *, by: str, root_keys: Iterable[Path] = (),
                       new_root_key: bool = False, root_threshold: int | None = None,
                       add_root_keys: Iterable[Path] = (),
                       now: dt.datetime | None = None) -> tuple[Path, str, str, int]:
    """Replace the release key (and with `new_root_key`, the default root key): write root
    version N+1 naming the new key(s), signed by a threshold of root N's root keys (the one
    beside the release key and `root_keys`, e.g. an offline one) and of its own; then move the
    new private keys into place. Returns (public key path, old key id, new key id, N+1). The
    caller holds the channel lock, copies the roots into the channel and re-signs every open
    release and index. A stop at any point leaves either the old chain or the new one, which
    `finish_rotation` completes."""
    private_path = Path(private_path)
    finish_rotation(private_path)
    version, payload = newest_root(private_path) or (0, None)
    if payload is None:
        raise ValueError(f"no root beside {private_path}: run `shelfcast keys init`")
    ids, threshold = payload["roles"]["root"]["key_ids"], payload["roles"]["root"]["threshold"]
    holders = {}
    for path in [root_key_path(private_path), *map(Path, root_keys)]:
        if path.exists():
            key = load_signing_key(path)
            holders[key_id(key.public_key())] = key
    signers = [holders[kid] for kid in ids if kid in holders]
    if len(signers) < threshold:
        raise ValueError(f"a rotation needs {threshold} of root version {version}'s root keys "
                         f"({', '.join(ids)}); this server holds {len(signers)}: bring the "
                         "offline root key(s) (--root-key FILE)")
    old_key = load_signing_key(private_path)
    new_key = Ed25519PrivateKey.generate()
    _write_private_key(private_path, new_key)
    root_set = [holders[kid] for kid in ids if kid in holders]
    if new_root_key:
        replaced = key_id(load_signing_key(root_key_path(private_path)).public_key())
        fresh = Ed25519PrivateKey.generate()
        _write_private_key(root_key_path(private_path), fresh)
        root_set = [fresh] + [k for k in root_set if key_id(k.public_key()) != replaced]
        signers = signers + [fresh]
    for path in add_root_keys:  # a second root key (e.g. kept offline) joins the root role
        added = load_signing_key(Path(path))
        if key_id(added.public_key()) not in {key_id(k.public_key()) for k in root_set}:
            root_set.append(added)
            signers.append(added)
    new_threshold = min(root_threshold or threshold, len(root_set))
    if new_threshold < 1:
        raise ValueError(f"root threshold must be at least 1, got {root_threshold!r}")
    _write_root(private_path, version + 1, release=[new_key], root=root_set,
                threshold=new_threshold, signers=signers, by=by, now=now)
    finish_rotation(private_path)
    return (public_key_path(private_path), key_id(old_key.public_key()),
            key_id(new_key.public_key()), version + 1)


def publish_roots(root: Path, private_path: Path) -> int:
    """Copy every root version of the key folder into the channel (`root/<N>.root.json`),
    oldest first, where missing or different; return the newest version."""
    newest = 0
    history = sorted(root_history(private_path).glob("*.root.json"),
                     key=lambda p: int(p.name.split(".")[0]))
    for path in history:
        served = Path(root) / "root" / path.name
        content = path.read_bytes()
        if not served.exists() or served.read_bytes() != content:
            write_atomically(served, content)
        newest = int(path.name.split(".")[0])
    for stale in (Path(root) / "root").glob("*.root.json"):
        if stale.name not in {path.name for path in history}:
            stale.unlink()  # of a chain `keys init --force` replaced
    return newest


def refresh_root(private_path: Path, *, within_days: int = 30) -> int | None:
    """Sign the same keys again as the next root version when the newest expires within
    `within_days` and the root keys beside the release key reach its threshold (the nightly
    does this); the new version, or None when nothing was due or the root keys are offline."""
    version, payload = newest_root(private_path) or (0, None)
    if payload is None or dt.datetime.fromisoformat(payload["expires_at"]) > \
            dt.datetime.now(dt.UTC) + dt.timedelta(days=within_days):
        return None
    ids, threshold = payload["roles"]["root"]["key_ids"], payload["roles"]["root"]["threshold"]
    path = root_key_path(private_path)
    held = load_signing_key(path) if path.exists() else None
    if held is None or key_id(held.public_key()) not in ids or threshold > 1 or len(ids) > 1:
        return None  # offline root keys: `keys rotate` with them renews the root
    _write_root(private_path, version + 1, release=[load_signing_key(private_path)],
                root=[held], threshold=1, signers=[held], by="nightly root refresh")
    return version + 1


# -- one writer at a time -----------------------------------------------------------------

LOCK_FILE = "channel.lock"
DIRTY_FILE = "channel.dirty"


class ChannelLock:
    """An exclusive lock on the channel, a file lock in the key folder (on the machine that
    holds the keys and writes the channel), and the marker of a change not committed yet."""

    def __init__(self, private_path: Path):
        folder = Path(private_path).parent
        folder.mkdir(parents=True, exist_ok=True)
        self.path, self.dirty_path = folder / LOCK_FILE, folder / DIRTY_FILE
        self._fd: int | None = None

    def acquire(self, *, what: str, wait_s: float) -> None:
        """Take the lock, waiting up to `wait_s` seconds; else Conflict (one line) naming who
        holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                    os.close(fd)
                    raise Conflict(f"{what} refused: another change of the release channel is "
                                   f"in progress ({holder or 'unknown'}); nothing was changed, "
                                   "try again when it ends") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what}, pid {os.getpid()}, since "
                      f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None

    def dirty(self) -> bool:
        return self.dirty_path.exists()

    def mark_dirty(self) -> None:
        if not self.dirty():
            write_atomically(self.dirty_path, b"a change of the channel has not committed yet\n")

    def mark_clean(self) -> None:
        self.dirty_path.unlink(missing_ok=True)


def load_signing_key(private_path: Path) -> Ed25519PrivateKey:
    if not Path(private_path).exists():
        raise SigningKeyMissing(f"no release signing key at {private_path}: run `shelfcast keys init`")
    key = load_pem_private_key(Path(private_path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{private_path}: expected an Ed25519 private key")
    return key


def signed_envelope(payload: dict, key: Ed25519PrivateKey) -> bytes:
    text = json.dumps(payload, sort_keys=True)
    signature = base64.b64encode(key.sign(text.encode("utf-8"))).decode("ascii")
    return json.dumps({"payload": text, "signature": signature,
                       "key_id": key_id(key.public_key())}, indent=1).encode()


def manifest_payload(*, release_id: int, channel: str, device_class: str, stores: list[int] | None,
                     model_version: int, variant: str, sha256: str, artifact_bytes: int,
                     probe: dict, created_at: str, expires_at: str) -> dict:
    return {
        "format": MANIFEST_FORMAT, "release_id": release_id, "channel": channel,
        "device_class": device_class, "stores": stores, "model_version": model_version,
        "variant": variant,
        "artifact": {"path": f"artifacts/{sha256}.tflite", "sha256": sha256,
                     "bytes": artifact_bytes},
        # a registered model's probe names its contract from version 3 on (device/probe.py)
        "input_contract": dict(INPUT_CONTRACTS[probe.get("contract", 2)]),
        "probe": {**probe, "tolerance": PROBE_TOLERANCE},
        "created_at": created_at,
        "expires_at": expires_at,
    }


def manifest_path(root: Path, device_class: str, channel: str) -> Path:
    return Path(root) / device_class / f"{channel}.json"


def publish(root: Path, payload: dict, content: bytes, key: Ed25519PrivateKey) -> Path:
    """Write the artifact (if new), then the signed manifest that names it; return the
    manifest's path. The artifact lands first so a device never sees a manifest whose file is
    not there yet."""
    sha256 = payload["artifact"]["sha256"]
    if hashlib.sha256(content).hexdigest() != sha256 or len(content) != payload["artifact"]["bytes"]:
        raise ValueError(f"artifact content does not match the manifest (sha256 {sha256[:12]})")
    artifact = Path(root) / payload["artifact"]["path"]
    if not artifact.exists():
        write_atomically(artifact, content)
    path = manifest_path(root, payload["device_class"], payload["channel"])
    write_atomically(path, signed_envelope(payload, key))
    return path


def index_path(root: Path, device_class: str) -> Path:
    return Path(root) / device_class / INDEX_FILE


def publish_index(root: Path, device_class: str, releases: list[dict], rolled_back: list[int],
                  key: Ed25519PrivateKey, *, created_at: str, expires_at: str) -> Path:
    """Sign and write a class's index: `releases` are its open channels, each
    {"release_id", "channel", "stores"}, whose manifests are already written (the index names
    each by the sha256 of its file); `rolled_back` the newest rolled-back release ids. Its
    version is above the index it replaces, so devices can refuse an older one: the signing
    time in milliseconds since 1970, or one more than the last version when that is higher, so
    a release folder made anew still continues above what devices have seen."""
    path = index_path(root, device_class)
    version = int(dt.datetime.fromisoformat(created_at).timestamp() * 1000)
    if path.exists():
        try:
            outer = json.loads(path.read_bytes())
            last = json.loads(outer["payload"])["version"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}: not an index this server wrote; move it away to start "
                             "the index over") from None
        # an index signed by another key (one a rotation revoked, perhaps stolen and used to
        # fast-forward the version) does not set the count: devices forget it with that key
        if outer.get("key_id") == key_id(key.public_key()):
            version = max(version, int(last) + 1)
    entries = []
    for release in sorted(releases, key=lambda r: r["release_id"]):
        manifest = manifest_path(root, device_class, release["channel"])
        entries.append({**release, "manifest": f"{device_class}/{release['channel']}.json",
                        "sha256": hashlib.sha256(manifest.read_bytes()).hexdigest()})
    payload = {"format": INDEX_FORMAT, "device_class": device_class, "version": version,
               "created_at": created_at, "expires_at": expires_at, "releases": entries,
               "rolled_back": sorted(rolled_back)[-MAX_ROLLED_BACK:]}
    write_atomically(path, signed_envelope(payload, key))
    return path


def indexed_release_ids(root: Path, device_class: str) -> list[int]:
    """The release ids the class's index on disk lists open, [] without a readable one."""
    try:
        payload = json.loads(json.loads(index_path(root, device_class).read_bytes())["payload"])
        return [int(entry["release_id"]) for entry in payload["releases"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def withdraw(root: Path, device_class: str, channel: str) -> None:
    """Take a channel's manifest down (its devices fall back to the stable manifest)."""
    manifest_path(root, device_class, channel).unlink(missing_ok=True)
