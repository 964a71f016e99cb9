"""Hearing from the fleet: enrolment with hashed tokens, the real service on loopback, real
`shelfcast-device` processes reporting to it, and `fleet status` reading what they said."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from storage.devices import (
    ReportRecord,
    authenticate,
    enroll_device,
    fleet_status,
    record_report,
    revoke_device,
)
from storage.errors import Conflict, NotFound, RegistryError
from storage.models import Device, DeviceReport, utcnow

DEVICE_CLI = str(Path(sys.executable).parent / "shelfcast-device")


def enroll(sessions, store=7, device_class="sensor"):
    with sessions() as session, session.begin():
        enrolment = enroll_device(session, store=store, device_class=device_class, by="test")
    return enrolment.device.id, enrolment.token


def report_count(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(DeviceReport))


# -- the registry, on SQLite and PostgreSQL ---------------------------------------------------


def test_enrolment_keeps_only_the_token_hash_and_needs_a_known_class_and_store(sessions):
    device_id, token = enroll(sessions)
    with sessions() as session:
        row = session.get(Device, device_id)
        assert token not in json.dumps({c.name: str(getattr(row, c.name))
                                        for c in Device.__table__.columns})
        assert authenticate(session, token).id == device_id
        assert authenticate(session, token + "x") is None
        with pytest.raises(NotFound, match="unknown device class 'fridge'"):
            enroll_device(session, store=7, device_class="fridge", by="test")
        for store in (0, 2**31, True):
            with pytest.raises(RegistryError, match="store must be"):
                enroll_device(session, store=store, device_class="sensor", by="test")


def test_a_revoked_device_is_not_authenticated_and_its_reports_are_refused(sessions):
    device_id, token = enroll(sessions)
    with sessions() as session, session.begin():
        revoke_device(session, device_id, by="test")
    with sessions() as session, session.begin():
        assert authenticate(session, token) is None
        with pytest.raises(Conflict, match="revoked already"):
            revoke_device(session, device_id, by="test")
        with pytest.raises(NotFound):
            record_report(session, device_id, ReportRecord(
                utcnow(), None, None, None, "", None, None, 1, None))
    assert report_count(sessions) == 0


@pytest.mark.parametrize(("result", "reason"), [
    ("outdated", "http://h/releases/sensor/stable.json: the model needs input contract 3, this "
                 "agent feeds 2: upgrade the device agent"),
    # an agent from before contract 3 says it so, and calls it refused
    ("refused", "http://h/releases/sensor/stable.json: manifest input contract {'version': 3} "
                "is not the one this agent runs (14 daily sales in, next-day sales out)"),
], ids=["this-agent", "an-agent-before-contract-3"])
def test_a_device_whose_agent_cannot_feed_the_new_contract_needs_an_upgrade_not_a_repair(
        sessions, result, reason):
    device_id, _ = enroll(sessions)
    with sessions() as session, session.begin():
        record_report(session, device_id, ReportRecord(
            utcnow(), None, None, result, reason, None, None, 1, None))
    with sessions() as session:
        [status] = fleet_status(session)
    assert status.problems == ["agent upgrade needed"] and status.sync_result == result


# -- the service on loopback and real device processes ----------------------------------------


@pytest.fixture
def service(shipping, database_url, tmp_path):
    """`create_app` on uvicorn on a free loopback port, over the shipping registry and its
    release folder."""
    import uvicorn

    from service.app import create_app
    from storage.catalog import Catalog
    from storage.settings import Settings

    catalog = Catalog(Settings(home=tmp_path / "home", database_url=database_url,
                               release_dir=shipping["root"]))
    server = uvicorn.Server(uvicorn.Config(create_app(catalog), log_level="warning"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the service did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()
    catalog.dispose()


def device(*args) -> subprocess.CompletedProcess:
    return subprocess.run([DEVICE_CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def report(url, token_file, state) -> subprocess.CompletedProcess:
    return device("report", "--server", url, "--token-file", token_file, "--state", state)


def token_file(tmp_path, token) -> Path:
    path = tmp_path / "device.token"
    path.write_text(token + "\n")
    return path


def post(url: str, body: bytes, token: str, *, chunked: bool = False) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connection.request("POST", "/api/v1/reports", body=iter([body]) if chunked else body,
                       headers=headers, encode_chunked=chunked)
    response = connection.getresponse()
    status, content = response.status, response.read()
    connection.close()
    return status, json.loads(content or b"{}")


def fleet_cli(shipping, database_url, tmp_path, monkeypatch, capsys, *args) -> list[dict]:
    from flows.cli import main
    from storage.settings import get_settings

    monkeypatch.setenv("SHELFCAST_HOME", str(tmp_path / "cli-home"))
    monkeypatch.setenv("SHELFCAST_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        assert main(["fleet", "status", "--json", *args]) == 0
    finally:
        get_settings.cache_clear()
    return json.loads(capsys.readouterr().out)


def sign_index_with_a_stranger(shipping, tmp_path) -> None:
    """The class's index as someone without the release key would sign it."""
    from storage.channel import index_path, init_signing_key, load_signing_key, signed_envelope

    init_signing_key(tmp_path / "other" / "key.pem")
    index = index_path(shipping["root"], "sensor")
    payload = json.loads(json.loads(index.read_bytes())["payload"])
    index.write_bytes(signed_envelope(payload, load_signing_key(tmp_path / "other" / "key.pem")))


