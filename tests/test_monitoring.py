"""Drift and forecast-quality monitoring, alerts with dedup and acknowledgement, Apprise
notifications to a real HTTP receiver on loopback, and the fleet-promotion hold."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading

import pytest

from monitoring import alerts as rules
from monitoring.drift import check_drift
from monitoring.notify import deliver, mask_url, scrub_secrets
from monitoring.quality import QualityConfig, score_release
from storage.alerts import (
    acknowledge,
    apply_alert_changes,
    list_alerts,
    open_alerts,
    raise_alert,
    record_notification,
    unnotified,
)
from storage.synthetic import Shift, generate_sales

FIRST_NIGHT = dt.date(2017, 9, 1)


def drift_alerts(session, check, *, report_link):
    return apply_alert_changes(session, rules.drift_alert_changes(check, report_link=report_link))


def quality_alerts(session, scores, *, unscored=()):
    return apply_alert_changes(session, rules.quality_alert_changes(scores, unscored=unscored))


def fleet_holds(session):
    return rules.fleet_holds(open_alerts(session, kind="data_drift", severity="severe",
                                         unacknowledged=True))


def canary_blockers(session, device_class, version_id):
    return rules.canary_blockers(open_alerts(session, kind="forecast_quality"), device_class,
                                 version_id)


def notify(session, urls):
    """What the nightly notify task does in its transaction: one attempt per alert and URL."""
    pending = unnotified(session)
    outcomes = deliver(pending, urls)
    for alert, delivered in zip(pending, outcomes, strict=True):
        record_notification(alert, delivered=delivered)
    return outcomes


@pytest.fixture(scope="module")
def stable_sales():
    return generate_sales(stores=4, items=5, start="2017-05-01", end="2017-09-10", seed=3)


@pytest.fixture(scope="module")
def shifted_sales():
    """Store 2 sells 20 % more from the first night on."""
    return generate_sales(stores=4, items=5, start="2017-05-01", end="2017-09-10", seed=3,
                          shifts=[Shift(store=2, start=FIRST_NIGHT, factor=1.2)])


def nights(sales, count, *, reports=(0,)):
    """The checks of `count` nights from the first; Evidently's reports only on `reports`."""
    return [check_drift(sales, FIRST_NIGHT + dt.timedelta(days=k), reports=k in reports,
                        power=k in reports) for k in range(count)]


@pytest.fixture(scope="module")
def stable_checks(stable_sales):
    return nights(stable_sales, 5)


@pytest.fixture(scope="module")
def shifted_checks(shifted_sales):
    return nights(shifted_sales, 3)


def test_stable_sales_raise_no_drift_alert_night_after_night(stable_checks, sessions):
    checks = stable_checks
    assert [c.findings for c in checks] == [[]] * 5
    assert set(checks[0].snapshots) == {"store", "item"}
    with sessions() as session, session.begin():
        for check in checks:
            drift_alerts(session, check, report_link=None)
        assert list_alerts(session) == []


def test_a_store_shifted_by_20_pct_is_alerted_within_3_nights_naming_that_store(shifted_checks):
    checks = shifted_checks
    assert checks[0].power["store 2"].nights_to_target <= 3, "the check says it can"
    flagged = [[(f.kind, f.id) for f in c.findings] for c in checks]
    assert [("store", 2)] in flagged, flagged
    assert all(named in ([], [("store", 2)]) for named in flagged), "only the shifted store"
    (last,) = checks[-1].findings  # three shifted days: the level is up by about 20 %
    assert last.message.startswith("store 2: +") and 10 < last.level_change_pct < 30
    assert last.severity == "severe" and last.change == "level"
    assert abs((last.since - FIRST_NIGHT).days) <= 1, "the start is estimated"
    assert "since 20" in last.message and "against the other stores" in last.message
    # the counts behind the size, which ops can check against the sales
    assert last.sold / last.expected == pytest.approx(1 + last.level_change_pct / 100, rel=0.05)
    assert f"sold {last.sold:,.0f} where about" in last.message


