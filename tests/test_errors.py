"""Every failure is one clear line with an exit code for its kind, and changes nothing."""

from __future__ import annotations

import contextlib
import io
import math
import multiprocessing
import time

import pytest
from factories import run_cli
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from flows.errors import (
    EXIT_BAD_INPUT,
    EXIT_CONFLICT,
    EXIT_INTERNAL,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
)
from policy.limits import POLICY_FIELDS
from storage.models import GatePolicy, Release, Sale
from storage.registry import RegistryError, active_policies, set_policy


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("shelfcast: error: ") and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(("argv", "env", "code", "says"), [
    (["models", "list"], {"SHELFCAST_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/x"},
     EXIT_UNAVAILABLE, "is unavailable: connection failed"),
    (["models", "list"], {"SHELFCAST_DATABASE_URL": "not a url"}, EXIT_BAD_INPUT,
     "settings database_url"),
    (["models", "list"], {"SHELFCAST_DATABASE_URL": "nosuchdriver://x/y"}, EXIT_BAD_INPUT,
     "settings database_url: Can't load plugin"),
    (["models", "list"], {"SHELFCAST_CANARY_NIGHTS": "three"}, EXIT_BAD_INPUT,
     "settings: canary_nights"),
    (["nightly", "--profile", "huge"], {}, EXIT_BAD_INPUT, "invalid choice: 'huge'"),
    (["models", "show", "seven"], {}, EXIT_BAD_INPUT,
     "argument version: expected an id from 1 to 2147483647, got 'seven'"),
    (["models", "show", str(2**63)], {}, EXIT_BAD_INPUT, "expected an id from 1 to 2147483647"),
    (["alerts", "ack", "99999999999999999999", "--by", "kim"], {}, EXIT_BAD_INPUT,
     "argument alert: expected an id"),
    (["promote", "0", "--device-class", "sensor"], {}, EXIT_BAD_INPUT, "got '0'"),
    (["models", "show", "7"], {}, EXIT_NOT_FOUND, "no model version 7"),
    (["alerts", "ack", "3", "--by", "kim"], {}, EXIT_NOT_FOUND, "no alert 3"),
    (["gate", "set", "sensr", "--max-mape", "20"], {}, EXIT_NOT_FOUND,
     "unknown device class 'sensr'"),
    (["gate", "set", "sensor", "--max-mape", "inf"], {}, EXIT_BAD_INPUT,
     "max_error must be a finite number"),
    (["gate", "set", "sensor", "--max-mape", "nan"], {}, EXIT_BAD_INPUT,
     "max_error must be a finite number"),
    (["gate", "set", "sensor", "--max-latency-ms", "1e308"], {}, EXIT_BAD_INPUT,
     "max_latency_ms must be a finite number"),
    (["gate", "set", "sensor", "--max-bytes", "99999999999999"], {}, EXIT_BAD_INPUT,
     "max_artifact_bytes must be a finite number from 1 to 2147483647"),
    (["ingest", "/nonexistent/sales.csv"], {}, EXIT_NOT_FOUND, "no such sales file"),
    (["models", "list"], {"SHELFCAST_CONFIG": "/nonexistent/shelfcast.toml"}, EXIT_NOT_FOUND,
     "settings file /nonexistent/shelfcast.toml (SHELFCAST_CONFIG) does not exist"),
])
def test_each_failure_is_one_line_with_the_exit_code_of_its_kind(argv, env, code, says,
                                                                 monkeypatch, tmp_path):
    got, _, err = run_cli(argv, monkeypatch, tmp_path, **env)
    assert got == code, err
    assert says in one_line_error(err)


