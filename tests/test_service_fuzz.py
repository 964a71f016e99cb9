"""Hypothesis against the service's inputs (issue 28): any text (NUL, control characters,
unpaired surrogates, any unicode) and any integer where an id goes, in the login, the device
report, the console's forms and JSON writes, paths and queries, on SQLite and PostgreSQL. No
answer is a server error: bad input is a 4xx in one line."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from factories import PASSWORD
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from storage.models import Alert, Release

BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param(
    "postgresql", marks=pytest.mark.postgres)], indirect=True)
FEW = settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])

ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=40) | \
    st.sampled_from(["\x00", "a\x00b", "\ud800", "sensor\x00", "\x1b[31m", "\u202e", "0" * 40])
ANY_ID = st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from(
    [0, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64])


@pytest.fixture
def signed_in(console, console_catalog):
    """The service, an ops user's CSRF header, a device's bearer header, and ids that exist."""
    from storage.devices import enroll_device

    response = console.post("/api/login", json={"name": "olu", "password": PASSWORD})
    with console_catalog.unit_of_work() as session:
        device = enroll_device(session, store=1, device_class="sensor", by="test")
        token = device.token
        alert = session.scalar(select(Alert.id).where(Alert.acknowledged_at.is_(None)))
        release = session.scalar(select(Release.id))
    return dict(client=console, writes={"X-CSRF-Token": response.json()["csrf_token"]},
                device={"Authorization": f"Bearer {token}"}, alert=alert, release=release)


def _no_server_error(response) -> None:
    assert response.status_code < 500, (response.request.method, str(response.request.url),
                                        response.status_code, response.text[:300])


def _post(client, path: str, body: dict, headers: dict | None = None):
    """POST `body` as JSON with non-ASCII escaped, so an unpaired surrogate travels as the
    JSON escape a client may send ("\\ud800")."""
    return client.post(path, content=json.dumps(body), headers={
        "Content-Type": "application/json", **(headers or {})})


def _form_safe(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")  # a form is UTF-8 bytes


@BOTH
@FEW
@given(text=ANY_TEXT)
def test_no_text_anywhere_gives_a_server_error(signed_in, text):
    client, writes = signed_in["client"], signed_in["writes"]
    in_path = quote(text, safe="", errors="surrogatepass")
    answers = [
        _post(client, "/api/login", {"name": text, "password": text}),
        client.post("/login", data={"name": _form_safe(text), "password": _form_safe(text),
                                    "login_token": _login_token(client)}),
        _post(client, "/api/v1/reports", {
            "reported_at": "2018-01-01T00:00:00+00:00", "release_id": None, "sha256": None,
            "sync_result": "failed", "sync_reason": text, "smoke_test_ok": None,
            "latency_us_p50": None, "free_bytes": 1}, signed_in["device"]),
        _post(client, f"/api/alerts/{signed_in['alert']}/ack", {"note": text}, writes),
        _post(client, f"/api/releases/{signed_in['release']}/approve", {"note": text}, writes),
        _post(client, "/api/releases/promote", {
            "version": 1, "device_class": text, "channel": "canary", "reason": text}, writes),
        _post(client, f"/api/releases/{in_path}/rollback", {"reason": text}, writes),
        client.get(f"/api/models?device_class={in_path}&status={in_path}"),
        client.get(f"/models?device_class={in_path}"),
        client.get(f"/drift/1/{in_path}.html"),
        client.get(f"/{in_path}"),
    ]
    for response in answers:
        _no_server_error(response)


def _login_token(client) -> str:
    return re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text).group(1)


@BOTH
@FEW
@given(record_id=ANY_ID)
def test_no_id_anywhere_gives_a_server_error(signed_in, record_id):
    client, writes = signed_in["client"], signed_in["writes"]
    answers = [client.get(path.format(id=record_id)) for path in (
        "/api/models/{id}", "/models/{id}", "/models/{id}/tflite", "/drift/{id}/store.html",
        "/api/drift?store={id}", "/api/drift?item={id}", "/drift?store={id}")]
    answers += [client.post(path.format(id=record_id), json={}, headers=writes) for path in (
        "/api/alerts/{id}/ack", "/api/releases/{id}/approve")]
    answers.append(client.post("/api/releases/promote", headers=writes, json={
        "version": record_id, "device_class": "sensor", "channel": "canary"}))
    answers.append(client.post("/api/v1/reports", headers=signed_in["device"], json={
        "reported_at": "2018-01-01T00:00:00+00:00", "release_id": record_id, "sha256": None,
        "sync_result": None, "smoke_test_ok": None, "latency_us_p50": None,
        "free_bytes": record_id, "forecasts_made": record_id}))
    for response in answers:
        _no_server_error(response)