def test_a_device_syncs_from_the_service_reports_and_fleet_status_shows_its_release(
        shipping, service, database_url, tmp_path, monkeypatch, capsys):
    from storage.releases import release_version

    sessions, state = shipping["sessions"], shipping["state"]
    with sessions() as session, session.begin():
        first = release_version(session, shipping["target"], shipping["v1"], "sensor",
                                channel="stable", by="test", reason="test").id
    device_id, token = enroll(sessions)
    tokens = token_file(tmp_path, token)
    sync = ["sync", "--channel", f"{service}/releases", "--device-class", "sensor", "--store", 7,
            "--state", state, "--public-key", shipping["public"]]
    assert device(*sync).returncode == 0
    done = report(service, tokens, state)
    assert done.returncode == 0, done.stderr
    assert token not in done.stdout + done.stderr
    with sessions() as session:
        row = session.scalar(select(DeviceReport))
        assert (row.device_id, row.release_id, row.sync_result, row.smoke_test_ok) == \
            (device_id, first, "installed", True)
        assert row.sha256 == shipping["records"][0].sha256 and row.latency_us_p50 > 0
        assert session.get(Device, device_id).last_report_id == row.id
    [shown] = fleet_cli(shipping, database_url, tmp_path, monkeypatch, capsys)
    assert (shown["id"], shown["store"], shown["release_id"], shown["problems"]) == \
        (device_id, 7, first, [])

    # a newer release the device refuses (signed by a key it does not trust): failed sync,
    # old release
    with sessions() as session, session.begin():
        second = release_version(session, shipping["target"], shipping["v2"], "sensor",
                                 channel="stable", by="test", reason="test").id
    sign_index_with_a_stranger(shipping, tmp_path)
    assert device(*sync).returncode == 4
    assert report(service, tokens, state).returncode == 0
    [shown] = fleet_cli(shipping, database_url, tmp_path, monkeypatch, capsys, "--device-class",
                        "sensor")
    assert (shown["release_id"], shown["expected_release_id"]) == (first, second)
    assert shown["problems"] == ["failed sync", "old release"] and shown["sync_result"] == "refused"
    assert fleet_cli(shipping, database_url, tmp_path, monkeypatch, capsys, "--device-class",
                     "tablet") == []
    with sessions() as session:
        [status] = fleet_status(session, now=utcnow().replace(year=utcnow().year + 1))
    assert status.problems[0] == "stale"


def test_a_revoked_or_unknown_token_gets_401_and_nothing_is_recorded(shipping, service, tmp_path):
    sessions = shipping["sessions"]
    device_id, token = enroll(sessions)
    with sessions() as session, session.begin():
        revoke_device(session, device_id, by="test")
    done = report(service, token_file(tmp_path, token), shipping["state"])
    assert done.returncode == 4 and "HTTP 401" in done.stderr and token not in done.stderr
    assert len(list((shipping["state"] / "report-queue").glob("*.json"))) == 1
    assert post(service, b"{}", "not-a-token")[0] == 401
    assert report_count(sessions) == 0