def test_an_unwritable_data_folder_is_one_line(monkeypatch, tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    got, _, err = run_cli(["models", "list"], monkeypatch, tmp_path,
                          SHELFCAST_HOME=str(blocker / "home"))
    assert got in (EXIT_BAD_INPUT, EXIT_NOT_FOUND, EXIT_UNAVAILABLE)
    assert str(blocker) in one_line_error(err)


def test_an_internal_error_says_where_the_details_are_and_debug_shows_them(monkeypatch, tmp_path):
    from flows.commands import registry

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(registry, "gate_show", broken)
    from flows import cli

    monkeypatch.setattr(cli.registry, "gate_show", broken)
    got, _, err = run_cli(["gate", "show"], monkeypatch, tmp_path)
    assert got == EXIT_INTERNAL
    assert "internal error: ZeroDivisionError" in one_line_error(err) and "--debug" in err
    got, _, err = run_cli(["--debug", "gate", "show"], monkeypatch, tmp_path)
    assert got == EXIT_INTERNAL and "Traceback" in err


def test_a_second_acknowledgement_is_a_conflict(sessions, monkeypatch, tmp_path):
    from storage.alerts import raise_alert

    with sessions() as session, session.begin():
        alert, _ = raise_alert(session, kind="data_drift", severity="severe", scope={},
                               dedup_key="k", message="store 1 drifted")
        alert_id = alert.id
        url = session.get_bind().url.render_as_string(hide_password=False)
    env = {"SHELFCAST_DATABASE_URL": url}
    assert run_cli(["alerts", "ack", str(alert_id), "--by", "kim"], monkeypatch, tmp_path,
                   **env)[0] == 0
    got, _, err = run_cli(["alerts", "ack", str(alert_id), "--by", "lee"], monkeypatch, tmp_path,
                          **env)
    assert got == EXIT_CONFLICT and "already acknowledged by kim" in one_line_error(err)


def test_a_new_device_class_needs_new_class_and_every_threshold(sessions):
    full = dict(max_error=25.0, max_delta_baseline=1.0, max_loss=0.5,
                max_artifact_bytes=4096, max_latency_ms=0.5)
    with sessions() as session, session.begin():
        with pytest.raises(RegistryError, match="unknown device class 'kiosk'"):
            set_policy(session, "kiosk", by="ops", **full)
        with pytest.raises(RegistryError, match="needs every threshold"):
            set_policy(session, "kiosk", by="ops", new_class=True, max_error=20.0)
        with pytest.raises(RegistryError, match="exists already"):
            set_policy(session, "sensor", by="ops", new_class=True, **full)
        set_policy(session, "kiosk", by="ops", new_class=True, **full)
    with sessions() as session:
        assert active_policies(session)["kiosk"].max_artifact_bytes == 4096


POLICY_BOUNDS = {f.name: (f.low, f.high) for f in POLICY_FIELDS if f.low is not None}


@given(field=st.sampled_from(sorted(POLICY_BOUNDS)),
       value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70)))
def test_any_policy_value_is_stored_exactly_or_refused_with_one_line_and_no_change(
        postgres_or_sqlite_policies, field, value):
    sessions = postgres_or_sqlite_policies
    with sessions() as session:
        before = session.scalar(select(func.count()).select_from(GatePolicy))
    low, high = POLICY_BOUNDS[field]
    valid = math.isfinite(value) and low <= value <= high and \
        (not isinstance(low, int) or float(value).is_integer())
    try:
        with sessions() as session, session.begin():
            policy = set_policy(session, "sensor", by="fuzz", **{field: value})
            stored = getattr(policy, field)
    except RegistryError as exc:
        assert not valid, f"{field}={value!r} refused: {exc}"
        assert "\n" not in str(exc) and len(str(exc)) < 200
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(GatePolicy)) == before
        return
    assert valid, f"{field}={value!r} was accepted"
    assert stored == value


@pytest.fixture(scope="module")
def postgres_or_sqlite_policies(tmp_path_factory):
    """One migrated SQLite registry for the property test (Hypothesis reruns it many times)."""
    from storage.db import make_engine, session_factory, upgrade

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'registry.sqlite'}")
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


# -- conflicts: concurrent writers on PostgreSQL -------------------------------------------------


def _cli_in_process(argv: list[str], env: dict, hold_s: float, holding=None,
                    after=None) -> tuple[int, str]:
    """Run the CLI in a fresh process. With `hold_s`, its registry writes hold their
    transaction open that long before committing, and it sets the event `holding` then; with
    `after`, it starts its command only once that event is set: the second writer begins while
    the first holds its uncommitted rows, however slowly each process started."""
    import os

    os.environ.update(env)
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    if hold_s:
        @event.listens_for(Session, "before_commit")
        def _hold(session) -> None:
            holding.set()
            time.sleep(hold_s)

    from flows.cli import main

    if after is not None:
        after.wait(timeout=120)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def _race(argv_a, argv_b, env):
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        holding = manager.Event()
        first = pool.apply_async(_cli_in_process, (argv_a, env, 1.5, holding, None))
        second = pool.apply_async(_cli_in_process, (argv_b, env, 0.0, None, holding))
        return first.get(timeout=180), second.get(timeout=180)


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True) # a race on a shared registry
def test_two_overlapping_ingests_at_once_one_wins_the_other_says_try_again(database_url,
                                                                          sessions, tmp_path):
    from storage.synthetic import generate_sales, write_sales_csv

    sales = generate_sales(stores=2, items=2, start="2017-01-01", end="2017-03-31", seed=4)
    write_sales_csv(sales, tmp_path / "a.csv")
    write_sales_csv(sales[sales["date"] >= "2017-02-01"], tmp_path / "b.csv")
    env = {"SHELFCAST_HOME": str(tmp_path / "home"), "SHELFCAST_DATABASE_URL": database_url}
    (code_a, err_a), (code_b, err_b) = _race(["ingest", str(tmp_path / "a.csv")],
                                             ["ingest", str(tmp_path / "b.csv")], env)
    assert sorted([code_a, code_b]) == [0, EXIT_CONFLICT], (err_a, err_b)
    loser = err_a if code_a else err_b
    assert "changed concurrently" in one_line_error(loser) and "try again" in loser
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Sale)) == \
            (len(sales) if code_a == 0 else int((sales["date"] >= "2017-02-01").sum()))


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True) # a race on a shared registry
def test_two_promotions_of_one_class_at_once_are_serialized(database_url, shipping, tmp_path):
    target = shipping["target"]
    env = {"SHELFCAST_HOME": str(tmp_path / "home"), "SHELFCAST_DATABASE_URL": database_url,
           "SHELFCAST_RELEASE_DIR": str(target.root), "SHELFCAST_SIGNING_KEY": str(target.signing_key)}
    (code_a, err_a), (code_b, err_b) = _race(
        ["promote", str(shipping["v1"]), "--device-class", "sensor", "--channel", "stable"],
        ["promote", str(shipping["v2"]), "--device-class", "sensor", "--channel", "stable"], env)
    assert (code_a, code_b) == (0, 0), (err_a, err_b)
    with shipping["sessions"]() as session:
        releases = session.scalars(select(Release).order_by(Release.id)).all()
    first, second = releases
    assert (first.model_version_id, second.model_version_id) == (shipping["v1"], shipping["v2"])
    assert first.ended_at is not None and first.end_reason.startswith("superseded")
    assert second.ended_at is None, "the later promotion saw the earlier one and replaced it"


