"""`shelfcast bench console`: a registry holding a year of generated nights (no training), then
the render time of every console page and its JSON twin, median and p95 over several requests
through the whole service in-process (FastAPI's TestClient). The target is under 300 ms."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import time
from pathlib import Path

from flows.commands.bench import _progress
from flows.output import print_table

TARGET_MS = 300.0
BENCH_USER, BENCH_PASSWORD = "bench", "quiet shelves at night"


def console(args) -> None:
    for name in ("nights", "requests", "devices"):
        if getattr(args, name) < (0 if name == "devices" else 1):
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}")
    out = Path(args.out)
    home = out / "registry"
    filled = home.exists() and any(home.iterdir())
    if filled and not args.reuse:
        raise FileExistsError(f"{home} is not empty: give a new --out (the benchmark fills a "
                              "registry of its own there), or --reuse to time its pages again")
    if args.reuse and not filled:
        raise FileNotFoundError(f"--reuse: no registry filled by an earlier run in {home}")
    from storage.catalog import Catalog
    from storage.settings import Settings

    catalog = Catalog(Settings(home=home))
    started = time.perf_counter()
    if not filled:
        _fill(catalog, nights=args.nights, devices=args.devices)
    fill_s = time.perf_counter() - started
    rows = _time_pages(catalog, requests=args.requests)
    catalog.dispose()
    result = {"nights": args.nights, "devices": args.devices, "requests": args.requests,
              "cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1),
              "fill_s": None if filled else round(fill_s, 1), "target_ms": TARGET_MS,
              "registry": str(home), "pages": rows}
    (out / "console.json").write_text(json.dumps(result, indent=2))
    print(f"{args.nights} nights, {args.devices} devices, "
          + ("reused; " if filled else f"filled in {fill_s:.0f} s; ")
          + f"load average {os.getloadavg()[0]:.1f}; "
          f"{args.requests} requests per page after one warm-up, {os.cpu_count()} CPU(s)")
    print_table(rows, ["page", "html_median_ms", "html_p95_ms", "json_median_ms",
                       "json_p95_ms", "html_bytes", "under_target"])
    print(f"wrote {out / 'console.json'}; look at it: SHELFCAST_HOME={home} shelfcast serve "
          f"(log in as {BENCH_USER} / {BENCH_PASSWORD})")


def _fill(catalog, *, nights: int, devices: int) -> None:
    from storage.channel import init_signing_key
    from storage.devices import ReportRecord, enroll_device, expected_release, record_report
    from storage.models import utcnow
    from storage.registry import set_policy
    from storage.releases import ReleaseTarget, open_releases
    from storage.sample_nights import sample_night
    from storage.users import add_user

    init_signing_key(catalog.signing_key)
    target = ReleaseTarget.from_settings(catalog.settings)
    start = dt.date(2017, 1, 1)
    with catalog.unit_of_work() as session:
        set_policy(session, "tablet", by="bench", require_approval=True)
        add_user(session, BENCH_USER, role="admin", password=BENCH_PASSWORD, by="bench")
    for index in range(nights):
        if index % 30 == 0:
            _progress(f"night {index + 1} of {nights} ...")
        with catalog.unit_of_work() as session:
            sample_night(session, target, start=start, index=index, artifacts=catalog.artifacts,
                         reports=catalog.reports)
    with catalog.unit_of_work() as session:
        for number in range(devices):
            device = enroll_device(session, store=1 + number % 5,
                                   device_class=("sensor", "handheld", "tablet")[number % 3],
                                   by="bench").device
            # nine in ten run what they should; the tenth is a release behind
            expected = expected_release(open_releases(session, device.device_class), device.store)
            release_id = expected and expected.id - (number % 10 == 0)
            record_report(session, device.id, ReportRecord(
                utcnow(), release_id, None, "up-to-date", "", True, 40.0, 10**9, None))


def _pages(catalog) -> list[str]:
    from storage.overview import latest_run

    with catalog.session() as session:
        newest = max(v.id for v in latest_run(session).versions)
    return ["tonight", "models", f"models/{newest}", "alerts", "releases", "fleet", "drift",
            "drift?store=1", "audit"]


def _time_pages(catalog, *, requests: int) -> list[dict]:
    from fastapi.testclient import TestClient

    from service.app import create_app

    rows = []
    with TestClient(create_app(catalog)) as client:
        response = client.post("/api/login", json={"name": BENCH_USER, "password": BENCH_PASSWORD})
        response.raise_for_status()
        for page in _pages(catalog):
            html, size = _timed(client, f"/{page}", requests)
            api, _ = _timed(client, f"/api/{page}", requests)
            rows.append({"page": f"/{page}", "html_median_ms": html[0], "html_p95_ms": html[1],
                         "json_median_ms": api[0], "json_p95_ms": api[1], "html_bytes": size,
                         "under_target": "yes" if max(html[1], api[1]) < TARGET_MS else "NO"})
    return rows


def _timed(client, path: str, requests: int) -> tuple[tuple[float, float], int]:
    """(median, p95) in ms of `requests` GETs of `path` after a warm-up, and the body size."""
    response = client.get(path)
    response.raise_for_status()
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return (round(statistics.median(times), 1), round(p95, 1)), len(response.content)


def login(args) -> None:
    """`shelfcast bench login`: a login flood against a real `shelfcast serve` (bench.login)."""
    from bench.login import FLOOD_CLIENTS, MEMORY_TARGET_MIB, PAGE_TARGET_MS, measure
    from storage.catalog import Catalog
    from storage.settings import Settings

    if args.nights < 1 or args.flood_seconds <= 0:
        raise ValueError(f"--nights must be at least 1 and --flood-seconds positive, got "
                         f"{args.nights} and {args.flood_seconds}")
    out = Path(args.out)
    home = out / "registry"
    if not (home.exists() and any(home.iterdir())):
        catalog = Catalog(Settings(home=home))
        _fill(catalog, nights=args.nights, devices=0)
        catalog.dispose()
    runs = [measure(home, user=BENCH_USER, password=BENCH_PASSWORD,
                    flood_s=args.flood_seconds)]
    if args.unbounded:  # the same service without its bound: what the issue measured
        runs.append(measure(home, user=BENCH_USER, password=BENCH_PASSWORD,
                            flood_s=args.flood_seconds,
                            settings={"LOGIN_CONCURRENT_CHECKS": "64",
                                      "LOGIN_CHECK_WAIT_S": "60"}))
    result = {"cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1),
              "memory_target_mib": MEMORY_TARGET_MIB, "page_target_ms": PAGE_TARGET_MS,
              "runs": runs}
    (out / "login.json").write_text(json.dumps(result, indent=2))
    rows = [{"concurrent checks": run["settings"].get("LOGIN_CONCURRENT_CHECKS", "default"),
             "16 logins: RSS added MiB": run["rss_added_mib"],
             "their statuses": run["parallel_statuses"],
             "/tonight p50/p95 ms quiet": f"{run['tonight_quiet_p50_ms']} / "
                                          f"{run['tonight_quiet_p95_ms']}",
             f"/tonight p50/p95 ms, {FLOOD_CLIENTS} flooding": f"{run['tonight_p50_ms']} / "
                                                              f"{run['tonight_p95_ms']}",
             "flood attempts": run["flood_attempts"],
             "met": "yes" if run["rss_added_mib"] < MEMORY_TARGET_MIB
             and run["tonight_p95_ms"] < PAGE_TARGET_MS else "NO"} for run in runs]
    print(f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}; targets: under "
          f"{MEMORY_TARGET_MIB:.0f} MiB added, /tonight p95 under {PAGE_TARGET_MS:.0f} ms")
    print_table(rows, list(rows[0]))
    print(f"wrote {out / 'login.json'}")
