"""Confirmations with a preview: promote, roll back, the approval policy and a device's
revoke each show, before anything changes, which stores and devices get which version
instead of which (the page's GET and the API's `dry_run` change nothing), computed by the
same plan the action then carries out."""

from __future__ import annotations

import re

import pytest
from factories import PASSWORD
from sqlalchemy import select

from storage.devices import enroll_device
from storage.models import Action, Device, GateDecision, ModelVersion
from storage.releases import open_releases


def login(client, name: str) -> str:
    response = client.post("/api/login", json={"name": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["csrf_token"]


def written(catalog) -> list[tuple]:
    """The audit trail's writes (logins left out)."""
    with catalog.session() as session:
        return [(a.actor, a.via, a.action) for a in session.scalars(
            select(Action).where(~Action.action.startswith("login")).order_by(Action.id))]


def open_state(catalog, device_class: str = "tablet") -> dict:
    with catalog.session() as session:
        return {channel: (r.id, r.model_version_id)
                for channel, r in open_releases(session, device_class).items()}


def promotable(catalog, device_class: str = "tablet") -> ModelVersion:
    """A version that passed the gate for the class, not retired, not what the class runs."""
    running = {v for _, v in open_state(catalog, device_class).values()}
    with catalog.session() as session:
        return next(d.model_version for d in session.scalars(
            select(GateDecision).where(GateDecision.device_class == device_class,
                                       GateDecision.passed).order_by(GateDecision.id.desc()))
            if d.model_version.status != "retired" and d.model_version_id not in running)


def enroll(catalog, store: int, device_class: str = "tablet") -> int:
    with catalog.unit_of_work() as session:
        enroll_device(session, store=store, device_class=device_class, by="test")
        return session.scalar(select(Device.id).order_by(Device.id.desc()).limit(1))


def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_the_promote_confirmation_says_which_stores_and_devices_get_what_and_changes_nothing(
        console, console_catalog):
    canary_device, other_device = enroll(console_catalog, 1), enroll(console_catalog, 2)
    login(console, "olu")
    version = promotable(console_catalog)
    before = open_state(console_catalog)
    page = console.get(f"/releases/promote/confirm?version={version.id}&device_class=tablet"
                       "&channel=canary&reason=try+it")
    assert page.status_code == 200
    html = page.text
    assert f"Release version {version.id} ({version.variant}, {version.artifact_bytes:,} B, " \
           f"MAPE {version.mape_pct:.2f} %) to tablet, canary channel" in html
    assert f"canary store 1 (devices {canary_device})" in html
    assert f"the other store 2 (devices {other_device})" in html
    assert "after 3 clean canary night(s) and a person&#39;s approval (the class requires " \
           "one)" in html  # tablets need an approval (factories)
    assert f"release {before['canary'][0]} (canary) ends, superseded" in html
    assert open_state(console_catalog) == before and written(console_catalog) == []
    # Confirm posts the same form, with the session's CSRF token
    fields = hidden_fields(html)
    assert fields["version"] == str(version.id) and fields["reason"] == "try it"
    assert 'id="cancel" href="/releases"' in html
    response = console.post("/releases/promote", data=fields, follow_redirects=False)
    assert response.status_code == 303 and "msg=version" in response.headers["location"]
    after = open_state(console_catalog)
    assert after["canary"][1] == version.id and after["stable"] == before["stable"]
    assert written(console_catalog) == [("olu", "console", "release.promote")]


def test_the_api_dry_run_returns_the_same_preview_as_the_page_and_acts_on_nothing(
        console, console_catalog):
    token = login(console, "olu")
    headers = {"X-CSRF-Token": token}
    version = promotable(console_catalog)
    before = open_state(console_catalog)
    response = console.post("/api/releases/promote", headers=headers, json={
        "version": version.id, "device_class": "tablet", "channel": "stable", "dry_run": True})
    assert response.status_code == 200, response.text
    plan = response.json()["plan"]
    assert response.json()["dry_run"] is True and plan["action"] == "promote"
    assert plan["headline"].endswith("to tablet, stable channel")
    [change] = plan["changes"]
    assert change["who"].startswith("every store") and change["gets"].startswith(
        f"version {version.id} (")
    assert f"version {before['stable'][1]} (" in change["replacing"]
    page = console.get(f"/releases/promote/confirm?version={version.id}&device_class=tablet"
                       "&channel=stable").text
    assert plan["headline"].replace("'", "&#39;") in page
    response = console.post("/api/releases/tablet/rollback", headers=headers,
                            json={"reason": "store 1 unhappy", "dry_run": True})
    rollback = response.json()["plan"]
    assert rollback["headline"].startswith(f"Roll back tablet's canary release "
                                           f"{before['canary'][0]}: version "
                                           f"{before['canary'][1]} (")
    assert rollback["changes"][0]["gets"].startswith(f"version {before['stable'][1]} (")
    response = console.post("/api/releases/promote", headers=headers, json={
        "version": 999999, "device_class": "tablet", "dry_run": True})
    assert response.status_code == 404  # refused as the action would be
    assert open_state(console_catalog) == before and written(console_catalog) == []


def test_a_rollback_confirmation_shows_what_comes_back_and_a_refused_preview_returns(
        console, console_catalog):
    login(console, "olu")
    before = open_state(console_catalog)
    html = console.get("/releases/tablet/rollback/confirm?reason=store+1+unhappy").text
    assert f"release {before['canary'][0]} ends and version {before['canary'][1]} is " \
           "retired" in html
    assert 'class="act danger" type="submit" id="confirm"' in html
    response = console.get("/releases/tablet/rollback/confirm", follow_redirects=False)
    assert response.status_code == 303 and "a%20reason%20is%20required" in \
        response.headers["location"]
    response = console.get("/releases/nosuch/rollback/confirm?reason=x", follow_redirects=False)
    assert response.status_code == 303 and "err=" in response.headers["location"]
    response = console.post("/releases/tablet/rollback", data=hidden_fields(html),
                            follow_redirects=False)
    assert "msg=tablet%20rolled%20back" in response.headers["location"]
    assert "canary" not in open_state(console_catalog)
    assert written(console_catalog) == [("olu", "console", "release.rollback")]


def test_the_approval_policy_change_is_previewed_for_an_admin_only(console, console_catalog):
    login(console, "olu")
    assert console.get("/gate/sensor/approval/confirm?require_approval=yes").status_code == 403
    token = login(console, "ana")
    html = console.get("/gate/sensor/approval/confirm?require_approval=yes").text
    assert "Require a person&#39;s approval before sensor canaries go to the fleet" in html
    assert "adds gate policy version" in html and "then waits for a person" in html
    response = console.post("/api/gate/tablet/approval", headers={"X-CSRF-Token": token},
                            json={"require_approval": True, "dry_run": True})
    assert response.status_code == 409 and "already requires" in response.json()["detail"]
    response = console.post("/gate/sensor/approval", data=hidden_fields(html),
                            follow_redirects=False)
    assert "msg=sensor%20policy%20version" in response.headers["location"]
    assert written(console_catalog) == [("ana", "console", "gate.set")]


def test_an_admin_revokes_a_device_from_the_fleet_page_after_its_confirmation(console,
                                                                              console_catalog):
    device = enroll(console_catalog, 1)
    login(console, "olu")
    assert f'id="revoke-{device}"' not in console.get("/fleet").text
    assert console.get(f"/fleet/devices/{device}/revoke/confirm").status_code == 403
    token = login(console, "ana")
    assert f'href="/fleet/devices/{device}/revoke/confirm"' in console.get("/fleet").text
    html = console.get(f"/fleet/devices/{device}/revoke/confirm").text
    assert f"Revoke device {device} of store 1" in html
    assert "refused: its token no longer authenticates (401)" in html
    preview = console.post(f"/api/devices/{device}/revoke", headers={"X-CSRF-Token": token},
                           json={"dry_run": True}).json()["plan"]
    assert preview["action"] == "revoke" and written(console_catalog) == []
    response = console.post(f"/fleet/devices/{device}/revoke", data=hidden_fields(html),
                            follow_redirects=False)
    assert response.status_code == 303 and f"msg=device%20{device}%20revoked" in \
        response.headers["location"]
    response = console.post(f"/api/devices/{device}/revoke", headers={"X-CSRF-Token": token})
    assert response.status_code == 409 and "revoked already" in response.json()["detail"]
    assert written(console_catalog) == [("ana", "console", "device.revoke")]


def test_confirm_pages_need_a_login_and_their_forms_the_sessions_token(console,
                                                                      console_catalog):
    response = console.get("/releases/tablet/rollback/confirm?reason=x", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    login(console, "olu")
    html = console.get("/releases/tablet/rollback/confirm?reason=x").text
    forged = {**hidden_fields(html), "csrf_token": "0" * 40}
    assert console.post("/releases/tablet/rollback", data=forged).status_code == 403
    assert written(console_catalog) == []
