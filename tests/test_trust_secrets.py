"""Secrets stay secret and canaries stay real: no private key or database is ever written to or
served from the release folder, and canary stores are checked against the enrolled fleet
before anything is signed (issue 27, items 4 and 5)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from factories import promote, run_cli

from device.manifest import ManifestError, parse_index
from storage.catalog import Catalog
from storage.channel import SecretExposed, check_servable, init_signing_key
from storage.devices import enroll_device
from storage.registry import RegistryError
from storage.settings import Settings


def database(shipping) -> str:
    with shipping["sessions"]() as session:
        return session.get_bind().url.render_as_string(hide_password=False)


# -- item 4: secrets -----------------------------------------------------------------------


def test_keys_init_refuses_a_private_key_inside_the_release_folder(tmp_path, monkeypatch):
    releases = tmp_path / "releases"
    code, out, err = run_cli(["keys", "init"], monkeypatch, tmp_path,
                             SHELFCAST_RELEASE_DIR=str(releases),
                             SHELFCAST_SIGNING_KEY=str(releases / "keys" / "release.pem"))
    assert code == 2 and err.count("\n") == 1 and "inside the release folder" in err
    assert not list(releases.rglob("*.pem")), "nothing written"


def test_a_release_folder_equal_to_the_home_folder_is_refused_with_one_line(
        tmp_path, monkeypatch, shipping):
    home = tmp_path / "home"
    code, _, err = run_cli(["keys", "init"], monkeypatch, tmp_path,
                           SHELFCAST_RELEASE_DIR=str(home))
    assert code == 2 and err.count("\n") == 1 and "is (or holds) the home folder" in err
    assert not list(home.rglob("*.pem"))
    target = replace(shipping["target"], home=shipping["root"])
    with pytest.raises(RegistryError, match="is \\(or holds\\) the home folder"):
        promote(shipping, shipping["v1"], target=target)
    catalog = Catalog(Settings(home=home, release_dir=home))
    from service.app import create_app
    with pytest.raises(SecretExposed, match="is \\(or holds\\) the home folder"):
        create_app(catalog)


@pytest.mark.parametrize("planted, content, found", [
    ("sensor/release.pem", None, "a private key"),
    ("backup/registry.sqlite", b"SQLite format 3\x00...", "a database file"),
    ("prefect.db", b"", "a database file"),
    ("old/keys/release-signing.pem.new", None, "a private key"),
])
def test_serve_refuses_a_release_folder_holding_a_private_key_or_a_database(
        tmp_path, planted, content, found):
    root = tmp_path / "releases"
    path = root / planted
    if content is None:
        init_signing_key(tmp_path / "k" / "key.pem")
        content = (tmp_path / "k" / "key.pem").read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    with pytest.raises(SecretExposed, match=f"holds {found}") as refused:
        check_servable(root, home=tmp_path / "home")
    assert "\n" not in str(refused.value) and "PRIVATE" not in str(refused.value)


def test_the_served_channel_publishes_only_channel_paths(shipping, tmp_path):
    from fastapi.testclient import TestClient

    from service.app import create_app

    promote(shipping, shipping["v1"])
    catalog = Catalog(Settings(home=tmp_path / "home", database_url=database(shipping),
                               release_dir=shipping["root"]))
    with TestClient(create_app(catalog)) as client:
        # files that land in the folder after the service started are still not served
        (shipping["root"] / "release.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----")
        (shipping["root"] / "sensor" / "notes.txt").write_text("x")
        (shipping["root"] / "sensor" / ".index.json.tmp").write_text("x")
        for path in ("release.pem", "sensor/notes.txt", "sensor/.index.json.tmp",
                     "../registry.sqlite"):
            assert client.get(f"/releases/{path}").status_code == 404, path
        assert client.get("/releases/sensor/index.json").status_code == 200
        assert client.get("/releases/sensor/stable.json").status_code == 200
    catalog.dispose()


# -- item 5: canary stores against the fleet ------------------------------------------------


@pytest.mark.parametrize("stores, reason", [
    ([0], "canary store 0 .* is not a store id"),
    ([-1], "canary store -1 .* is not a store id"),
    ([], "expected a non-empty list"),
    ([True], "canary store True"),
    ([1, 1], "name a store twice"),
    ([2**31], "is not a store id"),
])
def test_canary_stores_that_cannot_exist_are_refused_before_anything_is_signed(
        shipping, stores, reason):
    promote(shipping, shipping["v1"])
    index = (shipping["root"] / "sensor" / "index.json").read_bytes()
    target = replace(shipping["target"], canary_stores=stores)
    with pytest.raises(RegistryError, match=reason) as refused:
        promote(shipping, shipping["v2"], "canary", target=target)
    assert "\n" not in str(refused.value)
    assert not (shipping["root"] / "sensor" / "canary.json").exists()
    assert (shipping["root"] / "sensor" / "index.json").read_bytes() == index


def test_canary_stores_must_be_enrolled_and_leave_a_store_outside_the_canary(shipping):
    with shipping["sessions"]() as session, session.begin():
        for store in (1, 2):
            enroll_device(session, store=store, device_class="sensor", by="test")
    for stores, reason in (([3], r"canary stores \[3\] .* not among the enrolled devices"),
                           ([1, 2], "needs at least one store outside")):
        with pytest.raises(RegistryError, match=reason):
            promote(shipping, shipping["v2"], "canary",
                    target=replace(shipping["target"], canary_stores=stores))
    assert not (shipping["root"] / "sensor" / "canary.json").exists()
    promote(shipping, shipping["v2"], "canary",
            target=replace(shipping["target"], canary_stores=[2]))
    assert (shipping["root"] / "sensor" / "canary.json").exists()


@pytest.mark.parametrize("channel, stores, reason", [
    ("canary", [], "for a canary, expected a non-empty list"),
    ("canary", None, "for a canary, expected a non-empty list"),
    ("canary", [0], r"'releases\[0\].stores\[0\]': 0 is outside"),
    ("stable", [1], "for the stable channel, expected null"),
])
def test_a_device_refuses_an_index_whose_canary_covers_no_store_or_every_store(
        channel, stores, reason):
    payload = {"format": "shelfcast-index/1", "device_class": "sensor", "version": 3,
               "created_at": "2026-01-01T00:00:00+00:00",
               "expires_at": "2030-01-01T00:00:00+00:00",
               "releases": [{"release_id": 1, "channel": channel, "stores": stores,
                             "manifest": f"sensor/{channel}.json", "sha256": "a" * 64}],
               "rolled_back": []}
    with pytest.raises(ManifestError, match=reason):
        parse_index(json.loads(json.dumps(payload)), device_class="sensor")


def test_no_private_key_in_the_repository_paths_the_channel_serves(shipping):
    """The fixture's channel, after releases, holds no PEM private key and no database."""
    promote(shipping, shipping["v1"])
    check_servable(shipping["root"], home=Path(shipping["target"].signing_key).parent)
