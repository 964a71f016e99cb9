"""A `shelfcast serve` child process for the benchmarks: a free loopback port for it, and the
wait until it answers."""

from __future__ import annotations

import http.client
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_service(port: int, service: subprocess.Popen, log: Path, *,
                     timeout_s: float = 60) -> None:
    """Return once the service on `port` answers its health check; raise if its process
    exits first (with the end of its `log`) or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise RuntimeError(f"`shelfcast serve` exited with {service.returncode}: "
                               f"{log.read_text()[-400:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/v1/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"`shelfcast serve` did not answer on port {port} within {timeout_s:.0f} s")
