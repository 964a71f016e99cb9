"""The ops console for the person on call (issue 28): what is true now and how fresh it is
(Tonight's real start, end and age; a page that refreshes itself), the fleet with the failing
devices first, search, sort and paging on the lists and their JSON twins, the gate's limits
and the releases drawn on the plots, links to what a page mentions, and /metrics for
Prometheus. Through FastAPI's TestClient on SQLite and PostgreSQL, and in headless chromium."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from factories import PASSWORD
from test_console_browser import arrives, browser, log_in, served  # noqa: F401 - fixtures

from service.console import svg
from service.console.views import duration_text
from storage.devices import ReportRecord, enroll_device, expected_release, record_report
from storage.models import TrainingRun, utcnow
from storage.overview import latest_run
from storage.releases import open_releases
from storage.users import issue_api_token, record_action

# the phases of a night as the flow times them: 143 s before its row is written, 8 s after
NIGHT_TIMINGS = {"ingest_s": 10.0, "build_s": 131.0, "save_s": 2.0, "train_task_s": 500.0,
                 "register_s": 3.0, "rollout_s": 5.0}


def login(client, name: str = "vic") -> None:
    assert client.post("/api/login", json={"name": name, "password": PASSWORD}
                       ).status_code == 200


def newest_night_finished(catalog, *, hours_ago: float) -> dt.datetime:
    """Make the newest night's run row written `hours_ago` with NIGHT_TIMINGS; when it was."""
    registered = utcnow().replace(microsecond=0) - dt.timedelta(hours=hours_ago)
    with catalog.unit_of_work() as session:
        run = session.get(TrainingRun, latest_run(session).id)
        run.timings_s, run.started_at, run.finished_at = NIGHT_TIMINGS, registered, registered
    return registered


def a_fleet(catalog) -> dict[str, int]:
    """Five sensor devices of store 1, one per health: name -> device id."""
    now = utcnow()
    with catalog.unit_of_work() as session:
        expected = expected_release(open_releases(session, "sensor"), 1).id
        ids = {name: enroll_device(session, store=1, device_class="sensor", by="test",
                                   name=name).device.id
               for name in ("healthy", "old-release", "refused", "never-reported", "smoke")}
        reports = {"healthy": (expected, "ok", "", True), "old-release": (1, "ok", "", True),
                   "refused": (1, "refused", "signature expired", None),
                   "smoke": (expected, "ok", "", False)}
        for name, (release, result, reason, smoke_ok) in reports.items():
            record_report(session, ids[name], ReportRecord(
                reported_at=now, release_id=release, sha256=None, sync_result=result,
                sync_reason=reason, smoke_test_ok=smoke_ok, latency_us_p50=50.0,
                free_bytes=1 << 20, forecasts_made=1))
    return ids


# -- Tonight: what is true now, and how fresh ---------------------------------------------------


def test_tonight_api_gives_the_nights_true_start_end_duration_and_age(console, console_catalog):
    registered = newest_night_finished(console_catalog, hours_ago=3)
    login(console)
    night = console.get("/api/tonight").json()["night"]
    started = dt.datetime.fromisoformat(night["started_at"])
    finished = dt.datetime.fromisoformat(night["finished_at"])
    assert started == registered - dt.timedelta(seconds=143)  # the task sums overlap: left out
    assert finished == registered + dt.timedelta(seconds=8)
    assert started < finished and night["duration_s"] == 151.0
    updated = dt.datetime.fromisoformat(console.get("/api/tonight").json()["updated_at"])
    assert abs(night["finished_ago_s"] - (updated - finished).total_seconds()) <= 2
    assert night["last_sales_day"] == "2017-06-06"  # no sales table: the night's data end
    assert night["sales_age_days"] == (updated.date() - dt.date(2017, 6, 6)).days