GOOD = {"reported_at": "2026-11-29T10:00:00+00:00", "release_id": 3, "sha256": "a" * 64,
        "sync_result": "installed", "sync_reason": "", "smoke_test_ok": True,
        "latency_us_p50": 41.5, "free_bytes": 10**9, "forecasts_made": 12}
BAD = [
    ({"latency_us_p50": float("nan")}, "latency_us_p50"),
    ({"latency_us_p50": -1.0}, "latency_us_p50"),
    ({"free_bytes": -5}, "free_bytes"),
    ({"sha256": "A" * 64}, "sha256"),
    ({"sync_result": "exploded"}, "sync_result"),
    ({"sync_reason": "x" * 501}, "sync_reason"),
    ({"reported_at": "yesterday"}, "reported_at"),
    ({"reported_at": "2026-11-29T10:00:00"}, "reported_at"),  # no time zone
    ({"token": "smuggled"}, "token"),
]


def test_bad_bodies_get_422_with_a_reason_and_oversized_ones_413_never_500(shipping, service):
    sessions = shipping["sessions"]
    _, token = enroll(sessions)
    for change, field in BAD:
        status, body = post(service, json.dumps({**GOOD, **change}).encode(), token)
        assert (status, field in body["detail"]) == (422, True), (change, body)
    for raw in (b"not json", b"[1, 2]", b"", json.dumps({"free_bytes": 1}).encode()):
        status, body = post(service, raw, token)
        assert status == 422 and body["detail"], raw
    oversized = json.dumps({**GOOD, "sync_reason": "x" * 70_000}).encode()
    assert post(service, oversized, token)[0] == 413
    assert post(service, oversized, token, chunked=True)[0] == 413
    assert report_count(sessions) == 0
    assert post(service, json.dumps(GOOD).encode(), token)[0] == 201
    assert report_count(sessions) == 1


def test_an_unreachable_service_queues_the_report_and_a_later_run_delivers_it(
        shipping, service, tmp_path):
    sessions, state = shipping["sessions"], shipping["state"]
    _, token = enroll(sessions)
    tokens = token_file(tmp_path, token)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    done = report(nowhere, tokens, state)
    assert done.returncode == 5 and "queued" in done.stderr  # unavailable
    assert len(list((state / "report-queue").glob("*.json"))) == 1
    done = report(service, tokens, state)
    assert done.returncode == 0 and "sent 2 report(s)" in done.stdout
    assert list((state / "report-queue").glob("*.json")) == []
    assert report_count(sessions) == 2


def test_the_report_queue_keeps_only_the_newest_reports(tmp_path):
    from device.report import MAX_QUEUED, QUEUE_DIR, send_report

    queue = tmp_path / "state" / QUEUE_DIR
    queue.mkdir(parents=True)
    for k in range(MAX_QUEUED + 20):
        (queue / f"{k:020d}-1.json").write_text("{}")
    (tmp_path / "token").write_text("t")
    delivery = send_report("http://127.0.0.1:9", tmp_path / "token", tmp_path / "state")
    kept = sorted(p.name for p in queue.glob("*.json"))
    assert delivery.queued == len(kept) == MAX_QUEUED and delivery.sent == 0
    assert kept[0] == f"{21:020d}-1.json"  # the oldest 21 went, the new report came in


def test_the_release_folder_is_served_read_only_and_never_outside_itself(shipping, service):
    (shipping["root"] / "sensor").mkdir()
    (shipping["root"] / "sensor" / "index.json").write_text("hi")
    (shipping["root"] / "hello.txt").write_text("a file no channel has: not served")
    (shipping["root"].parent / "secret.txt").write_text("secret")
    host, port = service.removeprefix("http://").split(":")
    for method, path, expected in [("GET", "/releases/sensor/index.json", 200),
                                   ("GET", "/releases/hello.txt", 404),
                                   ("GET", "/releases/../secret.txt", 404),
                                   ("GET", "/releases/..%2Fsecret.txt", 404),
                                   ("GET", "/releases/%2e%2e/secret.txt", 404),
                                   ("PUT", "/releases/sensor/index.json", 405)]:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request(method, path, body=b"x" if method == "PUT" else None)
        response = connection.getresponse()
        assert response.status == expected, path
        assert b"secret" not in response.read()
        connection.close()