def test_a_night_killed_hard_is_found_by_the_next_one(tmp_path):
    """A marker whose process is gone (SIGKILL) or that kept an error the registry never heard
    of is reported; a night still running in another process is not."""
    import json
    import subprocess
    import sys

    from storage import night_log

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    killed = night_log.begin_night(tmp_path, "killed-night")
    killed.write_text(json.dumps({"flow_run": "killed-night", "pid": int(dead.stdout)}))
    failed = night_log.begin_night(tmp_path, "failed-night")
    night_log.note_failure(failed, "registry unavailable")
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        busy = night_log.begin_night(tmp_path, "running-night")
        busy.write_text(json.dumps({"flow_run": "running-night", "pid": running.pid}))
        found = {f.flow_run: f.error for f in night_log.unrecorded_failures(tmp_path,
                                                                            running="tonight")}
    finally:
        running.kill()
        running.wait()
    assert found == {"killed-night": found["killed-night"], "failed-night": "registry unavailable"}
    assert "stopped without an outcome" in found["killed-night"]


@pytest.mark.parametrize(("argv", "says"), [
    (["predict", "--state", "/tmp/x", "--history", "1", "two", "3"], "invalid float value: 'two'"),
    (["sync", "--channel", "x"], "the following arguments are required"),
    (["predict", "--state", "/nonexistent", "--history", *["1"] * 14, "--date", "2018-13-01"],
     "'2018-13-01' is not a date"),
])
def test_the_device_cli_says_what_was_wrong_in_one_line(argv, says, capsys):
    from device.cli import main as device_main

    assert device_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and err[0].startswith("shelfcast-device")


def test_an_unparseable_notification_url_fails_quietly_and_is_never_echoed(capfd):
    from monitoring.notify import Notification, send

    secret = "slack://hunter2:s3cr3t@"  # no channel: Apprise cannot parse it
    assert send(secret, Notification("t", "b")) is False
    printed = capfd.readouterr()
    assert "hunter2" not in printed.out + printed.err and "s3cr3t" not in printed.out + printed.err


@pytest.mark.parametrize(("argv", "says"), [
    (["nightly", "--as-of", "2016-13-45"], "expected a date as YYYY-MM-DD, got '2016-13-45'"),
    (["drift", "check", "--as-of", "9" * 100_000], "expected a date as YYYY-MM-DD, got '9999"),
])
def test_a_bad_as_of_date_is_one_short_line_before_anything_runs(argv, says, monkeypatch,
                                                                  tmp_path):
    code, _, err = run_cli(argv, monkeypatch, tmp_path)
    assert code == EXIT_BAD_INPUT and says in one_line_error(err) and len(err) < 300


def test_a_night_or_drift_check_after_the_last_day_with_sales_is_refused(monkeypatch, tmp_path):
    from storage.synthetic import generate_sales, write_sales_csv

    write_sales_csv(generate_sales(stores=1, items=1, start="2017-01-01", end="2017-03-31"),
                    tmp_path / "sales.csv")
    assert run_cli(["ingest", str(tmp_path / "sales.csv")], monkeypatch, tmp_path)[0] == 0
    code, _, err = run_cli(["drift", "check", "--as-of", "2099-01-01"], monkeypatch, tmp_path)
    assert code == EXIT_BAD_INPUT
    assert "--as-of 2099-01-01 is after the last day with sales (2017-03-31)" in one_line_error(err)
