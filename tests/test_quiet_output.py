"""Quiet by default: while a night runs, third-party logs (Python loggers, C++ libraries writing to
file descriptor 2, child processes such as Dask workers) go to a log file under the data
directory, the terminal shows Shelfcast's own lines, and `--verbose` leaves stderr alone. No
model is trained here."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from flows import progress
from flows.progress import DETAIL, FAILURE, STEP

ROOT = Path(__file__).resolve().parents[1]

# What one process of a night does to stderr, by each route a library takes.
NIGHT = textwrap.dedent("""
    import logging, os, subprocess, sys

    from flows.commands.night import night_terminal
    from flows.progress import DETAIL, STEP, say

    logging.basicConfig(format="%(name)s - %(message)s")  # bound to stderr, as Prefect's handler
    with night_terminal("nightly", verbose=sys.argv[1] == "verbose") as log_file:
        logging.getLogger("distributed.scheduler").warning("Scheduler at: tcp://127.0.0.1:8786")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('I0000 oneDNN custom "
                        "operations are on\\\\n')"], check=True)  # a worker process
        say("drift check: done in 5.8 s", kind=STEP)
        say("lstm64: epoch 1 of 40, val loss 0.1612", kind=DETAIL)
    print(log_file)
    sys.stderr.write("shelfcast: error: the night failed\\n")  # as cli.main, after the block
