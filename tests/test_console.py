"""The ops console through its HTTP API and forms (FastAPI's TestClient over the whole
service): who may read and do what, CSRF, sessions, approvals and the audit trail, on SQLite
and PostgreSQL."""

from __future__ import annotations

import re

from factories import PASSWORD
from sqlalchemy import select

from storage.models import Action, Alert
from storage.releases import open_releases

PAGES = ("tonight", "models", "models/1", "alerts", "releases", "fleet", "drift",
         "drift?store=1", "audit")


def login(client, name: str) -> str:
    """Log `name` in through the JSON API; the cookie stays in the client; the CSRF token."""
    response = client.post("/api/login", json={"name": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["csrf_token"]


def form_token(client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', client.get(path).text).group(1)


def waiting_canary(catalog, device_class: str = "tablet") -> int:
    with catalog.session() as session:
        return open_releases(session, device_class)["canary"].id


def open_unacknowledged_alert(catalog) -> int:
    with catalog.session() as session:
        return session.scalar(select(Alert.id).where(Alert.acknowledged_at.is_(None),
                                                     Alert.resolved_at.is_(None)))


def actions(catalog) -> list[tuple]:
    """The audit trail but the logins (tests/test_service_hardening.py checks those)."""
    with catalog.session() as session:
        return [(a.actor, a.via, a.action, a.target, a.note)
                for a in session.scalars(select(Action).where(~Action.action.startswith("login."))
                                         .order_by(Action.id))]


def test_anonymous_pages_go_to_the_login_and_the_api_answers_401(console, console_catalog):
    for page in PAGES:
        response = console.get(f"/{page}", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=/")
        assert console.get(f"/api/{page}").status_code == 401
    alert = open_unacknowledged_alert(console_catalog)
    response = console.post(f"/api/alerts/{alert}/ack", json={"note": "me"})
    assert response.status_code == 401 and response.json()["detail"] == "log in first"
    assert console.post(f"/alerts/{alert}/ack", data={"note": "me"}).status_code == 401
    assert actions(console_catalog) == []


def test_a_wrong_password_is_refused_and_a_login_sets_an_httponly_lax_cookie(console):
    assert console.post("/api/login", json={"name": "vic", "password": "wrong password"}
                        ).status_code == 401
    assert console.post("/api/login", json={"name": "nobody", "password": PASSWORD}
                        ).status_code == 401
    console.get("/login")  # the login form's own token cookie
    token = re.search(r'name="login_token" value="([^"]+)"', console.get("/login").text).group(1)
    response = console.post("/login", data={"name": "vic", "password": PASSWORD,
                                            "login_token": token, "next": "/alerts"},
                            follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/alerts"
    cookie = next(h for h in response.headers.get_list("set-cookie")
                  if h.startswith("shelfcast_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert console.get("/api/me").json() == {"name": "vic", "role": "viewer"}


def test_the_login_form_without_its_token_is_refused(console):
    response = console.post("/login", data={"name": "vic", "password": PASSWORD},
                            follow_redirects=False)
    assert response.status_code == 403
    assert console.get("/api/me").status_code == 401


def test_a_viewer_reads_every_page_and_its_json_twin_shows_the_same(console, console_catalog):
    login(console, "vic")
    for page in PAGES:
        assert console.get(f"/{page}").status_code == 200, page
        assert console.get(f"/api/{page}").status_code == 200, page
    tonight = console.get("/api/tonight").json()
    html = console.get("/tonight").text
    assert f"Night {tonight['night']['as_of']}" in html
    assert all(f'<a href="/models/{v["id"]}">' in html for v in tonight["variants"])
    assert "<svg" in html and "Approve" not in console.get("/releases").text  # no write forms
    releases = console.get("/api/releases").json()
    tablet = next(c for c in releases["classes"] if c["device_class"] == "tablet")
    assert tablet["waits_for_approval"] and tablet["policy"]["require_approval"]
    version = console.get("/api/models/1").json()
    assert version["decisions"] and version["slices"]["stores"]
    download = console.get(version["download"])
    assert len(download.content) == version["artifact_bytes"]
    assert console.get("/api/models/999999").status_code == 404


def test_a_viewers_writes_are_refused_with_403_and_change_nothing(console, console_catalog):
    token = login(console, "vic")
    alert = open_unacknowledged_alert(console_catalog)
    canary = waiting_canary(console_catalog)
    headers = {"X-CSRF-Token": token}
    assert console.post(f"/api/alerts/{alert}/ack", json={}, headers=headers).status_code == 403
    assert console.post(f"/api/releases/{canary}/approve", headers=headers).status_code == 403
    assert console.post("/api/releases/tablet/rollback", json={"reason": "x"},
                        headers=headers).status_code == 403
    page = console.post(f"/alerts/{alert}/ack", data={"csrf_token": token})
    assert page.status_code == 403 and "vic is viewer; this needs ops" in page.text
    assert open_unacknowledged_alert(console_catalog) == alert and actions(console_catalog) == []


def test_writes_need_the_sessions_csrf_token(console, console_catalog):
    token = login(console, "olu")
    alert = open_unacknowledged_alert(console_catalog)
    assert console.post(f"/api/alerts/{alert}/ack", json={}).status_code == 403
    assert console.post(f"/api/alerts/{alert}/ack", json={},
                        headers={"X-CSRF-Token": "0" * 40}).status_code == 403
    assert console.post(f"/alerts/{alert}/ack", data={"note": "x"}).status_code == 403
    other = login(console, "ana")  # another session's token does not fit olu's session
    login(console, "olu")
    assert console.post(f"/alerts/{alert}/ack",
                        data={"csrf_token": other, "note": "x"}).status_code == 403
    assert actions(console_catalog) == []
    assert token != other


def test_ops_acknowledges_an_alert_in_a_form_and_the_audit_trail_says_who(console,
                                                                          console_catalog):
    login(console, "olu")
    alert = open_unacknowledged_alert(console_catalog)
    response = console.post(f"/alerts/{alert}/ack", follow_redirects=False, data={
        "csrf_token": form_token(console, "/alerts"), "note": "store 2 had a holiday"})
    assert response.status_code == 303 and response.headers["location"].startswith("/alerts?msg=")
    shown = console.get("/api/alerts?state=acknowledged").json()["alerts"]
    acked = next(a for a in shown if a["id"] == alert)
    assert (acked["acknowledged_by"], acked["ack_note"]) == ("olu", "store 2 had a holiday")
    assert actions(console_catalog) == [("olu", "console", "alert.ack", f"alert {alert}",
                                         "store 2 had a holiday")]
    again = console.post(f"/alerts/{alert}/ack", data={"csrf_token": form_token(
        console, "/alerts")})
    assert "already acknowledged by olu" in again.text  # the refusal, on the page


def test_ops_approves_the_waiting_canary_once_and_a_stale_approval_is_refused(console,
                                                                             console_catalog):
    token = login(console, "olu")
    headers = {"X-CSRF-Token": token}
    canary = waiting_canary(console_catalog)
    with console_catalog.session() as session:
        stable = open_releases(session, "tablet")["stable"].id
    response = console.post(f"/api/releases/{stable}/approve", headers=headers, json={})
    assert response.status_code == 409
    assert f"release {stable} is not the open canary of tablet (the open canary is release " \
           f"{canary})" in response.json()["detail"]
    response = console.post(f"/api/releases/{canary}/approve", headers=headers,
                            json={"note": "numbers look right"})
    assert response.status_code == 200 and response.json()["by"] == "olu"
    assert console.post(f"/api/releases/{canary}/approve", headers=headers).status_code == 409
    tablet = next(c for c in console.get("/api/releases").json()["classes"]
                  if c["device_class"] == "tablet")
    assert tablet["canary"]["approved_by"] == "olu" and not tablet["waits_for_approval"]
    assert actions(console_catalog) == [("olu", "api", "release.approve", f"release {canary}",
                                         "numbers look right")]


def test_only_an_admin_changes_whether_a_class_requires_approval(console, console_catalog):
    token = login(console, "olu")
    body = {"require_approval": True}
    assert console.post("/api/gate/sensor/approval", json=body,
                        headers={"X-CSRF-Token": token}).status_code == 403
    token = login(console, "ana")
    response = console.post("/api/gate/sensor/approval", json=body,
                            headers={"X-CSRF-Token": token})
    assert response.status_code == 200, response.text
    sensor = next(c for c in console.get("/api/releases").json()["classes"]
                  if c["device_class"] == "sensor")
    assert sensor["policy"]["require_approval"] and sensor["policy"]["created_by"] == "ana"
    assert console.post("/api/gate/nosuch/approval", json=body,
                        headers={"X-CSRF-Token": token}).status_code == 404
    assert [a[:3] for a in actions(console_catalog)] == [("ana", "api", "gate.set")]


def test_ops_rolls_back_with_a_reason_and_promotes_only_what_passed(console, console_catalog):
    token = login(console, "olu")
    headers = {"X-CSRF-Token": token}
    assert console.post("/api/releases/tablet/rollback", json={"reason": ""},
                        headers=headers).status_code == 422
    canary = waiting_canary(console_catalog)
    response = console.post("/api/releases/tablet/rollback", json={"reason": "store 1 unhappy"},
                            headers=headers)
    assert response.status_code == 200, response.text
    with console_catalog.session() as session:
        assert "canary" not in open_releases(session, "tablet")
    refused = next(v for v in console.get("/api/models").json()["versions"]
                   if "tablet" not in v["passed_for"])
    response = console.post("/api/releases/promote", headers=headers, json={
        "version": refused["id"], "device_class": "tablet"})
    assert response.status_code == 422 and "did not pass the gate" in response.json()["detail"]
    passed = console.get("/api/models?device_class=tablet&status=approved").json()["versions"][0]
    response = console.post("/api/releases/promote", headers=headers, json={
        "version": passed["id"], "device_class": "tablet", "reason": "try it"})
    assert response.status_code == 200, response.text
    assert [a[:4] for a in actions(console_catalog)] == [
        ("olu", "api", "release.rollback", "tablet"),
        ("olu", "api", "release.promote", f"release {canary + 2}")]


def test_logout_ends_the_session_on_the_server(console, console_catalog):
    login(console, "vic")
    session_id = console.cookies.get("shelfcast_session")
    response = console.post("/logout", data={"csrf_token": form_token(console, "/tonight")},
                            follow_redirects=False)
    assert response.status_code == 303
    console.cookies.set("shelfcast_session", session_id)  # the old cookie, replayed
    assert console.get("/api/me").status_code == 401


def test_the_device_api_keeps_its_bearer_tokens_and_the_release_channel_stays_public(console):
    response = console.post("/api/v1/reports", json={}, headers={"Authorization": "Bearer no"})
    assert response.status_code == 401
    assert response.json()["detail"] == "unknown or revoked device token"
    assert console.get("/api/v1/health").json() == {"status": "ok"}
    assert console.get("/releases/tablet/stable.json").status_code == 200
    assert console.get("/releases/tablet/nothing.json").status_code == 404


def test_a_drift_report_is_served_from_the_reports_folder_only(console):
    login(console, "vic")
    report = console.get("/api/drift").json()["reports"][0]
    response = console.get(f"/drift/{report['id']}/store.html")
    assert response.status_code == 200 and "Generated drift report per store" in response.text
    assert console.get(f"/drift/{report['id']}/secret.html").status_code == 404


def test_pages_escape_what_people_typed(console, console_catalog):
    token = login(console, "olu")
    alert = open_unacknowledged_alert(console_catalog)
    console.post(f"/api/alerts/{alert}/ack", json={"note": "<script>x()</script>"},
                 headers={"X-CSRF-Token": token})
    page = console.get("/alerts?state=acknowledged").text
    assert "<script>" not in page and "&lt;script&gt;x()&lt;/script&gt;" in page


def test_a_script_uses_an_api_token_without_cookie_or_csrf_and_a_device_token_is_no_user(
        console, console_catalog):
    from storage.devices import enroll_device
    from storage.users import issue_api_token

    with console_catalog.unit_of_work() as session:
        token = issue_api_token(session, "olu")
        device_token = enroll_device(session, store=1, device_class="sensor", by="test").token
    bearer = {"Authorization": f"Bearer {token}"}
    assert console.get("/api/me", headers=bearer).json() == {"name": "olu", "role": "ops"}
    alert = open_unacknowledged_alert(console_catalog)
    response = console.post(f"/api/alerts/{alert}/ack", json={"note": "from a script"},
                            headers=bearer)
    assert response.status_code == 200, response.text
    assert actions(console_catalog)[-1][:3] == ("olu", "api", "alert.ack")
    assert console.post("/api/gate/sensor/approval", json={"require_approval": True},
                        headers=bearer).status_code == 403  # ops, not admin
    for other in (device_token, "sc_not-a-token"):
        assert console.get("/api/me", headers={"Authorization": f"Bearer {other}"}
                           ).status_code == 401
    with console_catalog.unit_of_work() as session:
        issue_api_token(session, "olu")  # a new token: the old one stops working
    assert console.get("/api/me", headers=bearer).status_code == 401
