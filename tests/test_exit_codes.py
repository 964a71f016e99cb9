"""README's "Exit codes", code by code, for `shelfcast` and `shelfcast-device`: each with a real
example of the table, and one line on stderr for every failure."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from factories import run_cli

from flows.errors import (
    EXIT_BAD_INPUT,
    EXIT_CONFLICT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAVAILABLE,
)

BIN = Path(sys.executable).parent
WAIT_S = 60  # a command that has not reached its network call by then is stuck elsewhere


def failure_line(err: str, prefix: str = "shelfcast: error: ") -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), err
    return lines[0]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def device(argv, capsys) -> tuple[int, str, str]:
    from device.cli import main

    code = main([str(a) for a in argv])
    printed = capsys.readouterr()
    return code, printed.out, printed.err


@pytest.fixture
def public_key(tmp_path) -> Path:
    from storage.channel import init_signing_key

    public, _ = init_signing_key(tmp_path / "keys" / "release.pem")
    return public


def interrupted_while_waiting(command: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run `command` against a server on 127.0.0.1 that accepts the connection and never
    answers; once the command is waiting on it, send SIGINT."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(WAIT_S)
        port = str(server.getsockname()[1])
        process = subprocess.Popen([part.replace("PORT", port) for part in command],
                                   env={**os.environ, **{name: value.replace("PORT", port)
                                                         for name, value in env.items()}},
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            connection, _ = server.accept()  # the command is past its imports, waiting
            with connection:
                process.send_signal(signal.SIGINT)
                out, err = process.communicate(timeout=WAIT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return subprocess.CompletedProcess(command, process.returncode, out, err)


# -- shelfcast ----------------------------------------------------------------------------


def test_shelfcast_0_done(monkeypatch, tmp_path):
    code, out, err = run_cli(["models", "list"], monkeypatch, tmp_path)
    assert (code, out.strip(), err) == (EXIT_OK, "(none)", "")


def test_shelfcast_1_a_bug_says_to_run_again_with_debug(monkeypatch, tmp_path):
    from flows.commands import registry

    def broken(args):
        return 1 / 0

    monkeypatch.setattr(registry, "gate_show", broken)
    code, _, err = run_cli(["gate", "show"], monkeypatch, tmp_path)
    assert code == EXIT_INTERNAL
    assert "internal error: ZeroDivisionError" in failure_line(err) and "--debug" in err


@pytest.mark.parametrize(("argv", "says"), [
    (["nightly", "--profile", "huge"], "invalid choice: 'huge'"),  # a bad choice
    (["gate", "set", "sensor", "--max-mape", "inf"], "max_error must be a finite number"),
    (["ingest", "BAD_ROW"], "sales.csv:3: column 'sales': '-4' is below 0"),
])
def test_shelfcast_2_bad_input_changes_nothing(argv, says, monkeypatch, tmp_path):
    bad = tmp_path / "sales.csv"
    bad.write_text("date,store,item,sales\n2017-01-01,1,1,5\n2017-01-02,1,1,-4\n")
    argv = [str(bad) if a == "BAD_ROW" else a for a in argv]
    before = run_cli(["gate", "show", "--json"], monkeypatch, tmp_path)[1]
    code, _, err = run_cli(argv, monkeypatch, tmp_path)
    assert code == EXIT_BAD_INPUT and says in failure_line(err)
    assert run_cli(["gate", "show", "--json"], monkeypatch, tmp_path)[1] == before
    assert "no sales are stored" in run_cli(["drift", "check"], monkeypatch, tmp_path)[2]


@pytest.mark.parametrize(("argv", "says"), [
    (["models", "show", "999"], "no model version 999"),
    (["gate", "set", "sensr", "--max-mape", "20"], "unknown device class 'sensr'"),
    (["ingest", "/nonexistent/sales.csv"], "/nonexistent/sales.csv: no such sales file"),
])
def test_shelfcast_3_not_found(argv, says, monkeypatch, tmp_path):
    code, _, err = run_cli(argv, monkeypatch, tmp_path)
    assert code == EXIT_NOT_FOUND and says in failure_line(err)


def test_shelfcast_4_a_second_ack_and_a_second_key_init_are_refused(monkeypatch, tmp_path):
    from storage.alerts import raise_alert
    from storage.catalog import get_catalog

    monkeypatch.setenv("SHELFCAST_HOME", str(tmp_path / "home"))
    with get_catalog().unit_of_work() as session:
        alert_id = raise_alert(session, kind="data_drift", severity="severe", scope={},
                               dedup_key="store:1", message="store 1 drifted")[0].id
    assert run_cli(["alerts", "ack", str(alert_id), "--by", "kim"], monkeypatch, tmp_path)[0] == 0
    code, _, err = run_cli(["alerts", "ack", str(alert_id), "--by", "lee"], monkeypatch, tmp_path)
    assert code == EXIT_CONFLICT and "already acknowledged by kim" in failure_line(err)
    assert run_cli(["keys", "init"], monkeypatch, tmp_path)[0] == EXIT_OK
    code, _, err = run_cli(["keys", "init"], monkeypatch, tmp_path)
    assert code == EXIT_CONFLICT and "release-signing.pem exists" in failure_line(err)


def test_shelfcast_5_the_registry_unreachable(monkeypatch, tmp_path):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/shelfcast"
    code, _, err = run_cli(["models", "list"], monkeypatch, tmp_path, SHELFCAST_DATABASE_URL=url)
    assert code == EXIT_UNAVAILABLE and "is unavailable" in failure_line(err)


def test_shelfcast_130_interrupted_while_waiting_for_the_registry(tmp_path):
    done = interrupted_while_waiting(
        [str(BIN / "shelfcast"), "models", "list"],
        {"SHELFCAST_HOME": str(tmp_path / "home"),
         "SHELFCAST_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:PORT/shelfcast"})
    assert done.returncode == EXIT_INTERRUPTED, done.stderr
    assert failure_line(done.stderr) == "shelfcast: error: interrupted"


# -- shelfcast-device ---------------------------------------------------------------------


def test_device_0_done(tmp_path, capsys):
    code, out, err = device(["status", "--state", tmp_path / "state"], capsys)
    assert (code, err) == (EXIT_OK, "") and "no model installed" in out


def test_device_1_a_bug_says_to_run_again_with_debug(monkeypatch, tmp_path, capsys):
    from device import cli

    def broken(state):
        return 1 / 0

    monkeypatch.setattr(cli, "read_state", broken)
    code, _, err = device(["status", "--state", tmp_path], capsys)
    assert code == EXIT_INTERNAL
    line = failure_line(err, "shelfcast-device status: ")
    assert "internal error: ZeroDivisionError" in line and "--debug" in line


def test_device_2_bad_input(tmp_path, capsys):
    code, _, err = device(["predict", "--state", tmp_path, "--history", "1", "two"], capsys)
    assert code == EXIT_BAD_INPUT and "invalid float value: 'two'" in failure_line(
        err, "shelfcast-device")


def test_device_3_a_missing_file(tmp_path, capsys):
    code, _, err = device(["trust", "--state", tmp_path / "state", "--public-key",
                           tmp_path / "missing.pem"], capsys)
    assert code == EXIT_NOT_FOUND and "missing.pem" in failure_line(err, "shelfcast-device trust")


def test_device_4_a_channel_it_cannot_trust_is_refused(tmp_path, capsys):
    (tmp_path / "channel").mkdir()
    code, _, err = device(["sync", "--channel", tmp_path / "channel", "--device-class", "sensor",
                           "--store", "1", "--state", tmp_path / "state"], capsys)
    assert code == EXIT_CONFLICT
    assert "no trusted release key" in failure_line(err, "shelfcast-device sync")


def test_device_5_an_unreachable_channel(tmp_path, public_key, capsys):
    code, _, err = device(["sync", "--channel", f"http://127.0.0.1:{closed_port()}",
                           "--device-class", "sensor", "--store", "1", "--state",
                           tmp_path / "state", "--public-key", public_key], capsys)
    assert code == EXIT_UNAVAILABLE
    assert "unreachable" in failure_line(err, "shelfcast-device sync")


def test_device_130_interrupted_while_waiting_for_the_channel(tmp_path, public_key):
    done = interrupted_while_waiting(
        [str(BIN / "shelfcast-device"), "sync", "--channel", "http://127.0.0.1:PORT",
         "--device-class", "sensor", "--store", "1", "--state", str(tmp_path / "state"),
         "--public-key", str(public_key)], {})
    assert done.returncode == EXIT_INTERRUPTED, done.stderr
    assert failure_line(done.stderr, "shelfcast-device") == "shelfcast-device sync: interrupted"