def test_the_service_starts_without_tensorflow_or_prefect_and_the_device_report_alone():
    code = ("import sys, service.app, flows.commands.fleet; import device.report; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'prefect') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    code = ("import sys, device.cli, device.report; print(sorted(m for m in sys.modules if "
            "m.split('.')[0] in ('storage', 'flows', 'service', 'sqlalchemy', 'fastapi', "
            "'tensorflow')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_sync_with_report_to_reports_every_result_and_queues_while_the_service_is_away(
        shipping, service, tmp_path):
    from storage.releases import release_version, resign_open_releases

    sessions, state = shipping["sessions"], shipping["state"]
    with sessions() as session, session.begin():
        first = release_version(session, shipping["target"], shipping["v1"], "sensor",
                                channel="stable", by="test", reason="test").id
    device_id, token = enroll(sessions)
    tokens = token_file(tmp_path, token)
    sync = ["sync", "--channel", f"{service}/releases", "--device-class", "sensor", "--store", 7,
            "--state", state, "--public-key", shipping["public"]]

    def reported() -> list[tuple]:
        with sessions() as session:
            return [(r.release_id, r.sync_result) for r in session.scalars(
                select(DeviceReport).where(DeviceReport.device_id == device_id)
                .order_by(DeviceReport.id))]

    # half a report target is a bad command line: nothing synced, nothing sent
    done = device(*sync, "--report-to", service)
    assert done.returncode == 2 and "go together" in done.stderr
    assert not (state / "installed.json").exists() and reported() == []
    done = device(*sync, "--report-to", service, "--token-file", tokens)
    assert done.returncode == 0, done.stderr
    assert "sent 1 report(s)" in done.stdout and token not in done.stdout + done.stderr
    assert reported() == [(first, "installed")]
    assert device(*sync, "--report-to", service, "--token-file", tokens).returncode == 0
    with sessions() as session, session.begin():
        release_version(session, shipping["target"], shipping["v2"], "sensor", channel="stable",
                        by="test", reason="test")
    sign_index_with_a_stranger(shipping, tmp_path)
    done = device(*sync, "--report-to", service, "--token-file", tokens)
    assert done.returncode == 4  # the sync's own exit code, the report went anyway
    assert reported() == [(first, "installed"), (first, "up-to-date"), (first, "refused")]
    with sessions() as session, session.begin():  # the night's re-sign heals the channel
        resign_open_releases(session, shipping["target"])

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    done = device(*sync, "--report-to", nowhere, "--token-file", tokens)
    assert done.returncode == 0 and "1 report(s) queued" in done.stderr
    assert len(reported()) == 3
    done = device(*sync, "--report-to", service, "--token-file", tokens)
    assert done.returncode == 0 and "sent 2 report(s)" in done.stdout
    assert [r[1] for r in reported()[3:]] == ["installed", "up-to-date"]
    assert list((state / "report-queue").glob("*.json")) == []


def test_bench_fleet_measures_reports_per_second_and_fleet_status(tmp_path, capsys):
    import argparse

    from flows.commands.bench import fleet

    fleet(argparse.Namespace(devices=5, clients=2, seconds=1.0, max_reports=40,
                             status_devices=30, database_url=None, out=str(tmp_path)))
    result = json.loads((tmp_path / "results.json").read_text())
    assert [r["backend"] for r in result["rows"]][0] == "sqlite"
    for row in result["rows"]:
        assert row["accepted"] > 0 and row["refused"] == 0 and row["reports_per_s"] > 0
        assert row["accepted"] <= 40 + 2  # each thread stops at the bound (one in flight each)
        assert row["status_devices"] == 30 and row["status_s"] > 0
    assert "reports_per_s" in capsys.readouterr().out
