"""Alert silences, as Alertmanager's: matchers, an end time, who and why; a silenced alert is
shown as silenced, left out of the open-alert badge and not notified; silences end early;
every create and end is in the audit trail (storage, CLI, console and its JSON API)."""

from __future__ import annotations

import datetime as dt

import pytest
from factories import PASSWORD, run_cli
from sqlalchemy import inspect, select

from policy.silences import Matchers, parse_duration, silence_end
from storage.alerts import needing_attention, raise_alert, unnotified
from storage.errors import Conflict, RegistryError
from storage.models import Action, Alert
from storage.silences import active_silences, create_silence, end_silence

NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


# -- the decision: which alerts a silence matches, and how long it lasts -----------------------


def test_matchers_match_the_kind_and_every_scope_value_they_name():
    store_2 = Matchers("data_drift", store=2)
    assert store_2.matches("data_drift", {"store": 2, "change": "level"})
    assert store_2.matches("data_drift", {"store": "2"})  # JSON scopes may hold strings
    assert not store_2.matches("data_drift", {"store": 3})
    assert not store_2.matches("data_drift", {"item": 2})
    assert not store_2.matches("forecast_quality", {"store": 2})
    assert Matchers("forecast_quality").matches("forecast_quality", {"device_class": "tablet"})
    tablet = Matchers("forecast_quality", device_class="tablet")
    assert tablet.matches("forecast_quality", {"device_class": "tablet", "model_version": 3})
    assert not tablet.matches("forecast_quality", {"device_class": "sensor"})
    assert tablet.describe() == "kind=forecast_quality, device_class=tablet"


def test_a_silence_lasts_a_duration_or_until_an_end_time_in_the_future():
    assert parse_duration("1h") == dt.timedelta(hours=1)
    assert parse_duration("4h") == dt.timedelta(hours=4)
    assert parse_duration("1d") == dt.timedelta(days=1)
    assert parse_duration("30m") == dt.timedelta(minutes=30)
    assert silence_end(NOW, duration="2w") == NOW + dt.timedelta(weeks=2)
    assert silence_end(NOW, ends_at=NOW + dt.timedelta(hours=3)) == NOW + dt.timedelta(hours=3)
    for text in ("", "4", "h", "0h", "4 hours", "-1h"):
        with pytest.raises(ValueError, match="expected a positive number and a unit"):
            parse_duration(text)
    with pytest.raises(ValueError, match="not in the future"):
        silence_end(NOW, ends_at=NOW - dt.timedelta(minutes=1))
    with pytest.raises(ValueError, match="at most 90 days"):
        silence_end(NOW, duration="20w")
    with pytest.raises(ValueError, match="either a duration"):
        silence_end(NOW, duration="1h", ends_at=NOW + dt.timedelta(hours=1))
    with pytest.raises(ValueError, match="no time zone"):
        silence_end(NOW, ends_at=dt.datetime(2026, 12, 8, 9, 0))


# -- the registry: on SQLite and PostgreSQL ----------------------------------------------------


def _drift_alert(session, store: int) -> Alert:
    return raise_alert(session, kind="data_drift", severity="severe", scope={"store": store},
                       dedup_key=f"data_drift:store:{store}",
                       message=f"store {store} sales level changed")[0]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_a_silenced_alert_is_neither_counted_nor_notified_until_its_silence_ends(sessions):
    with sessions() as session, session.begin():
        store_1, store_2 = _drift_alert(session, 1).id, _drift_alert(session, 2).id
        silence = create_silence(session, Matchers("data_drift", store=2), by="kim",
                                 reason="store 2 is being refitted", duration="4h").id
    with sessions() as session:
        assert [a.id for a in needing_attention(session)] == [store_1]
        assert [a.id for a in unnotified(session)] == [store_1]
        assert [s.id for s in active_silences(session)] == [silence]
    with sessions() as session, session.begin():
        ended = end_silence(session, silence, by="lee")
        assert ended.ended_by == "lee"
    with sessions() as session:
        assert [a.id for a in needing_attention(session)] == [store_1, store_2]
        # never notified while silenced, so it is sent once the silence is over
        assert [a.id for a in unnotified(session)] == [store_1, store_2]
        assert active_silences(session) == []
    with sessions() as session, session.begin(), pytest.raises(Conflict, match="ended already"):
        end_silence(session, silence, by="lee")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_a_silence_without_a_reason_or_of_an_unknown_kind_is_refused_and_writes_nothing(
        sessions):
    refusals = [({"reason": " "}, "needs a reason"),
                ({"by": ""}, "needs a name"),
                ({"matchers": Matchers("drift")}, "unknown alert kind 'drift'"),
                ({"duration": "forever"}, "duration 'forever'"),
                ({"matchers": Matchers("data_drift", device_class="tablett")},
                 "unknown device class 'tablett'; known: ")]
    for change, message in refusals:
        given = {"matchers": Matchers("data_drift"), "by": "kim", "reason": "why",
                 "duration": "1h", **change}
        with sessions() as session, session.begin(), pytest.raises(RegistryError, match=message):
            create_silence(session, **given)
    with sessions() as session:
        assert active_silences(session) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_migration_0009_adds_the_silences_table_and_its_downgrade_removes_it(
        empty_database_url):
    from alembic import command

    from storage.db import _alembic_config, make_engine, upgrade

    engine = make_engine(empty_database_url)
    upgrade(engine, "0008")
    assert "alert_silences" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert "alert_silences" in inspect(engine).get_table_names()
    command.downgrade(_alembic_config(engine), "0008")
    assert "alert_silences" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert {c["name"] for c in inspect(engine).get_columns("alert_silences")} >= {
        "kind", "store", "item", "device_class", "reason", "created_by", "ends_at", "ended_by"}
    engine.dispose()


