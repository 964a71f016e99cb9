"""The service against an outside attacker (issue 28): security headers, login lockout per user
and per address, X-Forwarded-For believed only from a configured proxy, the API docs behind a
login, a device's share of reports, every login in the audit trail, the password policy, and
control characters refused. FastAPI's TestClient over the whole service (SQLite), and one real
uvicorn on loopback for the forwarded headers."""

from __future__ import annotations

import re
import threading
import time

import httpx
import pytest
from factories import PASSWORD, free_port, run_cli
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app, server_options
from storage.catalog import Catalog
from storage.errors import RegistryError
from storage.models import Action, Alert

WRONG = "not the password at all"


@pytest.fixture
def console_catalog(database_url, tmp_path):
    """As in tests/conftest.py but with one generated night: these tests need the users, a
    night and its drift report, not a week of history."""
    from factories import fill_console_registry

    from storage.settings import Settings

    catalog = Catalog(Settings(home=tmp_path / "home", database_url=database_url))
    fill_console_registry(catalog, nights=1)
    yield catalog
    catalog.dispose()


def app_with(catalog: Catalog, **settings) -> TestClient:
    """A client of the service over `catalog`'s registry with some settings changed."""
    changed = Catalog(catalog.settings.model_copy(update=settings))
    return TestClient(create_app(changed))


def logins(catalog) -> list[tuple[str, str, str, str]]:
    with catalog.session() as session:
        return [(a.actor, a.via, a.action, a.target) for a in session.scalars(
            select(Action).where(Action.action.startswith("login")).order_by(Action.id))]


def api_login(client, name: str, password: str = PASSWORD, **headers):
    return client.post("/api/login", json={"name": name, "password": password}, headers=headers)


# -- headers ---------------------------------------------------------------------------------


def test_every_answer_carries_the_security_headers_and_signed_in_pages_are_not_cached(console):
    api_login(console, "vic")
    for path in ("/login", "/tonight", "/api/tonight", "/api/v1/health", "/nowhere",
                 "/static/console.css"):
        headers = console.get(path).headers
        policy = headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert "unsafe-inline" not in policy, path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path
        assert headers["referrer-policy"] == "same-origin", path
        assert "strict-transport-security" not in headers, path  # plain http
    for path in ("/tonight", "/api/tonight", "/api/me", "/login"):
        assert console.get(path).headers["cache-control"] == "no-store", path
    assert "no-store" not in console.get("/static/console.css").headers.get("cache-control", "")


def test_the_console_pages_need_no_inline_style_or_script(console):
    api_login(console, "olu")
    for path in ("/login", "/tonight", "/models", "/alerts", "/releases", "/fleet", "/drift",
                 "/audit"):
        html = console.get(path).text
        assert not re.search(r"\sstyle=|<style|<script(?![^>]*\ssrc=)|\son[a-z]+=", html), path


def test_an_evidently_report_gets_a_sandboxed_policy_of_its_own(console):
    api_login(console, "vic")
    report = next(r for r in console.get("/api/drift").json()["reports"] if r["reports"])
    response = console.get(f"/drift/{report['id']}/{report['reports'][0][:-5]}.html")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert policy.startswith("sandbox allow-scripts") and "allow-same-origin" not in policy
    assert "frame-ancestors 'none'" in policy


def test_over_https_hsts_is_sent_and_the_session_cookie_is_secure(console_catalog):
    with TestClient(create_app(console_catalog), base_url="https://testserver") as client:
        response = api_login(client, "vic")
        assert response.status_code == 200
        assert "Secure" in response.headers["set-cookie"]
        assert response.headers["strict-transport-security"].startswith("max-age=")
    with TestClient(create_app(console_catalog)) as client:
        assert "Secure" not in api_login(client, "vic").headers["set-cookie"]
    with app_with(console_catalog, console_cookie_secure=True) as client:
        assert "Secure" in api_login(client, "vic").headers["set-cookie"]


# -- login throttling and its audit ----------------------------------------------------------


