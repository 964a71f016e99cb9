"""Stops the temporary Prefect server a night starts when the night dies, even by SIGKILL.

Prefect stops its ephemeral API server (about 260 MB) from an `atexit` hook, which a killed
process never runs. Linux's PR_SET_PDEATHSIG would not do either: it fires when the *thread*
that started the child ends, and Prefect may start the server from any thread. So each server
gets a small watcher process (`python -m flows.server_reaper SERVER_PID NIGHT_PID`), started
by the night: when the night is gone (the watcher's parent is no longer NIGHT_PID, also when
the night died before the watcher got going) it stops the server; when the server is gone it
exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_S = 0.5
GRACE_S = 5.0  # SIGTERM first, so the server closes its database; SIGKILL after this


_watchers: list[subprocess.Popen] = []  # held, so none is garbage while it still runs


def watch_server(server_pid: int) -> subprocess.Popen:
    """Start the watcher of `server_pid`, a child of this process."""
    watcher = subprocess.Popen([sys.executable, "-m", "flows.server_reaper", str(server_pid),
                                str(os.getpid())],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, close_fds=True)
    _watchers.append(watcher)
    return watcher


def guard_prefect_servers() -> None:
    """Make every temporary Prefect server this process starts get a watcher."""
    from prefect.server.api.server import SubprocessASGIServer

    start_server = SubprocessASGIServer._run_uvicorn_command
    if getattr(start_server, "watched", False):
        return

    def start_watched_server(self):
        server = start_server(self)
        watch_server(server.pid)
        return server

    start_watched_server.watched = True
    SubprocessASGIServer._run_uvicorn_command = start_watched_server


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not reaped yet, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def main(server_pid: int, night_pid: int) -> None:
    while _alive(server_pid):
        if os.getppid() != night_pid:  # the night is gone: its orphans went to another parent
            try:
                _stop(server_pid)
            except ProcessLookupError:
                pass
            return
        time.sleep(POLL_S)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the night's to handle
    main(int(sys.argv[1]), int(sys.argv[2]))