# -- the command line --------------------------------------------------------------------------


def test_the_cli_silences_lists_and_ends_silences_with_the_audit_trail(monkeypatch, tmp_path):
    code, out, err = run_cli(["alerts", "silence", "data_drift", "--store", "2", "--for", "4h",
                              "--reason", "refit", "--by", "kim"], monkeypatch, tmp_path)
    assert code == 0, err
    assert out.startswith("silence 1 until ") and "kind=data_drift, store=2" in out
    code, out, err = run_cli(["alerts", "silences", "--json"], monkeypatch, tmp_path)
    assert code == 0 and '"reason": "refit"' in out and '"created_by": "kim"' in out
    code, out, err = run_cli(["alerts", "silence", "data_drift", "--for", "4h", "--reason",
                              " ", "--by", "kim"], monkeypatch, tmp_path)
    assert code != 0 and "a silence needs a reason" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(["alerts", "unsilence", "1", "--by", "lee"], monkeypatch, tmp_path)
    assert code == 0 and out.strip() == "silence 1 ended by lee"
    code, out, err = run_cli(["alerts", "silences"], monkeypatch, tmp_path)
    assert code == 0 and "refit" not in out
    code, out, err = run_cli(["alerts", "silences", "--all", "--json"], monkeypatch, tmp_path)
    assert '"ended_by": "lee"' in out
    from storage.catalog import get_catalog
    from storage.settings import get_settings

    monkeypatch.setenv("SHELFCAST_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    with get_catalog().session() as session:
        rows = [(a.actor, a.via, a.action, a.target) for a in session.scalars(
            select(Action).where(Action.action.startswith("silence.")).order_by(Action.id))]
    get_settings.cache_clear()
    assert rows == [("kim", "cli", "silence.create", "silence 1"),
                    ("lee", "cli", "silence.end", "silence 1")]


# -- the console and its JSON API --------------------------------------------------------------


def _login(client, name: str) -> str:
    response = client.post("/api/login", json={"name": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["csrf_token"]


def _badge(client) -> str | None:
    import re

    found = re.search(r'id="alert-badge"[^>]*>(\d+)<', client.get("/tonight").text)
    return found and found.group(1)


def test_ops_silences_an_alert_in_the_console_and_the_badge_and_open_list_drop_it(
        console, console_catalog):
    token = _login(console, "olu")
    opened = console.get("/api/alerts").json()
    assert opened["badge"] == len(opened["alerts"]) >= 1
    target = next(a for a in opened["alerts"] if a["kind"] == "forecast_quality")
    assert _badge(console) == str(opened["badge"])
    response = console.post("/alerts/silences", follow_redirects=False, data={
        "csrf_token": token, "kind": "forecast_quality", "store": "2", "duration": "4h",
        "reason": "store 2 is being refitted"})
    assert response.status_code == 303 and "msg=silence" in response.headers["location"]
    now = console.get("/api/alerts").json()
    assert now["badge"] == opened["badge"] - 1
    assert target["id"] not in [a["id"] for a in now["alerts"]]
    silenced = console.get("/api/alerts?state=silenced").json()["alerts"]
    assert [a["id"] for a in silenced] == [target["id"]]
    assert silenced[0]["silenced_by"]["reason"] == "store 2 is being refitted"
    page = console.get("/alerts?state=silenced").text
    assert f'id="alert-{target["id"]}" class="silenced"' in page and "silenced</span> by " \
        "silence" in page
    silence_id = now["silences"][0]["id"]
    response = console.post(f"/api/alerts/silences/{silence_id}/end",
                            headers={"X-CSRF-Token": token})
    assert response.status_code == 200 and response.json()["message"] == \
        f"silence {silence_id} ended by olu"
    assert console.get("/api/alerts").json()["badge"] == opened["badge"]
    with console_catalog.session() as session:
        audit = [(a.actor, a.via, a.action) for a in session.scalars(
            select(Action).where(Action.action.startswith("silence.")).order_by(Action.id))]
    assert audit == [("olu", "console", "silence.create"), ("olu", "api", "silence.end")]


def test_a_silence_needs_a_reason_and_ops_and_a_viewer_cannot_make_one(console,
                                                                        console_catalog):
    token = _login(console, "olu")
    response = console.post("/api/alerts/silences", headers={"X-CSRF-Token": token},
                            json={"kind": "data_drift", "duration": "1h", "reason": ""})
    assert response.status_code == 422
    response = console.post("/alerts/silences", data={"csrf_token": token, "kind": "data_drift",
                                                      "duration": "1h", "reason": "  "})
    assert "a reason is required" in response.text
    response = console.post("/api/alerts/silences", headers={"X-CSRF-Token": token},
                            json={"kind": "data_drift", "duration": "9x", "reason": "r"})
    assert response.status_code == 422 and "duration '9x'" in response.json()["detail"]
    token = _login(console, "vic")
    response = console.post("/api/alerts/silences", headers={"X-CSRF-Token": token},
                            json={"kind": "data_drift", "duration": "1h", "reason": "r"})
    assert response.status_code == 403
    assert 'id="silence"' not in console.get("/alerts").text  # no form for a viewer
    with console_catalog.session() as session:
        assert active_silences(session) == []


def test_the_alerts_page_filters_pages_and_links_each_alert_to_its_evidence(console,
                                                                            console_catalog):
    _login(console, "vic")
    every = console.get("/api/alerts?state=all").json()
    assert every["total"] >= len(every["alerts"]) >= 2
    assert [a["id"] for a in every["alerts"]] == sorted(
        (a["id"] for a in every["alerts"]), key=lambda i: next(
            a["last_seen"] for a in every["alerts"] if a["id"] == i), reverse=True)
    drift = console.get("/api/alerts?state=all&kind=data_drift").json()["alerts"]
    assert drift and all(a["kind"] == "data_drift" for a in drift)
    links = {e["label"].split()[0]: e["href"] for e in drift[0]["evidence"]}
    assert links["store"].startswith("/drift/") and links["store"].endswith("/store.html")
    assert console.get(links["store"]).status_code == 200  # the report itself
    assert links["night"].startswith("/models?night=2017-06-")
    severe = console.get("/api/alerts?state=all&severity=severe").json()["alerts"]
    assert all(a["severity"] == "severe" for a in severe)
    assert console.get("/api/alerts?state=nosuch").status_code == 422
    assert console.get("/api/alerts?kind=nosuch").status_code == 422
    with console_catalog.unit_of_work() as session:
        for store in range(10, 40):
            _drift_alert(session, store)
    first = console.get("/api/alerts?state=all").json()
    assert first["pages"] >= 2 and len(first["alerts"]) == 25
    second = console.get("/api/alerts?state=all&page=2").json()
    assert not {a["id"] for a in first["alerts"]} & {a["id"] for a in second["alerts"]}
    html = console.get("/alerts?state=all").text
    assert '<a href="/alerts?state=all&amp;page=2" id="older">older</a>' in html


def test_an_alert_links_to_its_prefect_flow_run_only_when_a_prefect_ui_is_configured():
    from service.console.views import _evidence_links

    found = {"drift_report": None, "report_group": None, "night": "2017-06-06",
             "model_version": 7, "flow_run": "amber-fox", "flow_run_id": "0f1e2d"}
    assert _evidence_links(found, None) == [
        {"label": "night 2017-06-06", "href": "/models?night=2017-06-06"},
        {"label": "version 7", "href": "/models/7"}]
    assert _evidence_links(found, "http://127.0.0.1:4200")[-1] == {
        "label": "Prefect flow run amber-fox",
        "href": "http://127.0.0.1:4200/runs/flow-run/0f1e2d"}
    # a night that failed before it registered: only its flow run's name, so the run list
    assert _evidence_links({**found, "flow_run_id": None}, "http://127.0.0.1:4200")[-1] == {
        "label": "Prefect run amber-fox", "href": "http://127.0.0.1:4200/runs"}


def test_a_notification_says_how_to_acknowledge_and_how_to_silence():
    from types import SimpleNamespace

    from monitoring.notify import alert_notification

    alert = SimpleNamespace(id=4, kind="data_drift", severity="severe", link=None,
                            message="store 2 sales level changed")
    body = alert_notification(alert).body
    assert "acknowledge: shelfcast alerts ack 4 --by NAME" in body
    assert "silence: shelfcast alerts silence data_drift --for 4h --reason WHY --by NAME" in body
