"""A night killed with SIGKILL does not leave its temporary Prefect server running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flows.server_reaper import _alive

ROOT = Path(__file__).resolve().parents[1]
GONE_WITHIN_S = 15  # the watcher looks twice a second, then gives SIGTERM 5 s before SIGKILL

# what a night does first: configure Prefect, then start its temporary API server. The server
# is a stand-in (`sleep`) started through the very method Prefect starts uvicorn with, so the
# test checks the hook and the watcher without the real server's 15-50 s start.
NIGHT = """
import subprocess
from prefect.server.api.server import SubprocessASGIServer
SubprocessASGIServer._run_uvicorn_command = lambda self: subprocess.Popen(["sleep", "600"])
from flows.prefect_env import configure_prefect
configure_prefect()
server = SubprocessASGIServer()._run_uvicorn_command()
print(server.pid, flush=True)
import time
time.sleep(600)
"""


def test_the_temporary_prefect_server_dies_with_a_night_killed_by_sigkill(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PREFECT_") and k != "SHELFCAST_DATABASE_URL"}
    env["SHELFCAST_HOME"] = str(tmp_path / "home")
    night = subprocess.Popen([sys.executable, "-c", NIGHT], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    server_pid = None
    try:
        # readline blocks until the server is up; a night that fails to start it prints nothing
        line = night.stdout.readline()
        assert line.strip().isdigit(), f"the night did not start its server (exit {night.poll()})"
        server_pid = int(line)
        assert _alive(server_pid)
        night.send_signal(signal.SIGKILL)
        night.wait()
        deadline = time.monotonic() + GONE_WITHIN_S
        while _alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(server_pid), "the Prefect server outlived its night"
    finally:
        if night.poll() is None:
            night.kill()
            night.wait()
        if server_pid is not None and _alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)