def test_with_three_stores_a_shifted_store_does_not_make_a_steady_one_look_shifted():
    sales = generate_sales(stores=3, items=10, start="2017-05-01", end="2017-09-05", seed=3,
                           shifts=[Shift(store=3, start=FIRST_NIGHT, factor=1.3)])
    flagged = [[(f.kind, f.id) for f in c.findings] for c in nights(sales, 3, reports=())[1:]]
    assert flagged == [[("store", 3)], [("store", 3)]]


def test_an_item_up_20_pct_in_every_store_is_named_within_the_nights_the_check_states():
    sales = generate_sales(stores=4, items=5, start="2017-05-01", end="2017-09-10", seed=3,
                           shifts=[Shift(store=s, item=4, start=FIRST_NIGHT, factor=1.2)
                                   for s in range(1, 5)])
    checks = nights(sales, 5, reports=())
    stated = check_drift(sales, FIRST_NIGHT - dt.timedelta(days=1),
                         reports=False).power["item 4"].nights_to_target
    flagged = [[(f.kind, f.id) for f in c.findings] for c in checks]
    assert stated is not None and [("item", 4)] in flagged[:stated], (stated, flagged)
    assert all(named in ([], [("item", 4)]) for named in flagged), "only the shifted item"


def test_a_promotion_that_is_over_is_named_as_a_burst():
    """Store 2 sells 60 % more for three days, then as before: two nights later the alert says
    when the burst was and that the level is back."""
    sales = generate_sales(stores=4, items=5, start="2017-05-01", end="2017-09-10", seed=3,
                           shifts=[Shift(store=2, start=FIRST_NIGHT, factor=1.6, kind="promo",
                                         every_days=30, promo_days=3)])
    (finding,) = check_drift(sales, FIRST_NIGHT + dt.timedelta(days=5), reports=False,
                             power=False).findings
    assert (finding.kind, finding.id, finding.change) == ("store", 2, "burst")
    assert (finding.since, finding.until) == (FIRST_NIGHT, FIRST_NIGHT + dt.timedelta(days=2))
    assert "a burst: promotion pattern" in finding.message and finding.level_change_pct > 40
    (raised,) = rules.drift_alert_changes(check_drift(
        sales, FIRST_NIGHT + dt.timedelta(days=5), reports=False, power=False),
        report_link=None).raised
    assert raised.dedup_key == "data_drift:store:2" and raised.scope["change"] == "burst"


def test_the_same_drift_on_consecutive_nights_updates_one_alert_and_clears(shifted_checks,
                                                                         shifted_sales, sessions):
    checks = shifted_checks
    with sessions() as session, session.begin():
        for check in checks:
            drift_alerts(session, check, report_link="file:///reports/x.html")
        (alert,) = open_alerts(session, kind="data_drift")
        assert alert.scope["store"] == 2 and alert.scope["change"] == "level"
        assert alert.scope["since"] == checks[-1].findings[0].since.isoformat()
        assert alert.occurrences == sum(1 for c in checks if c.findings)
        assert alert.link == "file:///reports/x.html"
        calm = check_drift(shifted_sales, FIRST_NIGHT - dt.timedelta(days=1), reports=False,
                           power=False)  # the night before the shift
        drift_alerts(session, calm, report_link=None)
        assert open_alerts(session) == [] and alert.resolved_at is not None


def test_an_escalation_to_severe_needs_a_new_ack(sessions):
    def drift(severity):
        return raise_alert(session, kind="data_drift", severity=severity, scope={"store": 3},
                           dedup_key="data_drift:store:3", message="store 3: sales drifted")

    with sessions() as session, session.begin():
        alert, created = drift("warning")
        acknowledge(session, alert.id, by="ops-kim")
        assert fleet_holds(session) == []
        again, created_again = drift("severe")
        assert created and not created_again and again.id == alert.id
        assert again.acknowledged_at is None and "acknowledged as warning by ops-kim" in again.ack_note
        assert len(fleet_holds(session)) == 1


