"""Confirmations and silences in a real headless chromium against `shelfcast serve` on
loopback: promote -> the preview page -> confirm -> done; silence an alert -> the badge drops.
Screenshots of the confirmation and alerts pages go to SHELFCAST_SCREENSHOTS when set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_console_browser import arrives, browser, log_in, served  # noqa: F401 - fixtures


def _screenshot(driver, name: str) -> None:
    folder = os.environ.get("SHELFCAST_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def _badge(driver) -> int:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.ID, "alert-badge")
    return int(found[0].text) if found else 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_ops_promotes_through_the_preview_and_silences_an_alert_so_the_badge_drops(
        browser, served, console_catalog):  # noqa: F811 - the fixtures imported above
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    from sqlalchemy import select

    from storage.models import GateDecision
    from storage.releases import open_releases

    with console_catalog.session() as session:
        running = {r.model_version_id for r in open_releases(session, "tablet").values()}
        version = next(d.model_version_id for d in session.scalars(
            select(GateDecision).where(
                GateDecision.device_class == "tablet", GateDecision.passed)
            .order_by(GateDecision.id.desc()))
            if d.model_version.status != "retired" and d.model_version_id not in running)

    log_in(browser, served, "olu")
    browser.get(f"{served}/releases")
    form = browser.find_element(By.CSS_SELECTOR, "#class-tablet form[action$='promote/confirm']")
    form.find_element(By.NAME, "version").send_keys(str(version))
    form.find_element(By.NAME, "reason").send_keys("looks better")
    form.find_element(By.ID, "promote-tablet").click()
    arrives(browser, "/releases/promote/confirm")
    headline = browser.find_element(By.TAG_NAME, "h1").text
    assert headline.startswith(f"Confirm: Release version {version} (")
    assert "canary store 1" in browser.find_element(By.ID, "plan").text
    assert "reason recorded: looks better" in browser.find_element(By.ID, "plan-notes").text
    _screenshot(browser, "confirm-promote")
    with console_catalog.session() as session:  # the preview changed nothing
        assert version not in {r.model_version_id
                               for r in open_releases(session, "tablet").values()}
    browser.find_element(By.ID, "confirm").click()
    arrives(browser, "/releases?msg=")
    assert f"version {version} released to tablet/canary" in \
        browser.find_element(By.ID, "message").text

    browser.get(f"{served}/alerts")
    before = _badge(browser)
    assert before >= 1
    row = browser.find_element(By.CSS_SELECTOR, "#open-alerts tr[id^=alert-]")
    row.find_element(By.CSS_SELECTOR, "a.silence-like").click()
    form = browser.find_element(By.ID, "silence")
    Select(form.find_element(By.NAME, "duration")).select_by_value("4h")
    form.find_element(By.NAME, "reason").send_keys("store 2 is being refitted")
    form.find_element(By.ID, "make-silence").click()
    arrives(browser, "/alerts?msg=")
    assert "silence 1 by olu" in browser.find_element(By.ID, "message").text
    assert _badge(browser) == before - 1
    assert "store 2 is being refitted" in browser.find_element(By.ID, "active-silences").text
    browser.get(f"{served}/alerts?state=all")
    _screenshot(browser, "alerts")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_admin_revokes_a_device_through_its_preview_and_cancel_changes_nothing(
        browser, served, console_catalog):  # noqa: F811 - the fixtures imported above
    from selenium.webdriver.common.by import By

    from storage.devices import enroll_device, get_device

    with console_catalog.unit_of_work() as session:
        device_id = enroll_device(session, store=2, device_class="tablet", by="test",
                                  name="back-office").device.id
    log_in(browser, served, "ana")
    browser.get(f"{served}/fleet")
    browser.find_element(By.ID, f"revoke-{device_id}").click()
    arrives(browser, f"/fleet/devices/{device_id}/revoke/confirm")
    plan = browser.find_element(By.ID, "plan").text
    assert f"device {device_id} (back-office), store 2, tablet" in plan
    assert "refused: its token no longer authenticates (401)" in plan
    _screenshot(browser, "confirm-revoke")
    browser.find_element(By.ID, "cancel").click()
    arrives(browser, "/fleet")
    with console_catalog.session() as session:
        assert get_device(session, device_id).revoked_at is None
    browser.find_element(By.ID, f"revoke-{device_id}").click()
    browser.find_element(By.ID, "confirm").click()
    arrives(browser, "/fleet?msg=")
    assert f"device {device_id} revoked by ana" in browser.find_element(By.ID, "message").text
    with console_catalog.session() as session:
        assert get_device(session, device_id).revoked_by == "ana"
