"""End to end: `shelfcast serve` in its own process on loopback, real `shelfcast-device`
processes against it (trusted keyring, sync from the service's release channel, reports after
every sync), and the nightly rollout judging the canary on what they reported: enrolment, a
canary that graduates, a canary rolled back, an expired channel, a rotated key, a revoked
token."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from factories import free_port, run_cli
from sqlalchemy import select

from storage.devices import fleet_status
from storage.models import DeviceReport, ModelVersion
from storage.releases import CanaryPolicy, advance_rollout, release_version

# Real service and device processes on the backend a shared fleet service would use; the
# registry's behaviour on SQLite is tested at the storage level (tests/test_fleet.py).
pytestmark = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)

BIN = Path(sys.executable).parent
DAY0 = dt.date(2018, 1, 1)
READY = DAY0 + dt.timedelta(days=3)  # the canary has run its canary_nights


def env_for(shipping, database_url, tmp_path) -> dict[str, str]:
    return {"SHELFCAST_HOME": str(tmp_path / "server-home"), "SHELFCAST_DATABASE_URL": database_url,
            "SHELFCAST_RELEASE_DIR": str(shipping["root"]),
            "SHELFCAST_SIGNING_KEY": str(shipping["target"].signing_key)}


@pytest.fixture
def served(shipping, database_url, tmp_path):
    """`shelfcast serve` as a process on a free loopback port; stopped by the test."""
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    process = subprocess.Popen(
        [str(BIN / "shelfcast"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **env_for(shipping, database_url, tmp_path)}, stdout=log,
        stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.close()
                pytest.fail(f"shelfcast serve did not start: {(tmp_path / 'serve.log').read_text()}")
            time.sleep(0.1)
    yield url
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    log.close()


class Device:
    """One store device: its state folder, its token file and the agent's command line."""

    def __init__(self, shipping, served, tmp_path, monkeypatch, database_url, store: int):
        self.shipping, self.served, self.store = shipping, served, store
        self.state = tmp_path / f"device-store{store}"
        self.token_file = tmp_path / f"store{store}.token"
        code, out, err = run_cli(["devices", "enroll", "--store", str(store), "--device-class",
                                  "sensor", "--by", "test"], monkeypatch, tmp_path,
                                 **env_for(shipping, database_url, tmp_path))
        assert code == 0, err
        self.token_file.write_text(out)
        self.id = int(err.split()[1])
        done = self.run("trust", "--state", self.state, "--public-key", shipping["public"])
        assert done.returncode == 0, done.stderr

    def run(self, *args) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "shelfcast-device"), *map(str, args)],
                              capture_output=True, text=True, timeout=120)

    def sync(self) -> subprocess.CompletedProcess:
        return self.run("sync", "--channel", f"{self.served}/releases", "--device-class",
                        "sensor", "--store", self.store, "--state", self.state, "--report-to",
                        self.served, "--token-file", self.token_file)

    def reports(self) -> list[tuple]:
        with self.shipping["sessions"]() as session:
            return [(r.release_id, r.sync_result, r.smoke_test_ok, r.sync_reason)
                    for r in session.scalars(select(DeviceReport).where(
                        DeviceReport.device_id == self.id).order_by(DeviceReport.id))]


@pytest.fixture
def fleet(shipping, served, tmp_path, monkeypatch, database_url):
    """Devices of stores 1 to 8, which have sales (a device is enrolled only for a store the
    registry knows)."""
    from storage.sales import ingest_sales, sales_fingerprint
    from storage.synthetic import generate_sales

    sales = generate_sales(stores=8, items=1, start="2017-01-01", end="2017-01-14", seed=3)
    with shipping["sessions"]() as session, session.begin():
        ingest_sales(session, sales, source="fleet", sha256=sales_fingerprint(sales))

    def device(store: int) -> Device:
        return Device(shipping, served, tmp_path, monkeypatch, database_url, store)
    return device


def release(shipping, version: int, channel: str) -> int:
    with shipping["sessions"]() as session, session.begin():
        return release_version(session, shipping["target"], version, "sensor", channel=channel,
                               by="test", reason="test", as_of=DAY0).id


def night(shipping):
    with shipping["sessions"]() as session, session.begin():
        (step,) = advance_rollout(session, shipping["target"], "sensor", None, as_of=READY,
                                  canary_blockers=[], fleet_holds=[],
                                  canary_policy=CanaryPolicy())
        return step


def test_enrolled_devices_sync_report_and_the_canary_graduates_on_their_reports(shipping, fleet):
    fleet_release = release(shipping, shipping["v1"], "stable")
    canary = release(shipping, shipping["v2"], "canary")
    in_canary, elsewhere = fleet(1), fleet(7)
    for device, expected in ((in_canary, canary), (elsewhere, fleet_release)):
        done = device.sync()
        assert done.returncode == 0, done.stderr
        assert "installed: model version" in done.stdout and f"release {expected} " in done.stdout
        assert "sent 1 report(s)" in done.stdout
        assert device.reports() == [(expected, "installed", True, "")]
    step = night(shipping)
    assert step.action == "graduated"
    assert "1 of 1 canary device(s) report it installed and healthy" in step.message
    assert "up-to-date" in in_canary.sync().stdout
    assert "installed: model version" in elsewhere.sync().stdout
    with shipping["sessions"]() as session:
        statuses = fleet_status(session)
    assert [(s.store, s.release_id, s.problems) for s in statuses] == [
        (1, step.release_id, []), (7, step.release_id, [])]


