"""Progress of a night as it runs: every step (and every variant's training) as it starts and
ends, with the elapsed time, as plain lines on stderr and in the run's Prefect logs, so a slow
night can be told from a hung one."""

from __future__ import annotations

import sys
import time

_started: dict[str, float] = {}


def say(message: str) -> None:
    """One progress line: on stderr for the terminal, and in Prefect's logs for the UI."""
    # not print(): the flow's log_prints would turn it into a log record below the level shown
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()
    try:
        from prefect import get_run_logger

        get_run_logger().info(message)
    except Exception:  # noqa: BLE001 - outside a run there is no run logger; stderr is enough
        pass


def _name(task, task_run) -> str:
    """The run's own name where the task gives one ("train lstm32"), else the task's."""
    return task_run.name if task.task_run_name else task.name


def _on_running(task, task_run, state) -> None:
    _started[str(task_run.id)] = time.perf_counter()
    say(f"{_name(task, task_run)} ...")


def _elapsed(task_run) -> str:
    started = _started.pop(str(task_run.id), None)
    return "" if started is None else f" in {time.perf_counter() - started:.1f} s"


def _on_completion(task, task_run, state) -> None:
    say(f"{_name(task, task_run)}: done{_elapsed(task_run)}")


def _on_failure(task, task_run, state) -> None:
    say(f"{_name(task, task_run)}: failed{_elapsed(task_run)}: {str(state.message)[:200]}")


STEP_HOOKS = dict(on_running=[_on_running], on_completion=[_on_completion],
                  on_failure=[_on_failure])
