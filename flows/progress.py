"""Progress of a night as it runs, and what the terminal shows of it.

Every step (and every variant's task) says when it starts and ends, with the elapsed time, so a
slow night can be told from a hung one. By default the terminal is quiet (`quiet_terminal`): it
shows Shelfcast's own lines only, a step that took a few seconds, a failure always, and a
detail line (a variant's task, a training epoch) when the terminal has been silent for half a
minute; everything else written to stderr, the logs of Prefect, Dask, TensorFlow, LiteRT,
Evidently and uvicorn included (C++ ones too, and those of the processes started meanwhile:
Dask workers, Prefect's API server), goes to a log file under the data directory with every
progress line. `shelfcast --verbose` leaves stderr alone: everything as it comes."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

STEP, DETAIL, FAILURE = "step", "detail", "failure"
PROGRESS_TOPIC = "shelfcast-progress"  # Dask event topic: a worker's lines, shown by the flow
LOGS_FOLDER = "logs"  # under the data directory
SLOW_STEP_S = 3.0  # quiet: a step's "done" line when it took at least this long
SILENT_AT_MOST_S = 30.0  # quiet: a detail line when the terminal has been silent this long

_started: dict[str, float] = {}
_lock = threading.Lock()
_terminal: TextIO | None = None  # set while stderr goes to the log file
_last_shown = 0.0  # time.monotonic() of the last line on the terminal


def say(message: str, *, kind: str = DETAIL) -> None:
    """One progress line, for the terminal (as `kind` allows) and for Prefect's logs. On a Dask
    worker the line goes to the worker's log and to the flow's process, which shows it: a
    worker's stderr is not the terminal of the person running the night."""
    line = f"[{time.strftime('%H:%M:%S')}] {message}"
    # not imported here before `flows.prefect_env` set Prefect's home and log level
    if "prefect" in sys.modules:
        try:
            from prefect import get_run_logger

            get_run_logger().info(message)
        except Exception:  # noqa: BLE001 - outside a run there is no run logger; stderr will do
            pass
    worker = _dask_worker()
    if worker is not None:
        _write(sys.stderr, line)  # the worker's own log keeps what it ran
        worker.log_event(PROGRESS_TOPIC, {"kind": kind, "line": line})
    else:
        show(line, kind=kind)


def show(line: str, *, kind: str = DETAIL, log: bool = True) -> None:
    """Write a progress line: to stderr (the log file while the terminal is quiet) unless not
    `log`, and to the quiet terminal if it is a step or a failure, or a detail after a long
    silence."""
    global _last_shown
    # not print(): a flow's log_prints would turn it into a log record below the level shown
    with _lock:
        if log:
            _write(sys.stderr, line)
        now = time.monotonic()
        if _terminal is None:
            _last_shown = now
        elif kind != DETAIL or now - _last_shown >= SILENT_AT_MOST_S:
            _write(_terminal, line)
            _last_shown = now


def show_forwarded(event: tuple[float, dict]) -> None:
    """Show a line a Dask worker said (`subscribe_topic(PROGRESS_TOPIC, show_forwarded)`); the
    worker wrote it to its own log already (a local worker's log is this process's stderr),
    so it is not logged again."""
    _, message = event
    show(message["line"], kind=message["kind"], log=False)


def _write(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


def _dask_worker():
    """The Dask worker whose task calls this, or None (the flow's own process)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:
        return None


def log_file_for(home: Path, command: str) -> Path:
    """Where a command's logs go: `HOME/logs/COMMAND-YYYYmmdd-HHMMSS.log`."""
    return (Path(home) / LOGS_FOLDER / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}.log").resolve()


@contextmanager
def quiet_terminal(log_file: Path) -> Iterator[Path]:
    """Until the block ends, this process's stderr (file descriptor 2, so C++ libraries and the
    processes started meanwhile write there too) appends to `log_file`, and the terminal shows
    only what `show` lets through. Shelfcast's one-line error for a failure is printed after
    the block, on the terminal again."""
    global _terminal, _last_shown
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    terminal_fd = os.dup(2)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    with _lock:
        _terminal = os.fdopen(terminal_fd, "w", encoding=sys.stderr.encoding or "utf-8",
                              errors="backslashreplace")
        _last_shown = time.monotonic()
    try:
        yield log_file
    finally:
        sys.stderr.flush()
        with _lock:
            _terminal.flush()
            os.dup2(terminal_fd, 2)
            _terminal.close()
            _terminal = None


def _name(task, task_run) -> str:
    """The run's own name where the task gives one ("train lstm32"), else the task's."""
    return task_run.name if task.task_run_name else task.name


def _on_running(task, task_run, state) -> None:
    _started[str(task_run.id)] = time.perf_counter()
    say(f"{_name(task, task_run)} ...")


def _elapsed_s(task_run) -> float | None:
    started = _started.pop(str(task_run.id), None)
    return None if started is None else time.perf_counter() - started


def _in(seconds: float | None) -> str:
    return "" if seconds is None else f" in {seconds:.1f} s"


def _on_completion(task, task_run, state) -> None:
    seconds = _elapsed_s(task_run)
    # a step of the night (not one variant's task) that a person waited for
    step = not task.task_run_name and seconds is not None and seconds >= SLOW_STEP_S
    say(f"{_name(task, task_run)}: done{_in(seconds)}", kind=STEP if step else DETAIL)


def _on_failure(task, task_run, state) -> None:
    say(f"{_name(task, task_run)}: failed{_in(_elapsed_s(task_run))}: "
        f"{str(state.message)[:200]}", kind=FAILURE)


STEP_HOOKS = dict(on_running=[_on_running], on_completion=[_on_completion],
                  on_failure=[_on_failure])