def test_a_canary_its_devices_cannot_install_is_rolled_back_and_they_return_to_the_fleet(
        shipping, fleet):
    release(shipping, shipping["v1"], "stable")
    canary = release(shipping, shipping["v2"], "canary")
    sha = shipping["records"][1].sha256
    artifact = shipping["root"] / "artifacts" / f"{sha}.tflite"
    spoiled = bytearray(artifact.read_bytes())
    spoiled[len(spoiled) // 2] ^= 0xFF
    artifact.write_bytes(bytes(spoiled))  # the canary's file on the host is broken
    device = fleet(1)
    done = device.sync()
    assert done.returncode == 4 and "does not match the manifest" in done.stderr
    assert "sent 1 report(s)" in done.stdout
    [(release_id, result, _, reason)] = device.reports()
    assert (release_id, result) == (None, "refused") and "sha256" in reason
    step = night(shipping)
    assert step.action == "rolled back" and f"device {device.id} (store 1): sync refused" \
        in step.message
    with shipping["sessions"]() as session:
        assert session.get(ModelVersion, shipping["v2"]).status == "retired"
    done = device.sync()
    assert done.returncode == 0 and f"release {step.release_id} on stable" in done.stdout
    assert device.reports()[-1][:2] == (step.release_id, "installed")
    assert canary < step.release_id


def test_an_expired_channel_is_refused_reported_and_healed_by_the_nightly_re_sign(shipping,
                                                                                  fleet):
    from storage.models import Release
    from storage.releases import _sign_and_publish, publish_index, resign_open_releases

    first = release(shipping, shipping["v1"], "stable")
    device = fleet(7)
    assert device.sync().returncode == 0
    second = release(shipping, shipping["v2"], "stable")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    key = shipping["target"].load_signing_key()
    with shipping["sessions"]() as session, session.begin():  # nobody re-signed for a month
        row = session.get(Release, second)
        content = Path(row.model_version.artifact_uri.removeprefix("file://")).read_bytes()
        _sign_and_publish(shipping["target"], row, row.model_version, content, key, now=past)
        publish_index(session, shipping["target"], "sensor", key, now=dt.datetime.now(dt.UTC))
    done = device.sync()
    assert done.returncode == 4 and f"manifest of release {second} expired at" in done.stderr
    assert device.reports()[-1][:2] == (first, "refused")
    assert "expired" in device.reports()[-1][3]
    with shipping["sessions"]() as session:
        [status] = fleet_status(session)
        assert status.problems == ["failed sync", "old release"]
    with shipping["sessions"]() as session, session.begin():
        resign_open_releases(session, shipping["target"])
    done = device.sync()
    assert done.returncode == 0 and f"release {second} on stable" in done.stdout


def test_a_device_walks_to_the_rotated_root_from_the_channel_and_keeps_reporting(
        shipping, fleet, database_url, tmp_path):
    release(shipping, shipping["v1"], "stable")
    device = fleet(7)
    assert device.sync().returncode == 0
    rotated = subprocess.run([str(BIN / "shelfcast"), "keys", "rotate"], capture_output=True,
                             text=True, timeout=120,
                             env={**os.environ, **env_for(shipping, database_url, tmp_path)})
    assert rotated.returncode == 0, rotated.stderr
    new_release = release(shipping, shipping["v2"], "stable")  # signed by the new key only
    done = device.sync()
    assert done.returncode == 0, done.stderr
    assert "follows root version 2" in done.stdout and f"release {new_release} on" in done.stdout
    assert device.reports()[-1][:3] == (new_release, "installed", True)
    status = device.run("status", "--state", device.state, "--json")
    keys = json.loads(status.stdout)
    assert len(keys["trusted_keys"]) == 1 and len(keys["retired_keys"]) == 1


def test_a_revoked_device_still_syncs_but_its_reports_are_refused_and_queued(
        shipping, fleet, tmp_path, monkeypatch, database_url):
    release(shipping, shipping["v1"], "stable")
    device = fleet(7)
    code, _, err = run_cli(["devices", "revoke", str(device.id), "--by", "test"], monkeypatch,
                           tmp_path, **env_for(shipping, database_url, tmp_path))
    assert code == 0, err
    done = device.sync()
    assert done.returncode == 0 and "installed: model version" in done.stdout
    assert "HTTP 401" in done.stderr and "1 report(s) queued" in done.stderr
    assert device.token_file.read_text().strip() not in done.stdout + done.stderr
    assert device.reports() == []