""")
THIRD_PARTY = ("Scheduler at: tcp://127.0.0.1:8786", "XNNPACK delegate for CPU",
               "oneDNN custom operations are on")


def _run_night_process(tmp_path: Path, mode: str) -> subprocess.CompletedProcess:
    script = tmp_path / "night.py"
    script.write_text(NIGHT)
    env = {**os.environ, "SHELFCAST_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120, check=True)


def test_third_party_logs_go_to_the_log_file_and_the_terminal_keeps_shelfcasts_lines(tmp_path):
    done = _run_night_process(tmp_path, "quiet")
    log_file = Path(done.stdout.strip())
    assert log_file.parent == (tmp_path / "home" / "logs").resolve()
    assert log_file.name.startswith("nightly-") and log_file.suffix == ".log"
    logged = log_file.read_text()
    for line in THIRD_PARTY:
        assert line in logged and line not in done.stderr
    assert "drift check: done in 5.8 s" in done.stderr
    assert "epoch 1 of 40" not in done.stderr, "a detail waits for a silence on the terminal"
    assert "drift check: done" in logged and "epoch 1 of 40" in logged, "the log has every line"
    assert done.stderr.splitlines()[-1] == "shelfcast: error: the night failed"


def test_verbose_leaves_third_party_logs_on_stderr_and_writes_no_log_file(tmp_path):
    done = _run_night_process(tmp_path, "verbose")
    assert done.stdout.strip() == "None"
    for line in (*THIRD_PARTY, "drift check: done in 5.8 s", "epoch 1 of 40"):
        assert line in done.stderr
    assert not (tmp_path / "home" / "logs").exists()


def test_verbose_is_a_flag_of_the_shelfcast_command():
    from flows.cli import build_parser

    assert build_parser().parse_args(["--verbose", "demo"]).verbose is True
    assert build_parser().parse_args(["nightly"]).verbose is False


@pytest.fixture
def quiet(monkeypatch, capsys):
    """A quiet terminal in this process: what reaches it, and what reaches stderr (the log)."""
    terminal = io.StringIO()
    monkeypatch.setattr(progress, "_terminal", terminal)
    monkeypatch.setattr(progress, "_last_shown", time.monotonic())
    return SimpleNamespace(terminal=terminal, log=lambda: capsys.readouterr().err)


def test_a_quiet_terminal_shows_steps_and_failures_and_a_detail_only_after_a_silence(quiet,
                                                                                    monkeypatch):
    progress.show("[01:00:00] drift check: done in 5.8 s", kind=STEP)
    progress.show("[01:00:01] lstm64: epoch 1 of 40", kind=DETAIL)
    progress.show("[01:00:02] export int8: failed in 1.0 s: disk full", kind=FAILURE)
    monkeypatch.setattr(progress, "_last_shown", time.monotonic() - progress.SILENT_AT_MOST_S)
    progress.show("[01:00:40] lstm64: epoch 9 of 40", kind=DETAIL)
    progress.show("[01:00:41] lstm64: epoch 10 of 40", kind=DETAIL)
    assert quiet.terminal.getvalue().splitlines() == [
        "[01:00:00] drift check: done in 5.8 s", "[01:00:02] export int8: failed in 1.0 s: disk full",
        "[01:00:40] lstm64: epoch 9 of 40"]
    assert len(quiet.log().splitlines()) == 5


def test_a_dask_workers_line_is_shown_by_the_flows_process_and_logged_once(quiet):
    progress.show_forwarded((1.0, {"kind": STEP, "line": "[01:00:00] score references: done"}))
    assert quiet.terminal.getvalue() == "[01:00:00] score references: done\n"
    assert "score references" not in quiet.log(), "the worker's own log has it already"


def test_the_terminal_shows_a_slow_step_of_the_night_but_not_a_variants_task(quiet):
    drift = SimpleNamespace(name="drift check", task_run_name=None)
    load = SimpleNamespace(name="load sales", task_run_name=None)
    train = SimpleNamespace(name="train", task_run_name="train {variant}")
    for task, run, seconds in ((drift, SimpleNamespace(id=1, name="drift check-0"), 5.8),
                               (load, SimpleNamespace(id=2, name="load sales-0"), 1.1),
                               (train, SimpleNamespace(id=3, name="train lstm64"), 20.0)):
        progress._started[str(run.id)] = time.perf_counter() - seconds
        progress._on_completion(task, run, state=None)
    shown = quiet.terminal.getvalue()
    assert "drift check: done in 5.8 s" in shown
    assert "load sales" not in shown and "train lstm64" not in shown
    assert "train lstm64: done in 20.0 s" in quiet.log()


def test_the_demos_drift_line_leaves_the_power_caveats_and_the_link_to_the_report():
    from flows.commands.night import drift_headline

    line = ("report 3 (file:///h/reports/drift/2017-12-30/report-stores.html): current "
            "2017-12-17..2017-12-30 vs reference 2017-10-22..2017-12-16: store 3: +33 % (+-5) "
            "against the other stores since 2017-12-29 [severe]; power: item 5 sells 51 a day: a "
            "shift under 25 % takes more than 14 nights to show; item 2 sells 47 a day: a shift "
            "under 24 % takes more than 14 nights to show; 1 open drift alert(s)")
    assert drift_headline(line) == (
        "report 3: current 2017-12-17..2017-12-30 vs reference 2017-10-22..2017-12-16: store 3: "
        "+33 % (+-5) against the other stores since 2017-12-29 [severe]; 1 open drift alert(s)")
    assert drift_headline("not checked: too little history") == "not checked: too little history"


def test_the_demo_ends_with_the_commands_the_console_the_uis_and_the_log_file(tmp_path,
                                                                             monkeypatch):
    from flows.commands.night import where_to_look
    from storage.catalog import get_catalog
    from storage.settings import get_settings

    monkeypatch.setenv("SHELFCAST_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        shown = "\n".join(where_to_look(get_catalog(), tmp_path / "logs" / "demo-1.log"))
    finally:
        get_settings.cache_clear()
    for needed in ("where to look", "shelfcast models list", "shelfcast alerts list --open",
                   "shelfcast releases list", "shelfcast serve", "http://127.0.0.1:8400",
                   "evidently ui --workspace", "prefect server start", str(tmp_path / "reports"),
                   str(tmp_path / "logs" / "demo-1.log")):
        assert needed in shown