def test_five_wrong_passwords_lock_the_user_with_429_and_each_login_is_audited(
        console, console_catalog):
    assert api_login(console, "ana").status_code == 200
    codes = [api_login(console, "vic", WRONG).status_code for _ in range(5)]
    assert codes == [401, 401, 401, 401, 429]
    locked = api_login(console, "vic")  # even the right password, while locked
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 60
    assert locked.json()["detail"] == "too many failed logins for user 'vic'; try again later"
    page = console.post("/login", data={"name": "vic", "password": PASSWORD,
                                        "login_token": _login_token(console)})
    assert page.status_code == 429 and "too many failed logins for user" in page.text
    assert api_login(console, "olu").status_code == 200  # others are not locked out
    assert logins(console_catalog) == [
        ("ana", "api", "login.ok", "testclient"),
        *[("vic", "api", "login.failed", "testclient")] * 5,
        ("vic", "api", "login.locked", "testclient"),
        ("olu", "api", "login.ok", "testclient")]


def _login_token(client) -> str:
    return re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text).group(1)


def test_one_address_is_refused_after_its_failures_whatever_the_names(console_catalog):
    with app_with(console_catalog, login_address_limit="3 per 15 minutes") as client:
        codes = [api_login(client, name, WRONG).status_code
                 for name in ("ana", "olu", "vic", "bob")]
        assert codes == [401, 401, 429, 429]
        refused = api_login(client, "ana")
        assert refused.status_code == 429 and "for this address" in refused.json()["detail"]


def test_password_checks_beyond_the_bound_answer_503_at_once(console_catalog, monkeypatch):
    import service.console.auth as auth

    checking, go_on = threading.Event(), threading.Event()
    real_check = auth.verify_password

    def held_check(*args, **kwargs):
        checking.set()
        go_on.wait(60)
        return real_check(*args, **kwargs)

    monkeypatch.setattr(auth, "verify_password", held_check)
    with app_with(console_catalog, login_concurrent_checks=1, login_check_wait_s=0) as client:
        first = []
        holder = threading.Thread(target=lambda: first.append(api_login(client, "vic")))
        holder.start()
        assert checking.wait(60)  # vic's login holds the one check
        busy = api_login(client, "olu")
        go_on.set()
        holder.join()
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert first[0].status_code == 200
    assert logins(console_catalog) == [("vic", "api", "login.ok", "testclient")]


def test_forwarded_for_counts_only_when_the_peer_is_a_trusted_proxy(console_catalog):
    """A real uvicorn with `shelfcast serve`'s options: without a trusted proxy every attempt
    is 127.0.0.1's, whatever X-Forwarded-For says; with 127.0.0.1 trusted, each its own."""
    for trusted, expected in (([], [401, 401, 429]), (["127.0.0.1"], [401, 401, 401])):
        with _served(console_catalog, trusted_proxies=trusted,
                     login_address_limit="3 per 15 minutes") as url:
            codes = [httpx.post(f"{url}/api/login", json={"name": name, "password": WRONG},
                                headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
                     for n, name in enumerate(("ana", "olu", "vic"))]
        assert codes == expected, trusted
    targets = [target for *_, target in logins(console_catalog)]
    assert targets[:2] == ["127.0.0.1"] * 2 and targets[-3:] == [f"203.0.113.{n}" for n in range(3)]


class _served:
    """The service under uvicorn on a free loopback port in a thread, stopped on exit."""

    def __init__(self, catalog: Catalog, **settings):
        import uvicorn

        changed = Catalog(catalog.settings.model_copy(update=settings))
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(
            create_app(changed), host="127.0.0.1", port=self.port, log_level="warning",
            **server_options(changed.settings)))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_) -> None:
        self.server.should_exit = True
        self.thread.join()


# -- the API docs, devices' reports ----------------------------------------------------------