def test_tonight_page_says_when_the_night_finished_how_long_it_ran_and_refreshes(
        console, console_catalog):
    newest_night_finished(console_catalog, hours_ago=3)
    login(console)
    page = console.get("/tonight").text
    assert re.search(r"Finished 2 h 59 min ago, ran 2 min 31 s|Finished 3 h ago, ran 2 min 31 s",
                     page)
    assert "days old" in page
    assert re.search(r'id="updated" data-refresh-seconds="60">updated <time datetime="[^"]+">'
                     r'\d\d:\d\d:\d\d</time> UTC', page)
    assert '<script src="/static/refresh.js" defer></script>' in page
    assert console.get("/static/refresh.js").status_code == 200
    assert console.get("/tonight?refresh=1").status_code == 422  # faster than 5 s: refused


@pytest.mark.parametrize("page", ["tonight", "models", "fleet", "audit", "models/1",
                                  "releases/history"])
def test_the_on_call_pages_carry_no_inline_script_style_or_event_handler(console, page):
    login(console)
    html = console.get(f"/{page}").text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)


def test_tonight_links_to_each_thing_it_mentions(console):
    login(console)
    page = console.get("/tonight").text
    for link in ('href="/models?night=2017-06-06"', 'href="/drift"', 'href="/releases"',
                 'href="/releases#class-tablet"', 'href="/models/'):
        assert link in page


def test_a_version_page_links_to_its_night(console):
    login(console)
    assert re.search(r'<a href="/models\?night=2017-06-0\d" id="night-link">',
                     console.get("/models/1").text)


@pytest.mark.parametrize("seconds, said", [(45, "45 s"), (151, "2 min 31 s"), (180, "3 min"),
                                           (3 * 3600 + 300, "3 h 5 min"),
                                           (4 * 86400 + 7200, "4 d 2 h")])
def test_a_span_reads_as_a_person_says_it(seconds, said):
    assert duration_text(seconds) == said


# -- Fleet: the failing first, and why ----------------------------------------------------------


def test_fleet_lists_failing_devices_first_then_those_behind_then_healthy_saying_why(
        console, console_catalog):
    ids = a_fleet(console_catalog)
    login(console)
    fleet = console.get("/api/fleet").json()
    order = [(d["name"], d["health"]) for d in fleet["devices"]]
    assert [h for _, h in order] == ["failing"] * 3 + ["behind", "healthy"]
    assert {n for n, _ in order[:3]} == {"refused", "never-reported", "smoke"}
    why = {d["name"]: d["why"] for d in fleet["devices"]}
    assert why["refused"][0] == "sync refused: signature expired"
    assert why["never-reported"][0] == "has never reported"
    assert why["smoke"] == ["its smoke test fails"]
    assert why["old-release"][0].startswith("runs release 1, should run ")
    assert why["healthy"] == []
    assert fleet["health"] == {"failing": 3, "behind": 1, "healthy": 1}
    page = console.get("/fleet").text
    assert page.index(f'id="device-{ids["refused"]}"') < page.index(
        f'id="device-{ids["old-release"]}"') < page.index(f'id="device-{ids["healthy"]}"')
    assert "sync refused: signature expired" in page
    searched = console.get("/api/fleet?q=signature").json()["devices"]
    assert [d["name"] for d in searched] == ["refused"]


# -- search, sort and paging (queries of their own: on both backends) ---------------------------

BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param(
    "postgresql", marks=pytest.mark.postgres)], indirect=True)


@BOTH

def test_models_search_sort_and_page_on_the_page_and_its_json_twin(console):
    login(console)
    first = console.get("/api/models?per_page=25&sort=mape_pct").json()
    assert first["paging"] == {"page": 1, "pages": 2, "per_page": 25, "total": 36, "q": "",
                               "sort": "mape_pct", "previous": None, "next": 2}
    second = console.get("/api/models?per_page=25&sort=mape_pct&page=2").json()
    errors = [v["mape_pct"] for v in first["versions"] + second["versions"]]
    assert len(errors) == 36 and errors == sorted(errors)  # no version missing or twice
    assert {v["variant"] for v in console.get("/api/models?q=INT8").json()["versions"]} == {
        "lstm16_int8", "lstm8_int8"}
    page = console.get("/models?per_page=25&sort=-mape_pct&q=lstm").text
    assert "30 versions: page 1 of 2" in page  # pruned50 has no "lstm" in its name
    # every link changes one thing and keeps the rest
    assert 'href="?per_page=25&amp;sort=-mape_pct&amp;q=lstm&amp;page=2"' in page
    assert 'href="?per_page=25&amp;sort=variant&amp;q=lstm"' in page  # back to page 1


