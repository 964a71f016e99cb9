"""Shipping to store devices: signed manifests over HTTP on loopback, every refusal leaving
the old model serving, rollback, canary then the fleet, and the audit trail."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import pytest
from factories import promote
from sqlalchemy import select

from device.agent import SyncError, predict, read_state, sync
from device.cli import main as device_main
from storage.channel import init_signing_key, load_signing_key, manifest_path, signed_envelope
from storage.models import ModelVersion
from storage.registry import RegistryError
from storage.releases import advance_rollout, release_history, rollback


def device_sync(shipping, *, store=7, device_class="sensor", public=None):
    return sync(shipping["url"], device_class, store, shipping["state"],
                Path(public or shipping["public"]).read_bytes())


def installed_version(shipping) -> int:
    return read_state(shipping["state"])["current"]["model_version"]


def test_good_release_installs_and_forecasts_what_the_server_measured(shipping, capsys):
    promote(shipping, shipping["v1"])
    args = ["sync", "--channel", shipping["url"], "--device-class", "sensor", "--store", "7",
            "--state", str(shipping["state"]), "--public-key", str(shipping["public"])]
    assert device_main(args) == 0
    assert "installed: model version" in capsys.readouterr().out
    assert device_main(args) == 0
    assert "up-to-date" in capsys.readouterr().out
    expected = shipping["records"][0].probe["forecast"]
    assert predict(shipping["state"], shipping["probe"], shipping["probe_day"]) == expected
    assert device_main(["predict", "--state", str(shipping["state"]), "--history",
                        *map(str, shipping["probe"]), "--date",
                        shipping["probe_day"].isoformat()]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(expected, abs=1e-4)
    assert device_main(["status", "--state", str(shipping["state"]), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["current"]["verified"] and status["current"]["model_version"] == shipping["v1"]
    assert device_main(["bench", "--state", str(shipping["state"]), "--repeats", "50"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["repeats"] == 50 and 0 < figures["latency_us_p50"] <= figures["latency_us_p90"]


def test_an_agent_that_feeds_only_contract_2_keeps_its_model_and_reports_it_needs_an_upgrade(
        shipping):
    """A device whose agent predates input contract 3 never installs a contract-3 model: its
    contract-2 model keeps serving, and its report says why (fleet shows 'agent upgrade
    needed')."""
    import hashlib

    from device.agent import AgentOutdated, install
    from device.manifest import INPUT_CONTRACTS, parse_manifest
    from device.report import build_report, record_sync
    from device.runtime import Forecaster

    old = (Path(__file__).parent / "data" / "lstm16-contract2.tflite").read_bytes()
    history = [float(v) for v in shipping["probe"]]
    serving = Forecaster(old).forecast_one(history, shipping["probe_day"].weekday())
    install(shipping["state"], old, parse_manifest({
        "format": "shelfcast-manifest/1", "release_id": 1, "channel": "stable",
        "device_class": "sensor", "stores": None, "model_version": 99, "variant": "lstm16_int8",
        "artifact": {"path": f"artifacts/{hashlib.sha256(old).hexdigest()}.tflite",
                     "sha256": hashlib.sha256(old).hexdigest(), "bytes": len(old)},
        "input_contract": INPUT_CONTRACTS[2],
        "probe": {"history": history, "weekday": shipping["probe_day"].weekday(),
                  "forecast": serving, "tolerance": 1e-3},
        "created_at": "2026-12-01T00:00:00+00:00", "expires_at": "2026-12-08T00:00:00+00:00"}))
    promote(shipping, shipping["v1"])  # a contract-3 model
    with pytest.raises(AgentOutdated, match="needs input contract 3, this agent feeds 2") as why:
        sync(shipping["url"], "sensor", 7, shipping["state"], shipping["public"].read_bytes(),
             contracts=(2,))
    assert read_state(shipping["state"])["current"]["model_version"] == 99
    assert predict(shipping["state"], history, shipping["probe_day"]) == serving
    record_sync(shipping["state"], "outdated", str(why.value))
    report = build_report(shipping["state"])
    assert report["sync_result"] == "outdated" and report["smoke_test_ok"] is True
    assert "upgrade the device agent" in report["sync_reason"]
    # the same device with this agent takes the contract-3 model
    assert device_sync(shipping).status == "installed"
    assert installed_version(shipping) == shipping["v1"]


@pytest.fixture
def serving_v1_with_v2_published(shipping):
    """The device runs v1; v2 is then published on stable for the refusal tests to spoil."""
    promote(shipping, shipping["v1"])
    device_sync(shipping)
    promote(shipping, shipping["v2"])
    manifest = json.loads(json.loads(manifest_path(shipping["root"], "sensor", "stable")
                                     .read_bytes())["payload"])
    return shipping, shipping["root"] / manifest["artifact"]["path"], manifest


def _refused(shipping, match, **kwargs):
    with pytest.raises(SyncError, match=match):
        device_sync(shipping, **kwargs)
    assert installed_version(shipping) == shipping["v1"], "the old model must keep serving"
    expected = shipping["records"][0].probe["forecast"]
    assert predict(shipping["state"], shipping["probe"], shipping["probe_day"]) == expected


def test_tampered_artifact_is_refused(serving_v1_with_v2_published):
    shipping, artifact, _ = serving_v1_with_v2_published
    content = bytearray(artifact.read_bytes())
    content[len(content) // 2] ^= 0xFF
    artifact.write_bytes(bytes(content))
    _refused(shipping, "sha256")


def test_truncated_download_is_refused(serving_v1_with_v2_published):
    shipping, artifact, _ = serving_v1_with_v2_published
    artifact.write_bytes(artifact.read_bytes()[:-100])
    _refused(shipping, "bytes arrived")


def test_a_connection_dropped_mid_download_is_refused(serving_v1_with_v2_published):
    """The host promises the whole file (Content-Length) but the connection ends early."""
    import functools
    import http.server
    import threading

    shipping, _, _ = serving_v1_with_v2_published

    class Dropping(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if not self.path.startswith("/artifacts/"):
                return super().do_GET()
            content = (shipping["root"] / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content[: len(content) // 2])
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Dropping, directory=str(shipping["root"])))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        shipping["url"] = f"http://127.0.0.1:{server.server_address[1]}"
        _refused(shipping, "truncated download")
    finally:
        server.shutdown()
        server.server_close()


def test_manifest_signed_by_another_key_is_refused(serving_v1_with_v2_published, tmp_path):
    shipping, _, manifest = serving_v1_with_v2_published
    init_signing_key(tmp_path / "other" / "key.pem")
    other = load_signing_key(tmp_path / "other" / "key.pem")
    manifest_path(shipping["root"], "sensor", "stable").write_bytes(
        signed_envelope(manifest, other))
    reindex(shipping)  # the index names the new file: only the manifest's signature is wrong
    _refused(shipping, "bad signature: the manifest names signing key .*, which this device "
                       "does not trust")
    # a device that has its root ignores a key on its command line: the root's keys decide
    other_public = tmp_path / "other" / "key.pub.pem"
    _refused(shipping, "bad signature", public=other_public)


def reindex(shipping) -> None:
    """Sign the class's index again over the manifest files as they are now, so a test reaches
    the checks of the manifest itself (the index names each manifest by its sha256)."""
    from storage.releases import publish_index

    with shipping["sessions"]() as session, session.begin():
        publish_index(session, shipping["target"], "sensor",
                      shipping["target"].load_signing_key(), now=dt.datetime.now(dt.UTC))


def test_altered_manifest_is_refused(serving_v1_with_v2_published):
    shipping, _, _ = serving_v1_with_v2_published
    path = manifest_path(shipping["root"], "sensor", "stable")
    envelope = json.loads(path.read_bytes())
    envelope["payload"] = envelope["payload"].replace('"stores": null', '"stores": [7]')
    path.write_text(json.dumps(envelope))
    _refused(shipping, "not the manifest index version [0-9]+ names for release 2 .sha256 "
                       "differs")
    reindex(shipping)  # even where the index vouches for the altered file, its signature fails
    _refused(shipping, "bad signature")


def test_a_replayed_older_manifest_is_refused(shipping):
    promote(shipping, shipping["v1"])
    old_manifest = manifest_path(shipping["root"], "sensor", "stable").read_bytes()
    promote(shipping, shipping["v2"])
    assert device_sync(shipping).manifest.model_version == shipping["v2"]
    manifest_path(shipping["root"], "sensor", "stable").write_bytes(old_manifest)
    with pytest.raises(SyncError, match="replayed"):
        device_sync(shipping)
    assert installed_version(shipping) == shipping["v2"]


def test_manifest_for_another_class_is_refused(serving_v1_with_v2_published):
    shipping, _, _ = serving_v1_with_v2_published
    sensor = manifest_path(shipping["root"], "sensor", "stable")
    handheld_state = shipping["state"].with_name("handheld-device")
    manifest_path(shipping["root"], "handheld", "stable").parent.mkdir()
    manifest_path(shipping["root"], "handheld", "stable").write_bytes(sensor.read_bytes())
    with pytest.raises(SyncError, match="without its signed index is refused"):
        sync(shipping["url"], "handheld", 7, handheld_state, shipping["public"].read_bytes())
    (shipping["root"] / "handheld" / "index.json").write_bytes(
        (shipping["root"] / "sensor" / "index.json").read_bytes())  # mix and match
    with pytest.raises(SyncError, match="for device class 'sensor'"):
        sync(shipping["url"], "handheld", 7, handheld_state, shipping["public"].read_bytes())
    assert read_state(handheld_state)["current"] is None


def test_artifact_failing_the_smoke_test_is_refused(serving_v1_with_v2_published):
    shipping, _, manifest = serving_v1_with_v2_published
    manifest["probe"]["forecast"] += 5.0  # a model that does not reproduce the server's figure
    manifest_path(shipping["root"], "sensor", "stable").write_bytes(
        signed_envelope(manifest, load_signing_key(shipping["target"].signing_key)))
    reindex(shipping)
    _refused(shipping, "smoke test failed")


def test_cli_refusal_exits_non_zero_with_the_reason(serving_v1_with_v2_published, capsys):
    shipping, artifact, _ = serving_v1_with_v2_published
    artifact.write_bytes(b"not a model")
    code = device_main(["sync", "--channel", shipping["url"], "--device-class", "sensor",
                        "--store", "7", "--state", str(shipping["state"]),
                        "--public-key", str(shipping["public"])])
    assert code == 4  # refused: the installed model keeps serving
    assert "bytes arrived" in capsys.readouterr().err


def test_rollback_republishes_the_previous_release_and_devices_follow(shipping):
    promote(shipping, shipping["v1"])
    promote(shipping, shipping["v2"])
    assert device_sync(shipping).manifest.model_version == shipping["v2"]
    with shipping["sessions"]() as session, session.begin():
        release = rollback(session, shipping["target"], "sensor", by="ops-anna",
                           reason="forecasts too low in store 7")
        assert release.model_version_id == shipping["v1"]
        assert session.get(ModelVersion, shipping["v2"]).status == "retired"
    assert device_sync(shipping).status == "installed"
    assert installed_version(shipping) == shipping["v1"]
    with shipping["sessions"]() as session:
        trail = release_history(session, "sensor")
        assert [(r.model_version_id, r.ended_at is None) for r in trail] == [
            (shipping["v1"], True), (shipping["v2"], False), (shipping["v1"], False)]
        assert trail[1].ended_by == "ops-anna" and "forecasts too low" in trail[0].reason
    assert _night(shipping, dt.date(2018, 1, 2), shipping["v2"]) == ["unchanged"], \
        "a rolled-back version is not promoted again"
    with shipping["sessions"]() as session, session.begin(), \
            pytest.raises(RegistryError, match="no earlier stable release"):
        rollback(session, shipping["target"], "sensor", by="ops", reason="again")


def test_rolling_back_a_canary_sends_its_stores_back_to_the_fleet_version(shipping):
    promote(shipping, shipping["v1"])
    promote(shipping, shipping["v2"], channel="canary")
    canary_state = shipping["state"].with_name("store1")
    key = shipping["public"].read_bytes()
    assert sync(shipping["url"], "sensor", 1, canary_state, key).manifest.model_version == shipping["v2"]
    with shipping["sessions"]() as session, session.begin():
        release = rollback(session, shipping["target"], "sensor", by="ops", reason="store 1 complains")
        assert release.channel == "stable" and release.model_version_id == shipping["v1"]
    assert not manifest_path(shipping["root"], "sensor", "canary").exists()
    back = sync(shipping["url"], "sensor", 1, canary_state, key)
    assert back.status == "installed" and back.manifest.model_version == shipping["v1"]
    assert back.manifest.release_id == release.id > 2


def test_a_version_that_failed_the_gate_for_a_class_cannot_be_released_there(shipping):
    with shipping["sessions"]() as session, session.begin():
        decision = next(d for d in session.get(ModelVersion, shipping["v1"]).decisions
                        if d.device_class == "sensor")
        decision.passed = False
    with pytest.raises(RegistryError, match="did not pass the gate"):
        promote(shipping, shipping["v1"])
    assert not manifest_path(shipping["root"], "sensor", "stable").exists()


def _night(shipping, night, candidate_id, blockers=(), holds=()):
    with shipping["sessions"]() as session, session.begin():
        candidate = session.get(ModelVersion, candidate_id)
        steps = advance_rollout(session, shipping["target"], "sensor", candidate, as_of=night,
                                canary_blockers=list(blockers), fleet_holds=list(holds))
        return [s.action for s in steps]


def test_canary_first_then_the_fleet_after_n_clean_nights(shipping):
    day0 = dt.date(2018, 1, 1)
    promote(shipping, shipping["v1"], night=day0)
    canary_state = shipping["state"].with_name("store1")
    assert _night(shipping, day0, shipping["v2"]) == ["canary"]
    assert sync(shipping["url"], "sensor", 1, canary_state,
                shipping["public"].read_bytes()).manifest.model_version == shipping["v2"]
    assert device_sync(shipping).manifest.model_version == shipping["v1"], "store 7 is not canary"
    assert _night(shipping, day0 + dt.timedelta(days=1), shipping["v2"]) == ["waiting"]
    assert _night(shipping, day0 + dt.timedelta(days=3), shipping["v2"],
                  blockers=["forecast-quality alert 4 is open"]) == ["held"]
    assert _night(shipping, day0 + dt.timedelta(days=3), shipping["v2"],
                  holds=["severe drift alert 5 is unacknowledged"]) == ["held"]
    assert _night(shipping, day0 + dt.timedelta(days=3), shipping["v2"]) == ["graduated", "unchanged"]
    assert not manifest_path(shipping["root"], "sensor", "canary").exists()
    assert device_sync(shipping).manifest.model_version == shipping["v2"]
    graduated = sync(shipping["url"], "sensor", 1, canary_state, shipping["public"].read_bytes())
    assert graduated.status == "up-to-date"
    assert read_state(canary_state)["current"]["channel"] == "stable", "the new release is recorded"
    with shipping["sessions"]() as session:
        channels = [(r.channel, r.model_version_id, r.end_reason) for r in release_history(session)]
    assert channels == [("stable", shipping["v2"], None),
                        ("canary", shipping["v2"], "graduated to stable"),
                        ("stable", shipping["v1"], "superseded: canary release 2 ran 3 clean nights")]


def test_releases_list_json_is_the_audit_trail(shipping, tmp_path, monkeypatch, capsys):
    from flows.cli import main
    from storage.settings import get_settings

    promote(shipping, shipping["v1"])
    with shipping["sessions"]() as session:
        url = str(session.get_bind().url.render_as_string(hide_password=False))
    monkeypatch.setenv("SHELFCAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHELFCAST_DATABASE_URL", url)
    monkeypatch.setenv("SHELFCAST_RELEASE_DIR", str(shipping["root"]))
    monkeypatch.setenv("SHELFCAST_SIGNING_KEY", str(shipping["target"].signing_key))
    get_settings.cache_clear()
    try:
        assert main(["promote", str(shipping["v2"]), "--device-class", "handheld",
                     "--channel", "stable", "--by", "rm-lee", "--reason", "faster"]) == 0
        capsys.readouterr()
        assert main(["releases", "list", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
    finally:
        get_settings.cache_clear()
    assert [(r["device_class"], r["model_version"], r["released_by"]) for r in rows] == [
        ("handheld", shipping["v2"], "rm-lee"), ("sensor", shipping["v1"], "test")]
    assert all(r["manifest"].endswith("stable.json") and r["ended_at"] is None for r in rows)


def test_promote_without_a_signing_key_says_how_to_make_one(shipping):
    shipping["target"] = replace(shipping["target"], signing_key=Path("/nonexistent/key.pem"))
    with pytest.raises(FileNotFoundError, match="shelfcast keys init"):
        promote(shipping, shipping["v1"])
    with shipping["sessions"]() as session:
        assert session.scalars(select(ModelVersion.status)).all() == ["approved", "approved"]


def test_keys_init_makes_a_key_pair_once_and_refuses_to_replace_it(tmp_path, monkeypatch, capsys):
    import os

    from flows.cli import main
    from storage.settings import get_settings

    monkeypatch.setenv("SHELFCAST_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert main(["keys", "init"]) == 0
        private = tmp_path / "keys" / "release-signing.pem"
        assert oct(os.stat(private).st_mode & 0o777) == "0o600"
        public = private.with_name("release-signing.pub.pem").read_bytes()
        assert b"BEGIN PUBLIC KEY" in public and "give it to every device" in capsys.readouterr().out
        assert main(["keys", "init"]) == 4  # a conflict: the key exists
        assert "devices trust it" in capsys.readouterr().err
        assert private.with_name("release-signing.pub.pem").read_bytes() == public
    finally:
        get_settings.cache_clear()


def test_an_expired_manifest_is_refused_the_model_keeps_serving_and_the_nightly_re_sign_heals(
        shipping):
    """Manifests expire (TUF's freeze protection): a channel nobody re-signs, or a replayed old
    manifest, is refused with the reason; re-signing the open releases makes it valid again."""
    import datetime as dt

    from storage.releases import _sign_and_publish, resign_open_releases

    promote(shipping, shipping["v1"])
    device_sync(shipping)
    release_id = promote(shipping, shipping["v2"])
    with shipping["sessions"]() as session:
        from storage.models import Release

        release = session.get(Release, release_id)
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        _sign_and_publish(shipping["target"], release, release.model_version,
                          open(release.model_version.artifact_uri.removeprefix("file://"),
                               "rb").read(),
                          shipping["target"].load_signing_key(), now=past)
    reindex(shipping)  # a fresh index naming the expired manifest: the manifest's expiry counts
    _refused(shipping, f"release {release_id} expired at")
    with shipping["sessions"]() as session, session.begin():
        (resigned,) = resign_open_releases(session, shipping["target"])
    assert resigned.id == release_id
    assert device_sync(shipping).status == "installed"
    assert installed_version(shipping) == shipping["v2"]
    manifest = json.loads(json.loads(manifest_path(shipping["root"], "sensor", "stable")
                                     .read_text())["payload"])
    expires = dt.datetime.fromisoformat(manifest["expires_at"])
    assert dt.timedelta(days=6) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=7)