def test_the_api_docs_and_schema_are_only_for_logged_in_users(console):
    assert console.get("/api/openapi.json").status_code == 401
    assert console.get("/api/docs").status_code == 401
    api_login(console, "vic")
    schema = console.get("/api/openapi.json")
    assert schema.status_code == 200 and "/api/v1/reports" in schema.json()["paths"]
    docs = console.get("/api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert re.search(r"script-src [^;]*'sha256-", docs.headers["content-security-policy"])


def _report(**fields) -> dict:
    return {"reported_at": "2018-01-01T00:00:00+00:00", "release_id": None, "sha256": None,
            "sync_result": "up-to-date", "smoke_test_ok": True, "latency_us_p50": 10.0,
            "free_bytes": 1000, **fields}


def _device_token(catalog) -> str:
    from storage.devices import enroll_device

    with catalog.unit_of_work() as session:
        return enroll_device(session, store=1, device_class="sensor", by="test").token


def test_a_device_sends_at_most_its_share_of_reports(console_catalog):
    headers = {"Authorization": f"Bearer {_device_token(console_catalog)}"}
    with app_with(console_catalog, device_report_limit="2 per hour") as client:
        codes = [client.post("/api/v1/reports", json=_report(), headers=headers).status_code
                 for _ in range(3)]
        refused = client.post("/api/v1/reports", json=_report(), headers=headers)
    assert codes == [201, 201, 429]
    assert int(refused.headers["retry-after"]) > 3000 and "reports" in refused.json()["detail"]


# -- control characters and ids --------------------------------------------------------------


def test_a_control_character_in_any_text_is_a_422_in_one_line_and_stores_nothing(
        console, console_catalog):
    headers = {"Authorization": f"Bearer {_device_token(console_catalog)}"}
    refused = console.post("/api/v1/reports", json=_report(sync_reason="bad\x00reason"),
                           headers=headers)
    assert refused.status_code == 422 and "U+0000" in refused.json()["detail"]
    assert api_login(console, "vic\x00", WRONG).status_code == 422
    token = api_login(console, "olu").json()["csrf_token"]
    with console_catalog.session() as session:
        alert = session.scalar(select(Alert.id).where(Alert.acknowledged_at.is_(None)))
    note = console.post(f"/api/alerts/{alert}/ack", json={"note": "seen\x07"},
                        headers={"X-CSRF-Token": token})
    assert note.status_code == 422 and note.json()["detail"] == \
        "the note contains the control character U+0007 at position 4"
    assert console.get("/api/models?device_class=sen%00sor").status_code == 422
    assert console.get("/api/models/1%00").status_code == 422
    assert [a for *_, a in logins(console_catalog)][-1:] == ["testclient"]  # olu's login only
    with console_catalog.session() as session:
        assert session.scalars(select(Action).where(Action.action == "alert.ack")).all() == []


def test_an_id_outside_the_registry_range_is_a_422_wherever_it_comes_in(console,
                                                                       console_catalog):
    token = api_login(console, "olu").json()["csrf_token"]
    writes = {"X-CSRF-Token": token}
    for bad_id in (0, -1, 2**31, 2**63, 10**30):
        for path in ("/api/models/{id}", "/models/{id}", "/models/{id}/tflite",
                     "/drift/{id}/store.html", "/api/drift?store={id}"):
            assert console.get(path.format(id=bad_id)).status_code == 422, (path, bad_id)
        for path in ("/api/alerts/{id}/ack", "/api/releases/{id}/approve"):
            assert console.post(path.format(id=bad_id), json={},
                                headers=writes).status_code == 422, (path, bad_id)
        promote = console.post("/api/releases/promote", headers=writes, json={
            "version": bad_id, "device_class": "sensor", "channel": "canary"})
        assert promote.status_code == 422, bad_id
    with console_catalog.session() as session:
        assert session.scalars(select(Action).where(~Action.action.startswith("login"))
                               ).all() == []


# -- the password policy ---------------------------------------------------------------------


@pytest.mark.parametrize("password, message", [
    ("a", "12 to 1024 characters, got 1"),
    ("password", "12 to 1024 characters, got 8"),
    ("Password2024!", "common or breached"),
    ("qwertyqwerty", "common or breached"),
    ("123456789012", "common or breached"),
    ("aaaaaaaaaaaaaaaa", "fewer than 5 different characters"),
    ("my name is Ana!!", "must not contain the user name"),
])
def test_a_weak_password_is_refused_with_why(sessions, password, message):
    from storage.users import add_user

    with sessions() as session, session.begin():
        with pytest.raises(RegistryError, match=message):
            add_user(session, "ana", role="ops", password=password, by="test")
        assert add_user(session, "ana", role="ops", password="correct horse battery staple",
                        by="test").name == "ana"


def test_cli_users_add_refuses_a_weak_password_in_one_line(monkeypatch, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("password123\n")
    code, _, err = run_cli(["users", "add", "ana", "--role", "ops", "--password-file",
                            str(secret)], monkeypatch, tmp_path)
    assert code == 2 and err.count("\n") == 1 and "12 to 1024 characters, got 11" in err