def test_a_bad_sort_or_page_size_is_refused_in_one_line(console):
    login(console)
    refused = console.get("/api/models?sort=sha256")
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("sort must be one of id, as_of, variant")
    assert "\n" not in refused.json()["detail"]
    assert console.get("/api/fleet?per_page=7").json()["detail"] == \
        "per_page must be one of 25, 50, 100, 200, got 7"
    assert console.get("/api/audit?page=0").status_code == 422


@BOTH
def test_audit_filters_by_actor_and_action_and_pages(console, console_catalog):
    with console_catalog.unit_of_work() as session:
        for i in range(30):
            record_action(session, actor="olu" if i % 3 else "ana", via="cli",
                          action="release.promote" if i % 2 else "alert.ack",
                          target=f"release {i}", note=f"note {i}")
    login(console)
    found = console.get("/api/audit?actor=olu&action=alert.ack&per_page=25").json()
    assert {(a["actor"], a["action"]) for a in found["actions"]} == {("olu", "alert.ack")}
    assert found["paging"]["total"] == 10 and "olu" in found["actors"]
    assert console.get("/api/audit?action=release").json()["paging"]["total"] == 15  # family
    assert console.get("/api/audit?q=release 2").json()["paging"]["total"] == 11  # 2, 20..29
    oldest_first = console.get("/api/audit?sort=at&per_page=25").json()["actions"]
    assert [a["target"] for a in oldest_first[:2]] == ["release 0", "release 1"]
    assert 'id="page-next"' in console.get("/audit?per_page=25").text


@BOTH
def test_the_release_history_filters_sorts_and_pages_every_release(console, console_catalog):
    login(console)
    every = console.get("/api/releases/history?per_page=25").json()
    assert every["paging"]["total"] == 9 and every["paging"]["sort"] == "-released_at"
    assert [r["id"] for r in every["releases"]] == list(range(9, 0, -1))
    tablet = console.get("/api/releases/history?device_class=tablet&channel=stable").json()
    assert {(r["device_class"], r["channel"]) for r in tablet["releases"]} == {
        ("tablet", "stable")}
    by_version = console.get("/api/releases/history?sort=model_version").json()["releases"]
    assert [r["model_version"] for r in by_version] == sorted(r["model_version"]
                                                               for r in by_version)
    page = console.get("/releases/history?device_class=tablet&sort=channel").text
    assert 'href="?device_class=tablet&amp;sort=-channel"' in page  # again: the other way
    assert 'id="release-history-link"' in console.get("/releases").text


# -- plots: thresholds and release markers ------------------------------------------------------


def test_plots_draw_the_gates_limits_and_mark_the_nights_of_promotions(console):
    login(console)
    page = console.get("/tonight").text
    assert re.search(r'<text [^>]*class="limit">sensor/handheld/tablet limit 30</text>', page)
    assert re.search(r'class="limit">sensor limit 8 KiB</text>', page)  # the size limit
    assert re.search(r'<line [^>]*class="marker"><title>2017-06-04: handheld r6, sensor r4</title>', page)
    assert "<title>2017-06-05: tablet r8</title>" in console.get("/drift").text


