"""The command line's contract where an outside test campaign found it broken: racing writes,
ids, dates without sales, stores without sales, NUL bytes, nothing to roll back, LiteRT's
notice on a device's stderr."""

from __future__ import annotations

import argparse

import pytest
from factories import run_cli
from sqlalchemy import func, select

from flows.errors import EXIT_BAD_INPUT, EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_OK
from flows.output import record_id
from storage.errors import Conflict
from storage.models import Device, DriftReport, Sale
from storage.synthetic import generate_sales, write_sales_csv

ID_ARGUMENTS = {"version", "alert", "release", "device", "store", "item", "silence"}


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shelfcast: error: "), err
    return lines[0]


def count(monkeypatch, tmp_path, model) -> int:
    from storage.catalog import get_catalog

    monkeypatch.setenv("SHELFCAST_HOME", str(tmp_path / "home"))
    with get_catalog().session() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def with_sales(monkeypatch, tmp_path):
    """Stores 1 and 2 with sales from 2017-01-01 to 2017-03-31, except on 2017-03-15."""
    sales = generate_sales(stores=2, items=1, start="2017-01-01", end="2017-03-31")
    write_sales_csv(sales[sales["date"] != "2017-03-15"], tmp_path / "sales.csv")
    assert run_cli(["ingest", str(tmp_path / "sales.csv")], monkeypatch, tmp_path)[0] == EXIT_OK


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql",
                                                             marks=pytest.mark.postgres)])
def test_two_acknowledgements_racing_exactly_one_wins(sessions):
    """Both sessions read the alert unacknowledged before either writes: the write itself is
    conditional, so the second is refused instead of overwriting the first."""
    from storage.alerts import acknowledge, get_alert, raise_alert

    with sessions() as session, session.begin():
        alert_id = raise_alert(session, kind="data_drift", severity="severe", scope={},
                               dedup_key="store:1", message="store 1 drifted")[0].id
    with sessions() as first, sessions() as second:
        assert get_alert(first, alert_id).acknowledged_at is None
        assert get_alert(second, alert_id).acknowledged_at is None
        acknowledge(first, alert_id, by="kim")
        first.commit()
        with pytest.raises(Conflict, match="already acknowledged by kim"):
            acknowledge(second, alert_id, by="lee")
        second.rollback()
    with sessions() as session:
        assert get_alert(session, alert_id).acknowledged_by == "kim"


def _id_actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from ((f"{name} {where}".strip(), found)
                            for where, found in _id_actions(child))
        elif action.dest in ID_ARGUMENTS:
            yield "", action


def test_every_id_argument_of_every_command_is_a_registry_id():
    from flows.cli import build_parser

    found = {(where, action.dest): action.type for where, action in _id_actions(build_parser())}
    assert {"models show", "alerts ack", "promote", "releases approve", "devices revoke",
            "devices enroll"} <= {where for where, _ in found}
    assert {key: kind for key, kind in found.items() if kind is not record_id} == {}


@pytest.mark.parametrize("argv", [
    ["devices", "enroll", "--store", str(2**63), "--device-class", "sensor"],
    ["devices", "revoke", str(2**63)],
    ["releases", "approve", str(2**31)],
])
def test_an_id_beyond_the_registry_range_is_bad_input(argv, monkeypatch, tmp_path):
    code, _, err = run_cli(argv, monkeypatch, tmp_path)
    assert code == EXIT_BAD_INPUT and "expected an id from 1 to 2147483647" in one_line(err)


@pytest.mark.parametrize(("day", "says"), [
    ("2017-03-15", "--as-of 2017-03-15 has no sales stored (the last day with sales before it "
                   "is 2017-03-14)"),
    ("2016-06-01", "--as-of 2016-06-01: no sales stored on or before it"),
    ("2099-01-01", "--as-of 2099-01-01 is after the last day with sales (2017-03-31)"),
])
def test_a_drift_check_on_a_day_without_sales_is_refused_recording_nothing(
        day, says, with_sales, monkeypatch, tmp_path):
    code, _, err = run_cli(["drift", "check", "--as-of", day], monkeypatch, tmp_path)
    assert code == EXIT_BAD_INPUT and says in one_line(err)
    assert count(monkeypatch, tmp_path, DriftReport) == 0


def test_a_device_for_a_store_without_sales_is_refused(with_sales, monkeypatch, tmp_path):
    code, _, err = run_cli(["devices", "enroll", "--store", "9", "--device-class", "sensor"],
                           monkeypatch, tmp_path)
    assert code == EXIT_NOT_FOUND
    assert "store 9 has no sales in the registry: check the store id, or ingest" in one_line(err)
    assert count(monkeypatch, tmp_path, Device) == 0
    code, out, _ = run_cli(["devices", "enroll", "--store", "2", "--device-class", "sensor"],
                           monkeypatch, tmp_path)
    assert code == EXIT_OK and out.strip() and count(monkeypatch, tmp_path, Device) == 1


def test_a_nul_after_a_sales_value_is_refused_naming_file_line_column_value(monkeypatch,
                                                                           tmp_path):
    sales = tmp_path / "nul.csv"
    sales.write_bytes(b"date,store,item,sales\n2017-04-01,1,1,5\n2017-04-02,1,1,5\x00\n")
    code, _, err = run_cli(["ingest", str(sales)], monkeypatch, tmp_path)
    assert code == EXIT_BAD_INPUT
    assert f"{sales}:3: column 'sales': '5\\x00' holds a NUL byte" in one_line(err)
    assert count(monkeypatch, tmp_path, Sale) == 0


def test_a_rollback_with_nothing_to_undo_is_refused(monkeypatch, tmp_path):
    code, _, err = run_cli(["rollback", "--device-class", "sensor", "--reason", "test"],
                           monkeypatch, tmp_path)
    assert code == EXIT_CONFLICT
    assert "device class 'sensor' has no open release to roll back" in one_line(err)


def test_litert_says_nothing_on_stderr_when_a_model_loads(model_files, capfd):
    """LiteRT's C++ "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." would make a
    device's one-line refusal two lines; stderr works again right after."""
    import os

    import numpy as np

    from device.runtime import Forecaster

    capfd.readouterr()
    forecast = Forecaster(model_files[0]).forecast_one(np.ones(14), 2, np.zeros(5))
    os.write(2, b"stderr still works\n")
    captured = capfd.readouterr()
    assert np.isfinite(forecast) and captured.err == "stderr still works\n"


@pytest.mark.parametrize(("text", "says"), [
    (str(2**63), "expected ids from 1 to 2147483647"),
    ("0-4", "expected ids from 1 to 2147483647"),
    ("1-2147483647", "more than 10,000 ids"),
])
def test_a_benchmark_id_range_is_checked_like_every_id(text, says):
    from flows.commands.bench import parse_id_range

    with pytest.raises(ValueError, match=says):
        parse_id_range(text)
    assert parse_id_range("1-3,7") == [1, 2, 3, 7] and parse_id_range("0-2", first=0) == [0, 1, 2]
