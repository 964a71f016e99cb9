"""`shelfcast bench login`: what a login flood costs the service (issue 28).

A real `shelfcast serve` on 127.0.0.1 over a filled registry, with 127.0.0.1 as its trusted
proxy so that each client's X-Forwarded-For is its address. Two measures:

- the server's peak resident memory (psutil, sampled every 5 ms) while 16 clients log in at
  the same moment, each from its own address, against its memory before;
- the p50 and p95 of GET /tonight for a logged-in user, alone and then while 12 clients loop
  on logins, each attempt under a new name from a new address: neither the per-user nor the
  per-address limit stops them, so every attempt costs a password check, which is the worst
  case the bound on concurrent checks has to hold.

`settings` are extra `SHELFCAST_*` variables for the server: the same run with
`{"LOGIN_CONCURRENT_CHECKS": "64"}` shows what an unbounded service would do.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.scale import PeakMemory
from bench.service import free_port, wait_for_service

PARALLEL_LOGINS = 16
FLOOD_CLIENTS = 12
MEMORY_TARGET_MIB = 300.0
PAGE_TARGET_MS = 300.0


def measure(home: Path, *, user: str, password: str, flood_s: float = 20.0,
            settings: dict[str, str] | None = None) -> dict:
    """Start the service over `home`'s registry, run both measures, stop it; the figures."""
    port = free_port()
    env = {**os.environ, "SHELFCAST_HOME": str(home), "SHELFCAST_TRUSTED_PROXIES": '["127.0.0.1"]',
           **{f"SHELFCAST_{name}": value for name, value in (settings or {}).items()}}
    env.pop("SHELFCAST_DATABASE_URL", None)
    log_path = home / "serve-login-bench.log"
    with log_path.open("wb") as log:
        service = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--port",
                                    str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_service(port, service, log_path)
            memory = _parallel_logins(port, service.pid, user=user, password=password)
            pages = _page_under_flood(port, user=user, password=password, flood_s=flood_s)
        finally:
            service.terminate()
            service.wait(30)
    return {"settings": settings or {}, **memory, **pages}


def _parallel_logins(port: int, pid: int, *, user: str, password: str) -> dict:
    """PARALLEL_LOGINS clients log in at once, each from its own address."""
    _post_login(port, user, password, "198.51.100.250")  # warm: the first hash, the imports
    time.sleep(0.5)
    sampler = PeakMemory(pid, every_s=0.005)
    time.sleep(0.2)
    before_mib = _rss_mib(pid)
    start = threading.Barrier(PARALLEL_LOGINS)
    statuses: list[int] = []

    def client(number: int) -> None:
        start.wait()
        statuses.append(_post_login(port, user, password, f"198.51.100.{number + 1}")[0])

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(PARALLEL_LOGINS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed_s = time.perf_counter() - began
    time.sleep(0.2)
    peak_mib, _ = sampler.stop()
    return {"parallel_logins": PARALLEL_LOGINS, "rss_before_mib": round(before_mib, 1),
            "rss_peak_mib": round(peak_mib, 1),
            "rss_added_mib": round(peak_mib - before_mib, 1),
            "parallel_statuses": {str(code): statuses.count(code) for code in sorted(
                set(statuses))}, "parallel_s": round(elapsed_s, 2)}


def _page_under_flood(port: int, *, user: str, password: str, flood_s: float) -> dict:
    """/tonight's latency alone, then while FLOOD_CLIENTS loop on logins for `flood_s`."""
    _, cookie = _post_login(port, user, password, "198.51.100.251")
    quiet = [_get_ms(port, "/tonight", cookie) for _ in range(30)]
    stop = threading.Event()
    attempts = itertools.count()
    statuses: list[int] = []

    def flood() -> None:
        while not stop.is_set():
            n = next(attempts)
            statuses.append(_post_login(port, f"nobody{n}", "not the password",
                                        f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}")[0])

    threads = [threading.Thread(target=flood) for _ in range(FLOOD_CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # the flood under way
    loaded, deadline = [], time.monotonic() + flood_s
    while time.monotonic() < deadline:
        loaded.append(_get_ms(port, "/tonight", cookie))
    stop.set()
    for thread in threads:
        thread.join()
    return {"tonight_quiet_p50_ms": _percentile(quiet, 50),
            "tonight_quiet_p95_ms": _percentile(quiet, 95),
            "flood_clients": FLOOD_CLIENTS, "flood_s": flood_s,
            "flood_attempts": len(statuses),
            "flood_statuses": {str(code): statuses.count(code) for code in sorted(set(statuses))},
            "tonight_requests": len(loaded), "tonight_p50_ms": _percentile(loaded, 50),
            "tonight_p95_ms": _percentile(loaded, 95)}


def _post_login(port: int, name: str, password: str, address: str) -> tuple[int, str]:
    """(status, the session cookie `name=value` or '') of one JSON login from `address`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/api/login", body=json.dumps(
            {"name": name, "password": password}), headers={
            "Content-Type": "application/json", "X-Forwarded-For": address})
        response = connection.getresponse()
        response.read()
        cookie = (response.getheader("set-cookie") or "").split(";", 1)[0]
        return response.status, cookie
    finally:
        connection.close()


def _get_ms(port: int, path: str, cookie: str) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        began = time.perf_counter()
        connection.request("GET", path, headers={"Cookie": cookie})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status} during the benchmark")
        return (time.perf_counter() - began) * 1000
    finally:
        connection.close()


def _percentile(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    if pct == 50:
        return round(statistics.median(ordered), 1)
    return round(ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))], 1)


def _rss_mib(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20
