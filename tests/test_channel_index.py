"""The channel hardened with TUF's ideas: one signed index per device class that devices read
first (a withdrawn canary is a signed change, a replayed, expired or missing index is refused),
and devices that walk the chain of roots to a rotated key (tests/test_trust_chain.py has the
attacks on that chain)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from factories import promote, run_cli
from hypothesis import given
from hypothesis import strategies as st

from device.agent import SyncError, read_state, sync
from device.cli import main as device_main
from device.manifest import ManifestError, parse_index
from device.trust import read_keyring, trust_key
from storage.channel import (
    index_path,
    init_signing_key,
    load_signing_key,
    manifest_path,
    publish_index,
    signed_envelope,
)
from storage.releases import rollback


def device_sync(shipping, store=7, *, state=None, public=None):
    return sync(shipping["url"], "sensor", store, state or shipping["state"],
                None if public is False else Path(public or shipping["public"]).read_bytes())


def index_payload(shipping) -> dict:
    return json.loads(json.loads(index_path(shipping["root"], "sensor").read_bytes())["payload"])


def test_the_index_lists_every_open_channel_with_its_manifest_hash_and_stores(shipping):
    stable = promote(shipping, shipping["v1"])
    canary = promote(shipping, shipping["v2"], "canary")
    index = index_payload(shipping)
    assert (index["format"], index["device_class"]) == ("shelfcast-index/1", "sensor")
    signed_at = dt.datetime.fromisoformat(index["created_at"]).timestamp()
    assert index["version"] >= signed_at, "the version counts on from the signing time"
    assert [(e["release_id"], e["channel"], e["stores"], e["manifest"]) for e in
            index["releases"]] == [(stable, "stable", None, "sensor/stable.json"),
                                   (canary, "canary", [1], "sensor/canary.json")]
    import hashlib
    assert index["releases"][1]["sha256"] == hashlib.sha256(
        manifest_path(shipping["root"], "sensor", "canary").read_bytes()).hexdigest()
    expires = dt.datetime.fromisoformat(index["expires_at"])
    assert dt.timedelta(days=6) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=7)
    # the highest release covering the store: the canary in store 1, the fleet elsewhere
    assert device_sync(shipping, 1, state=shipping["state"] / "s1").manifest.release_id == canary
    assert device_sync(shipping, 7).manifest.release_id == stable


def test_a_withdrawn_canary_is_gone_even_while_its_old_manifest_is_still_served(shipping):
    promote(shipping, shipping["v1"])
    promote(shipping, shipping["v2"], "canary")
    old_canary = manifest_path(shipping["root"], "sensor", "canary").read_bytes()
    with shipping["sessions"]() as session, session.begin():
        fallback = rollback(session, shipping["target"], "sensor", by="ops", reason="bad").id
    # a mirror that never deleted the canary file
    manifest_path(shipping["root"], "sensor", "canary").write_bytes(old_canary)
    fresh = device_sync(shipping, 1, state=shipping["state"] / "new-in-store-1")
    assert (fresh.manifest.release_id, fresh.manifest.model_version) == (fallback, shipping["v1"])
    assert [e["channel"] for e in index_payload(shipping)["releases"]] == ["stable"]


def test_a_replayed_older_index_is_refused_even_with_its_own_consistent_manifests(shipping):
    promote(shipping, shipping["v1"])
    old = {p: p.read_bytes() for p in (index_path(shipping["root"], "sensor"),
                                       manifest_path(shipping["root"], "sensor", "stable"))}
    first = index_payload(shipping)["version"]
    promote(shipping, shipping["v2"])
    second = index_payload(shipping)["version"]
    assert second > first
    assert device_sync(shipping).manifest.model_version == shipping["v2"]
    for path, content in old.items():  # yesterday's snapshot, every file consistent and signed
        path.write_bytes(content)
    with pytest.raises(SyncError, match=f"index version {first} is older than version {second}, "
                                        "which this device has seen: a replayed index is refused"):
        device_sync(shipping)
    assert read_state(shipping["state"])["current"]["model_version"] == shipping["v2"]
    index_path(shipping["root"], "sensor").unlink()  # nor may the index simply disappear
    with pytest.raises(SyncError, match="not found: a channel without its signed index is "
                                        "refused"):
        device_sync(shipping)
    # a release folder made anew (the index file lost) still signs above what devices saw
    with shipping["sessions"]() as session, session.begin():
        from storage.releases import resign_open_releases

        resign_open_releases(session, shipping["target"])
    assert index_payload(shipping)["version"] >= second
    assert device_sync(shipping).status == "up-to-date"


def test_an_expired_index_is_refused_and_the_nightly_re_sign_heals_it(shipping):
    from storage.releases import publish_index as publish_class_index
    from storage.releases import resign_open_releases

    promote(shipping, shipping["v1"])
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    with shipping["sessions"]() as session, session.begin():
        publish_class_index(session, shipping["target"], "sensor",
                            shipping["target"].load_signing_key(), now=past)
    stale = index_payload(shipping)["version"]
    with pytest.raises(SyncError, match=f"index version {stale} expired at .* frozen or "
                                        "replayed"):
        device_sync(shipping)
    assert read_state(shipping["state"])["current"] is None
    with shipping["sessions"]() as session, session.begin():
        resign_open_releases(session, shipping["target"])
    assert index_payload(shipping)["version"] > stale
    assert device_sync(shipping).status == "installed"


def test_a_device_that_reads_the_index_just_before_a_re_sign_reads_it_again(shipping):
    import functools
    import http.server
    import threading

    from conftest import QuietHandler

    from storage.releases import resign_open_releases

    promote(shipping, shipping["v1"])
    before = index_path(shipping["root"], "sensor").read_bytes()
    with shipping["sessions"]() as session, session.begin():
        resign_open_releases(session, shipping["target"])  # new manifest bytes, then new index
    asked = []

    class IndexOneSigningBehind(QuietHandler):
        def do_GET(self):
            asked.append(self.path)
            if self.path.endswith("/index.json") and asked.count(self.path) == 1:
                self.send_response(200)
                self.send_header("Content-Length", str(len(before)))
                self.end_headers()
                self.wfile.write(before)
                return
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        IndexOneSigningBehind, directory=str(shipping["root"])))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        shipping["url"] = f"http://127.0.0.1:{server.server_address[1]}"
        assert device_sync(shipping).status == "installed"
    finally:
        server.shutdown()
        server.server_close()
    assert asked.count("/sensor/index.json") == 2


def test_a_lower_release_is_installed_only_when_the_index_lists_the_running_one_rolled_back(
        shipping):
    """Every rollback Shelfcast makes is a new, higher release; an index may also name a
    release as rolled back, and then (only then) a device running it may go to a lower id."""
    first = promote(shipping, shipping["v1"])
    second = promote(shipping, shipping["v2"])
    assert device_sync(shipping).manifest.release_id == second
    key = shipping["target"].load_signing_key()
    stable_manifest = manifest_path(shipping["root"], "sensor", "stable")
    with shipping["sessions"]() as session:
        from storage.models import Release
        from storage.releases import _sign_and_publish

        release = session.get(Release, first)
        content = Path(release.model_version.artifact_uri.removeprefix("file://")).read_bytes()
        _sign_and_publish(shipping["target"], release, release.model_version, content, key,
                          now=dt.datetime.now(dt.UTC))
    now, later = dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    entry = [{"release_id": first, "channel": "stable", "stores": None}]
    publish_index(shipping["root"], "sensor", entry, [], key, created_at=now.isoformat(),
                  expires_at=later.isoformat())
    with pytest.raises(SyncError, match=f"release {first}, older than the installed release "
                                        f"{second}"):
        device_sync(shipping)
    publish_index(shipping["root"], "sensor", entry, [second], key, created_at=now.isoformat(),
                  expires_at=later.isoformat())
    done = device_sync(shipping)
    assert (done.status, done.manifest.release_id) == ("installed", first)
    assert stable_manifest.exists()


def test_a_channel_that_lost_its_index_is_refused_by_a_device_that_never_saw_one(shipping):
    """The attack: a canary rolled back, then a mirror serves its old manifest again and drops
    the index that withdrew it; a new device in the canary store must not install it."""
    promote(shipping, shipping["v1"])
    promote(shipping, shipping["v2"], "canary")
    canary = manifest_path(shipping["root"], "sensor", "canary")
    withdrawn = canary.read_bytes()
    with shipping["sessions"]() as session, session.begin():
        rollback(session, shipping["target"], "sensor", by="test", reason="bad canary")
    canary.write_bytes(withdrawn)
    index_path(shipping["root"], "sensor").unlink()
    with pytest.raises(SyncError, match="without its signed index is refused"):
        device_sync(shipping, store=1)
    assert read_state(shipping["state"])["current"] is None


@pytest.mark.parametrize("change, reason", [
    ({"format": "shelfcast-index/0"}, "index format 'shelfcast-index/0'"),
    ({"device_class": "tablet"}, "index is for device class 'tablet'"),
    ({"version": 0}, "index field 'version': 0 is outside"),
    ({"version": True}, "index field 'version': True is a JSON boolean"),
    ({"releases": {"stable": 1}}, "index field 'releases'"),
    ({"releases": [{"release_id": 1, "channel": "beta", "stores": None,
                    "manifest": "sensor/beta.json", "sha256": "a" * 64}]}, r"'releases\[0\].channel'"),
    ({"releases": [{"release_id": 1, "channel": "stable", "stores": None,
                    "manifest": "../etc/stable.json", "sha256": "a" * 64}]},
     r"'releases\[0\].manifest'"),
    ({"releases": [{"release_id": 1, "channel": "stable", "stores": "1",
                    "manifest": "sensor/stable.json", "sha256": "a" * 64}]},
     r"'releases\[0\].stores'"),
    ({"rolled_back": [1.0]}, r"index field 'rolled_back\[0\]'"),
    ({"expires_at": "2030-01-01T00:00:00"}, "index field 'expires_at'.*no time zone"),
])
def test_the_device_validates_every_index_field_with_one_line(change, reason):
    good = {"format": "shelfcast-index/1", "device_class": "sensor", "version": 3,
            "created_at": "2026-01-01T00:00:00+00:00", "expires_at": "2030-01-01T00:00:00+00:00",
            "releases": [{"release_id": 1, "channel": "stable", "stores": None,
                          "manifest": "sensor/stable.json", "sha256": "a" * 64}],
            "rolled_back": []}
    assert parse_index(good, device_class="sensor").choose(7).release_id == 1
    with pytest.raises(ManifestError, match=reason) as refused:
        parse_index({**good, **change}, device_class="sensor")
    assert "\n" not in str(refused.value)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(), children, max_size=4), max_leaves=16)
INDEX_KEYS = st.sampled_from(["format", "device_class", "version", "created_at", "expires_at",
                              "releases", "rolled_back"])


@given(payload=JSON | st.dictionaries(INDEX_KEYS, JSON, max_size=7))
def test_any_index_payload_gives_an_index_or_a_one_line_refusal(payload):
    try:
        parse_index(payload, device_class="sensor")
    except ManifestError as exc:
        assert str(exc).splitlines() == [str(exc)] and len(str(exc)) < 600


# -- keys: the trusted set on the device, rotation ------------------------------------------


def rotate(shipping, tmp_path, monkeypatch) -> tuple[int, str, str]:
    with shipping["sessions"]() as session:
        url = session.get_bind().url.render_as_string(hide_password=False)
    return run_cli(["keys", "rotate", "--by", "ops-kim"], monkeypatch, tmp_path,
                   SHELFCAST_DATABASE_URL=url,
                   SHELFCAST_RELEASE_DIR=str(shipping["root"]),
                   SHELFCAST_SIGNING_KEY=str(shipping["target"].signing_key))


def test_a_device_that_missed_two_rotations_walks_both_roots_and_then_refuses_the_old_key(
        shipping, tmp_path, monkeypatch, capsys):
    promote(shipping, shipping["v1"])
    state = shipping["state"]
    first_key = shipping["public"].read_bytes()
    assert device_main(["trust", "--state", str(state), "--public-key",
                        str(shipping["public"])]) == 0
    assert device_sync(shipping, public=False).status == "installed"
    old_private = load_signing_key(shipping["target"].signing_key)
    for version in (2, 3):
        code, out, err = rotate(shipping, tmp_path, monkeypatch)
        assert code == 0, err
        assert f"root version {version} names it" in out
    new_public = shipping["public"].read_bytes()
    assert new_public != first_key
    roots = [json.loads(json.loads((shipping["root"] / "root" / f"{n}.root.json").read_bytes())
                        ["payload"]) for n in (1, 2, 3)]
    assert [r["version"] for r in roots] == [1, 2, 3] and roots[2]["created_by"] == "ops-kim"
    assert len({r["roles"]["release"]["key_ids"][0] for r in roots}) == 3
    # the device still has only the first key, and its cron line still names the old file
    old_file = tmp_path / "old.pub.pem"
    old_file.write_bytes(first_key)
    capsys.readouterr()
    assert device_main(["sync", "--channel", shipping["url"], "--device-class", "sensor",
                        "--store", "7", "--state", str(state), "--public-key",
                        str(old_file)]) == 0
    out = capsys.readouterr().out
    assert out.count("follows root version") == 2 and "up-to-date" in out
    keyring = read_keyring(state)
    assert len(keyring["retired"]) == 2
    # whoever still holds the old private key cannot sign for this device any more
    index = index_path(shipping["root"], "sensor")
    index.write_bytes(signed_envelope(index_payload(shipping), old_private))
    with pytest.raises(SyncError, match="index names signing key .*, which this device does "
                                        "not trust"):
        device_sync(shipping, public=old_file)
    with pytest.raises(ValueError, match="retired by a key rotation"):
        trust_key(state, first_key)


def test_a_manifest_signed_by_an_unknown_key_is_refused_with_one_line(shipping, tmp_path, capsys):
    promote(shipping, shipping["v1"])
    stranger, _ = init_signing_key(tmp_path / "stranger" / "key.pem")
    code = device_main(["sync", "--channel", shipping["url"], "--device-class", "sensor",
                        "--store", "7", "--state", str(shipping["state"]), "--public-key",
                        str(stranger)])
    err = capsys.readouterr().err
    assert code == 4 and err.count("\n") == 1
    assert "root version 1 names signing key" in err and "which this device does not trust" in err
    code = device_main(["sync", "--channel", shipping["url"], "--device-class", "sensor",
                        "--store", "7", "--state", str(shipping["state"] / "empty")])
    assert code == 4 and "no trusted release key" in capsys.readouterr().err


def test_rotation_refuses_a_signing_key_inside_the_release_folder(shipping, tmp_path,
                                                                  monkeypatch):
    inside = shipping["root"] / "keys" / "release.pem"
    init_signing_key(inside)
    with shipping["sessions"]() as session:
        url = session.get_bind().url.render_as_string(hide_password=False)
    code, _, err = run_cli(["keys", "rotate"], monkeypatch, tmp_path, SHELFCAST_DATABASE_URL=url,
                           SHELFCAST_RELEASE_DIR=str(shipping["root"]),
                           SHELFCAST_SIGNING_KEY=str(inside))
    assert code == 2 and "refusing to sign" in err
    assert not (shipping["root"] / "root" / "2.root.json").exists()
