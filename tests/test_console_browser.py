"""The ops console in a real headless browser (Debian's chromium through Selenium) against the
real service (`shelfcast serve` on uvicorn, 127.0.0.1, a free port): log in, read Tonight,
acknowledge an alert, approve a waiting canary, see a viewer refused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from factories import PASSWORD, free_port

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture
def browser():
    """Headless chromium; skipped where it is not installed, except in CI (CI=true)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are required in CI (.ci/run installs "
                        "them with apt-get)")
        pytest.skip("chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1200,1400"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture
def served(console_catalog, tmp_path):
    """`shelfcast serve` on a free loopback port over the console catalog; stopped after."""
    port = free_port()
    env = {**os.environ, "SHELFCAST_HOME": str(console_catalog.home),
           "SHELFCAST_DATABASE_URL": console_catalog.database_url, "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([sys.executable, "-c", "from flows.cli import main; "
                               "raise SystemExit(main())", "serve", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/v1/health", timeout=1)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("shelfcast serve did not start: "
                                       + (tmp_path / "serve.log").read_text()[-500:]) from None
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def log_in(browser, base: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{base}/tonight")  # redirected to the login form
    assert "/login" in browser.current_url
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login").click()
    arrives(browser, "/tonight")


def arrives(browser, path: str) -> None:
    """Wait until a form's post and its redirect have landed on `path`."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(expected_conditions.url_contains(path))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_ops_person_does_the_days_work_and_a_viewer_is_refused(browser, served):
    from selenium.webdriver.common.by import By

    log_in(browser, served, "olu")
    night = browser.find_element(By.ID, "night").text
    assert night.startswith("Night 2017-06-06")
    assert browser.find_element(By.CSS_SELECTOR, "svg.plot")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#variants tr")) == 7  # header + 6
    assert "waits for approval" in browser.find_element(By.ID, "rollout").text

    browser.get(f"{served}/alerts")
    row = browser.find_element(By.CSS_SELECTOR, "#open-alerts tr[id^=alert-] form").find_element(
        By.XPATH, "./ancestor::tr")
    alert_id = row.get_attribute("id")
    row.find_element(By.NAME, "note").send_keys("store 2 had a holiday")
    row.find_element(By.CSS_SELECTOR, "button").click()
    arrives(browser, "/alerts?msg=")
    assert "acknowledged by olu" in browser.find_element(By.ID, "message").text
    browser.get(f"{served}/alerts?state=acknowledged")
    assert "by olu: store 2 had a holiday" in browser.find_element(By.ID, alert_id).text

    browser.get(f"{served}/releases")
    approve = browser.find_element(By.CSS_SELECTOR, "#class-tablet button[id^=approve-]")
    release_id = approve.get_attribute("id").removeprefix("approve-")
    approve.click()
    arrives(browser, "/releases?msg=")
    assert f"release {release_id} approved by olu" in browser.find_element(By.ID, "message").text
    assert "approved by olu" in browser.find_element(By.ID, "class-tablet").text
    assert not browser.find_elements(By.CSS_SELECTOR, "button[id^=approve-]")

    browser.find_element(By.ID, "logout").click()
    arrives(browser, "/login")
    log_in(browser, served, "vic")
    browser.get(f"{served}/releases")
    assert not browser.find_elements(By.CSS_SELECTOR, "form[action$=approve], "
                                                      "form[action$=rollback]")
    browser.get(f"{served}/audit")
    assert "release.approve" in browser.find_element(By.ID, "actions").text
    # the viewer tries a write anyway: a form of their own, with their own CSRF token
    token = browser.find_element(By.NAME, "csrf_token").get_attribute("value")
    browser.execute_script(
        "const f = document.createElement('form'); f.method = 'post';"
        "f.action = '/releases/tablet/rollback';"
        "f.innerHTML = '<input name=csrf_token value=' + arguments[0] + '>"
        "<input name=reason value=mine>'; document.body.appendChild(f); f.submit();", token)
    arrives(browser, "/releases/tablet/rollback")
    refused = browser.find_element(By.ID, "refused").text
    assert refused == "vic is viewer; this needs ops"
    assert "Not allowed" in browser.find_element(By.TAG_NAME, "h1").text