def test_ack_through_the_cli_records_who_and_why(sessions, monkeypatch, capsys, tmp_path):
    from flows.cli import main
    from storage.settings import get_settings

    with sessions() as session, session.begin():
        alert, _ = raise_alert(session, kind="data_drift", severity="severe", scope={"store": 3},
                               dedup_key="data_drift:store:3", message="store 3: sales drifted")
        alert_id = alert.id
        url = session.get_bind().url.render_as_string(hide_password=False)
    monkeypatch.setenv("SHELFCAST_HOME", str(tmp_path))
    monkeypatch.setenv("SHELFCAST_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        assert main(["alerts", "ack", str(alert_id), "--by", "ops-kim", "--note", "promo week"]) == 0
        assert main(["alerts", "list", "--open", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out.split("\n", 1)[1])
        assert main(["alerts", "ack", str(alert_id), "--by", "ops-lee"]) == 4  # a conflict
        assert "already acknowledged by ops-kim" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
    assert listed[0]["acknowledged_by"] == "ops-kim" and listed[0]["ack_note"] == "promo week"


class Receiver:
    """A webhook receiver on loopback that fails its first `failures` requests with HTTP 500."""

    def __init__(self, failures: int = 0):
        self.failures, self.bodies = failures, []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.failures > 0:
                    receiver.failures -= 1
                    self.send_response(500)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(failures=0):
        made.append(Receiver(failures))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _one_alert(sessions):
    with sessions() as session, session.begin():
        raise_alert(session, kind="data_drift", severity="severe", scope={"store": 2},
                    dedup_key="data_drift:store:2", message="store 2: sales drifted",
                    link="file:///reports/drift.html")


def test_a_notification_reaches_a_real_webhook_on_loopback(sessions, receiver):
    hook = receiver()
    _one_alert(sessions)
    with sessions() as session, session.begin():
        assert notify(session, [hook.url]) == [True]
        assert notify(session, [hook.url]) == [], "a notified alert is not sent twice"
    (body,) = hook.bodies
    assert "store 2: sales drifted" in body["message"] and "alerts ack" in body["message"]
    assert "severe" in body["title"]


def test_a_failed_delivery_keeps_the_alert_and_is_sent_on_the_next_attempt(sessions, receiver):
    hook = receiver(failures=1)
    _one_alert(sessions)
    with sessions() as session, session.begin():
        assert notify(session, [hook.url]) == [False]
    assert hook.bodies == []
    with sessions() as session, session.begin():
        (alert,) = open_alerts(session)
        assert alert.notified_at is None and alert.notify_attempts == 1
        assert notify(session, [hook.url]) == [True]
    assert len(hook.bodies) == 1


def test_notifications_retry_only_in_the_prefect_task():
    import inspect

    import monitoring.notify as notify_module
    from flows.tasks import notify_ops

    assert notify_ops.retries == 2
    assert "sleep" not in inspect.getsource(notify_module), "no retry loop of its own"


def test_notification_urls_are_masked_in_every_message():
    url = "json://ops:hunter2@hooks.example:8443/path/s3cr3t-token?token=abc123"
    assert mask_url(url) == "json://***@hooks.example:8443/***"
    line = scrub_secrets(f"could not send to {url}: refused", [url])
    assert "hunter2" not in line and "s3cr3t" not in line and "abc123" not in line
    assert mask_url("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F") == "slack://***/***"


def test_a_degraded_released_model_raises_a_quality_alert_that_blocks_its_canary(shipping,
                                                                                 stable_sales):
    content = open(shipping["records"][0].artifact_uri.removeprefix("file://"), "rb").read()
    as_of = dt.date(2017, 9, 10)
    score = score_release(stable_sales, as_of, content, trained_through=dt.date(2017, 9, 3),
                          model_version=shipping["v1"], device_class="sensor", gate_mape_pct=15.0,
                          config=QualityConfig(days=7, margin_pct=5.0))
    assert score.start == dt.date(2017, 9, 4) and score.windows == 7 * 20
    assert score.degraded, "an untrained LSTM forecasts far worse than 15 % MAPE"
    with shipping["sessions"]() as session, session.begin():
        (alert,) = quality_alerts(session, [score])
        assert alert.kind == "forecast_quality" and alert.scope["model_version"] == shipping["v1"]
        assert canary_blockers(session, "sensor", shipping["v1"])
        assert not canary_blockers(session, "sensor", shipping["v2"])
        quality_alerts(session, [], unscored=[("sensor", shipping["v1"])])
        assert canary_blockers(session, "sensor", shipping["v1"]), "no new actuals: alert stays"
        quality_alerts(session, [])
        assert not canary_blockers(session, "sensor", shipping["v1"])


def test_unacknowledged_severe_drift_holds_the_fleet_until_ack(shipping):
    from storage.releases import advance_rollout, open_releases, release_version

    day0 = dt.date(2018, 1, 1)
    with shipping["sessions"]() as session, session.begin():
        release_version(session, shipping["target"], shipping["v1"], "sensor", channel="stable",
                        by="test", reason="first", as_of=day0)
        release_version(session, shipping["target"], shipping["v2"], "sensor", channel="canary",
                        by="test", reason="candidate", as_of=day0)
        alert, _ = raise_alert(session, kind="data_drift", severity="severe", scope={"store": 4},
                               dedup_key="data_drift:store:4", message="store 4: sales drifted")
        raise_alert(session, kind="data_drift", severity="warning", scope={"store": 5},
                    dedup_key="data_drift:store:5", message="store 5: sales drifted a little")
        alert_id = alert.id
    late = day0 + dt.timedelta(days=5)
    with shipping["sessions"]() as session, session.begin():
        holds = fleet_holds(session)
        assert len(holds) == 1 and f"alerts ack {alert_id}" in holds[0]
        (step,) = advance_rollout(session, shipping["target"], "sensor", None, as_of=late,
                                  canary_blockers=[], fleet_holds=holds)
        assert step.action == "held" and "store 4" in step.message
    with shipping["sessions"]() as session, session.begin():
        acknowledge(session, alert_id, by="ops-kim", note="new store layout, expected")
    with shipping["sessions"]() as session, session.begin():
        assert fleet_holds(session) == []
        (step,) = advance_rollout(session, shipping["target"], "sensor", None, as_of=late,
                                  canary_blockers=[], fleet_holds=fleet_holds(session))
        assert step.action == "graduated"
        assert open_releases(session, "sensor")["stable"].model_version_id == shipping["v2"]


def test_a_canary_is_scored_on_its_stores_the_fleet_on_the_rest_and_degraded_stores_are_named(
        shipping, stable_sales):
    content = open(shipping["records"][0].artifact_uri.removeprefix("file://"), "rb").read()
    common = dict(trained_through=dt.date(2017, 9, 3), model_version=shipping["v1"],
                  device_class="sensor", gate_mape_pct=1000.0,
                  config=QualityConfig(days=7, margin_pct=5.0))
    as_of = dt.date(2017, 9, 10)
    canary = score_release(stable_sales, as_of, content, stores=[1], channel="canary", **common)
    fleet = score_release(stable_sales, as_of, content, exclude_stores=[1], **common)
    assert canary.stores_scored == [1] and canary.windows == 7 * 5
    assert fleet.stores_scored == [2, 3, 4] and not fleet.degraded
    one_store = score_release(stable_sales, as_of, content, exclude_stores=[1],
                              store_gate_mape_pct={2: 1000.0, 3: 0.0, 4: 1000.0}, **common)
    assert one_store.degraded and one_store.degraded_stores == [3]
    assert "store 3 at" in one_store.message and "store 2 at" not in one_store.message
    changes = rules.quality_alert_changes([one_store])
    assert changes.raised[0].scope["stores"] == [3]


def test_drift_check_runs_alone_on_stored_sales_and_lists_what_it_named(shifted_sales, tmp_path,
                                                                        monkeypatch, capsys):
    from flows.cli import main
    from storage.catalog import get_catalog
    from storage.sales import ingest_sales, sales_fingerprint
    from storage.settings import get_settings

    monkeypatch.setenv("SHELFCAST_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        with get_catalog().unit_of_work() as session:
            ingest_sales(session, shifted_sales, source="t", sha256=sales_fingerprint(shifted_sales))
        night = (FIRST_NIGHT + dt.timedelta(days=2)).isoformat()
        assert main(["drift", "check", "--as-of", night, "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        with get_catalog().session() as session:
            (alert,) = open_alerts(session, kind="data_drift")
        assert main(["drift", "check", "--as-of", night, "--json"]) == 0
        again = json.loads(capsys.readouterr().out)
    finally:
        get_catalog().dispose()
        get_settings.cache_clear()
    assert {"kind": "store", "id": 2} in [{"kind": n["kind"], "id": n["id"]} for n in shown["named"]]
    assert shown["report"].endswith("report-stores.html") and alert.scope["store"] == 2
    assert again["report_id"] == shown["report_id"], "the night's report is reused, not redone"


def test_an_empty_shelf_is_a_no_sales_warning_not_its_store_drifting(stable_sales, sessions):
    """Store 3's item 2 sells nothing from the first night on (out of stock): after two weeks
    it is a no_sales warning naming that store-item and its start, left out of the level test
    (its store is not named as falling), and it holds no rollout; once the item sells again
    the warning resolves."""
    empty = stable_sales.copy()
    gone = (empty["store"] == 3) & (empty["item"] == 2) & (empty["date"] >= str(FIRST_NIGHT))
    empty.loc[gone, "sales"] = 0
    check = check_drift(empty, FIRST_NIGHT + dt.timedelta(days=8), reports=False, power=False)
    assert check.findings == []
    (stopped,) = check.stopped
    assert (stopped.store, stopped.item, stopped.since, stopped.days) == (3, 2, FIRST_NIGHT, 9)
    assert "store 3 item 2 sold nothing for 9 days since 2017-09-01" in stopped.message
    assert "stopped selling: store 3 item 2" in check.summary()
    with sessions() as session, session.begin():
        (alert,) = drift_alerts(session, check, report_link=None)
        assert (alert.kind, alert.severity, alert.dedup_key) == ("no_sales", "warning",
                                                                 "no_sales:store:3:item:2")
        assert alert.scope == {"store": 3, "item": 2, "since": "2017-09-01", "days": 9,
                               "sales_per_day": stopped.sales_per_day}
        assert fleet_holds(session) == []
        drift_alerts(session, check_drift(stable_sales, FIRST_NIGHT + dt.timedelta(days=8),
                                          reports=False, power=False), report_link=None)
        assert open_alerts(session) == [] and alert.resolved_at is not None


def test_a_store_that_sells_nothing_at_all_is_a_no_sales_warning_for_the_store(stable_sales):
    empty = stable_sales.copy()
    empty.loc[(empty["store"] == 4) & (empty["date"] >= str(FIRST_NIGHT)), "sales"] = 0
    check = check_drift(empty, FIRST_NIGHT + dt.timedelta(days=2), reports=False, power=False)
    assert [f"{f.kind} {f.id}" for f in check.findings] == []
    assert [(s.store, s.item, s.since, s.days) for s in check.stopped] == [
        (4, None, FIRST_NIGHT, 3)]
    (raised,) = rules.drift_alert_changes(check, report_link=None).raised
    assert raised.dedup_key == "no_sales:store:4" and raised.scope["store"] == 4


def test_the_drift_report_is_drawn_when_no_item_is_sold_in_two_stores():
    """Real assortments differ between stores: in the M5 slice each store sells its own two
    items. The Evidently report's per-store columns are then empty on the other stores' rows;
    it must still be drawn (it once refused every night: 'An empty column ... was provided')."""
    from pathlib import Path

    import pandas as pd

    sales = pd.read_csv(Path(__file__).parent / "data" / "m5-slice.csv", parse_dates=["date"])
    assert sales.groupby("item")["store"].nunique().max() == 1
    check = check_drift(sales, sales["date"].max().date(), trained_through=None)
    assert check.p_values and all(0.0 <= p <= 1.0 for p in check.p_values.values())
    assert {column.split("_")[0] for column in check.p_values} == {"store", "item"}
    assert check.snapshots  # the reports themselves