def test_a_threshold_sits_at_its_value_and_markers_outside_the_nights_are_left_out():
    series = {"tablet": [(dt.date(2017, 6, 1), 10.0), (dt.date(2017, 6, 5), 20.0)]}
    plot = str(svg.lines_over_nights(series, title="t", y_title="MAPE %",
                                     limits=[(25.0, "tablet limit")],
                                     markers=[(dt.date(2017, 6, 3), "tablet r7"),
                                              (dt.date(2017, 5, 1), "long ago")]))
    limit_y = float(re.search(r'<line x1="\d+" y1="([\d.]+)"[^>]*class="limit"', plot).group(1))
    low_y = float(re.search(r'<circle cx="[\d.]+" cy="([\d.]+)"', plot).group(1))  # 10.0
    high_y = float(re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', plot)[1])  # 20.0
    assert limit_y < high_y < low_y  # higher on the page: above both points
    assert ">tablet r7</text>" in plot and "long ago" not in plot


# -- /metrics -----------------------------------------------------------------------------------


def test_metrics_need_a_token_and_count_requests_by_route_template_and_registry_state(
        console, console_catalog):
    a_fleet(console_catalog)
    assert console.get("/metrics").status_code == 401
    with console_catalog.unit_of_work() as session:
        token = issue_api_token(session, "vic")
    bearer = {"Authorization": f"Bearer {token}"}
    assert console.get("/api/models/1", headers=bearer).status_code == 200
    assert console.get("/api/models/999999", headers=bearer).status_code == 404
    console.get("/no/such/page/123", headers=bearer)
    scraped = console.get("/metrics", headers=bearer)
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert 'shelfcast_http_requests_total{method="GET",route="/api/models/{version_id}",' \
           'status="200"} 1.0' in text
    assert 'route="/api/models/{version_id}",status="404"} 1.0' in text
    assert 'route="unmatched",status="404"} 1.0' in text and "/no/such" not in text
    assert 'shelfcast_http_request_duration_seconds_bucket{le="0.005",method="GET",' \
           'route="/api/models/{version_id}",status="200"}' in text
    assert 'shelfcast_open_alerts{severity="warning"} 1.0' in text
    for health, count in (("failing", 3), ("behind", 1), ("healthy", 1)):
        assert f'shelfcast_devices{{health="{health}"}} {count}.0' in text
    assert 'shelfcast_last_night_status{status="completed"} 1.0' in text
    assert re.search(r"^shelfcast_last_night_age_seconds \d", text, re.MULTILINE)
    assert re.search(r'shelfcast_release_model_version\{channel="stable",device_class="tablet",'
                     r'release="\d+"\} \d', text)


# -- in a real browser --------------------------------------------------------------------------


def logged_in(driver, base: str, name: str) -> None:
    """Log in, and wait until the login's redirect has landed (the login form's own URL
    contains "/tonight" in its `next`)."""
    from selenium.webdriver.support.ui import WebDriverWait

    log_in(driver, base, name)
    WebDriverWait(driver, 10).until(lambda b: "/login" not in b.current_url)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_tonight_refreshes_itself_unless_a_form_is_in_use(browser, served):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    logged_in(browser, served, "vic")
    browser.get(f"{served}/tonight?refresh=5")
    assert browser.find_element(By.ID, "updated").text.startswith("updated ")
    assert "refreshes every 5 s" in browser.find_element(By.ID, "updated").text  # the script ran
    browser.execute_script("window.notReloaded = true;")
    WebDriverWait(browser, 20).until(
        lambda b: b.execute_script("return window.notReloaded === undefined;"))
    browser.execute_script("window.notReloaded = true; document.getElementById('logout')"
                           ".focus();")
    WebDriverWait(browser, 20).until(
        lambda b: "paused" in b.find_element(By.ID, "refresh-state").text)
    assert browser.execute_script("return window.notReloaded === true;")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_fleet_order_and_paging_links_in_the_browser(browser, served,  # noqa: F811
                                                     console_catalog):
    from selenium.webdriver.common.by import By

    a_fleet(console_catalog)
    logged_in(browser, served, "vic")
    browser.get(f"{served}/fleet")
    health = [tag.text for tag in browser.find_elements(By.CSS_SELECTOR,
                                                        "#devices tr td:first-child .tag")]
    assert health == ["failing"] * 3 + ["behind", "healthy"]
    browser.get(f"{served}/models?per_page=25&q=lstm")
    browser.find_element(By.ID, "page-next").click()
    arrives(browser, "page=2")
    assert "q=lstm" in browser.current_url
    assert "page 2 of 2" in browser.find_element(By.ID, "pager").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#versions tr")) == 1 + 5
    browser.find_element(By.CSS_SELECTOR, "a[data-sort=mape_pct]").click()
    arrives(browser, "sort=mape_pct")
    assert "q=lstm" in browser.current_url and "&page=" not in browser.current_url
