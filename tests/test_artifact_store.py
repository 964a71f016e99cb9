"""The artifact store by URL (storage/store.py): a local folder by default, an S3-compatible
object store on loopback here, the same calls for both; and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from storage import store
from storage.artifacts import load_arrays, read_artifact, save_arrays, save_artifact
from storage.errors import RegistryError


@pytest.fixture(params=["folder", "s3"])
def root(request, tmp_path):
    if request.param == "folder":
        return store.as_url(tmp_path / "artifacts")
    request.getfixturevalue("object_store")
    return "s3://nights/shelfcast"


def test_artifacts_and_arrays_go_through_the_same_calls_on_a_folder_and_an_object_store(root):
    uri, sha256 = save_artifact(root, "2017-12-31", "lstm16", b"\x00tflite")
    assert uri.startswith(root) and uri.endswith(f"lstm16-{sha256[:12]}.tflite")
    assert read_artifact(uri) == b"\x00tflite"
    assert save_artifact(root, "2017-12-31", "lstm16", b"\x00tflite") == (uri, sha256)

    work = store.join(root, "2017-12-31", "work-abc")
    arrays = {"x": np.arange(6.0).reshape(2, 3), "y": np.array([1, 2], np.int32)}
    save_arrays(store.join(work, "windows.npz"), arrays)
    back = load_arrays(store.join(work, "windows.npz"))
    assert list(back) == ["x", "y"] and all(np.array_equal(back[k], arrays[k]) for k in arrays)

    store.remove_tree(work)
    assert not store.exists(store.join(work, "windows.npz"))
    assert store.exists(uri)  # only the build's working files went
    with pytest.raises(FileNotFoundError, match="work-abc/windows.npz"):
        read_artifact(store.join(work, "windows.npz"))


def test_the_store_counts_the_bytes_it_moves_and_the_seconds_they_took(root):
    url = store.join(root, "counted", "weights.npz")
    before = store.transfers()
    store.write_bytes(url, b"w" * 3000)
    assert store.exists(url)
    assert store.read_bytes(url) == b"w" * 3000
    moved = store.transfers() - before
    assert (moved.read_bytes, moved.written_bytes) == (3000, 3000)
    assert moved.read_s > 0 and moved.write_s > 0
    with pytest.raises(FileNotFoundError):
        store.read_bytes(store.join(root, "counted", "missing"))
    assert (store.transfers() - before).read_bytes == 3000  # nothing read, nothing counted


def test_a_store_url_with_credentials_in_it_is_refused_without_echoing_them():
    with pytest.raises(RegistryError, match="credentials do not belong in the URL") as refused:
        store.as_url("s3://AKIAKEY:hunter2secret@nights/shelfcast")
    assert "hunter2secret" not in str(refused.value) and "AKIAKEY" not in str(refused.value)


def test_an_unknown_store_protocol_is_one_line_naming_it():
    with pytest.raises(RegistryError, match="nosuchproto") as refused:
        store.as_url("nosuchproto://bucket/x")
    assert "\n" not in str(refused.value)


def test_the_artifact_store_setting_is_checked_when_settings_load(monkeypatch, tmp_path):
    from pydantic import ValidationError

    from storage.settings import Settings

    assert Settings(home=tmp_path).artifact_store_url == (tmp_path / "artifacts").resolve().as_uri()
    assert Settings(home=tmp_path, artifact_store="s3://nights/x/").artifact_store_url == \
        "s3://nights/x"
    with pytest.raises(ValidationError, match="credentials do not belong"):
        Settings(home=tmp_path, artifact_store="s3://user:pw@nights/x")
