"""Benchmarks that print figures and write them to a folder: article, baseline, drift, gate,
warm, fleet."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from device.manifest import MAX_ID
from device.messages import echo
from flows.output import print_json, print_table


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


MAX_RANGE_IDS = 10_000  # more stores, items or seeds than a benchmark could ever run


def parse_id_range(text: str, *, first: int = 1) -> list[int]:
    """'1-5' -> [1, 2, 3, 4, 5]; '1,3,7' -> [1, 3, 7]: ids from `first` (store and item ids
    from 1, seeds from 0) to the registry's largest id, at most MAX_RANGE_IDS of them."""
    ids: list[int] = []
    for part in text.split(","):
        low, sep, high = (bound.strip() for bound in part.partition("-"))
        bounds = [low, high] if sep else [low]
        if not all(b.isdigit() and len(b) <= len(str(MAX_ID))
                   and first <= int(b) <= MAX_ID for b in bounds):
            raise ValueError(f"bad id range {echo(text)}: expected ids from {first} to "
                             f"{MAX_ID} as e.g. '1-5' or '1,3,7'")
        span = range(int(low), int(bounds[-1]) + 1)
        if len(ids) + len(span) > MAX_RANGE_IDS:
            raise ValueError(f"bad id range {echo(text)}: more than {MAX_RANGE_IDS:,} ids")
        ids += span
    return ids


def baseline(args) -> None:
    from bench.article import baseline_vs_references
    from compression.recipe import recipe_for
    from storage.sales import read_sales_csv
    from storage.synthetic import generate_sales

    sales = read_sales_csv(args.data)[0] if args.data else generate_sales(with_expected=True)
    _progress(f"training LSTM-{args.units} ({args.profile} profile) on {len(sales):,} rows ...")
    rows = baseline_vs_references(sales, recipe_for(args.profile), units=args.units)
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["forecast", "mape_pct", "wape_pct", "mase", "windows"])


def loss(args) -> None:
    from bench.loss import loss_benchmark, loss_markdown
    from compression.recipe import recipe_for
    from storage.sales import read_sales_csv
    from storage.synthetic import generate_sales

    sales = read_sales_csv(args.data)[0] if args.data else generate_sales(
        stores=2, items=5, start="2015-01-01", end="2017-12-31", seed=0)
    result = loss_benchmark(sales, recipe_for(args.profile), units=args.units, seeds=args.seeds,
                            progress=_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text(loss_markdown(result))
    print(loss_markdown(result))
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}")


def article(args) -> None:
    from bench.article import article_benchmark, pareto_plot_png, results_markdown
    from compression.recipe import recipe_for
    from storage.sales import read_sales_csv
    from storage.synthetic import generate_sales

    stores, items = parse_id_range(args.stores), parse_id_range(args.items)
    sales = (read_sales_csv(args.data)[0] if args.data
             else generate_sales(stores=max(stores), items=max(items), with_expected=True))
    sales = sales[sales["store"].isin(stores) & sales["item"].isin(items)]
    if sales.empty:
        raise ValueError(f"{args.data or 'generated sales'}: no rows for stores {args.stores} "
                         f"and items {args.items}")
    result = article_benchmark(sales, recipe_for(args.profile), runs=args.runs, progress=_progress,
                               peers=args.peers, ablation=args.ablation)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result["variants"], indent=2))
    (out / "run.json").write_text(json.dumps({k: v for k, v in result.items() if k != "variants"},
                                             indent=2))
    (out / "results.md").write_text(results_markdown(result))
    (out / "pareto.png").write_bytes(pareto_plot_png(result["variants"]))
    print(results_markdown(result))
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'pareto.png'}")


def drift(args) -> None:
    """Stable nights and shifted runs per regime (bench/drift.py): false-alarm rate against
    its target, stated against measured power; figures to --out, the plot to --plot."""
    from bench.drift import REAL, REGIMES, bench, bench_markdown, power_plot_png
    from monitoring.drift import DriftConfig
    from storage.sales import read_sales_csv

    config = DriftConfig(**({"false_alert_rate": args.false_alert_rate}
                            if args.false_alert_rate else {}))
    regimes = ([r.strip() for r in args.regimes.split(",")] if args.regimes
               else [*REGIMES, REAL])
    real = None
    if REAL in regimes:
        if not args.data.exists():
            raise ValueError(f"{args.data}: not found; pass --data PATH/m5-sample.csv or leave "
                             f"{REAL!r} out of --regimes")
        real = read_sales_csv(args.data)[0]
    results = bench(config=config, regimes=regimes, seeds=parse_id_range(args.seeds, first=0),
                    stable=args.nights, runs=args.runs, real_sales=real, progress=_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = bench_markdown(results)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "results.md").write_text(markdown)
    plot = Path(args.plot) if args.plot else out / "drift-power.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot.write_bytes(power_plot_png(results))
    print(markdown)
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {plot}")


def gate(args) -> None:
    from bench.gate import gate_bench_markdown, replay_gate
    from compression.recipe import recipe_for

    result = replay_gate(nights=args.nights, stores=args.stores, items=args.items,
                         recipe=recipe_for(args.profile), seed=args.seed, progress=_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "results.md").write_text(gate_bench_markdown(result))
    print(gate_bench_markdown(result))
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}")


def warm(args) -> None:
    """One cold night, then `--nights` nights both cold and warm (chained) on generated sales
    of `--stores` x `--items` series: MAPE and training time per night, and the means."""
    from bench.warm import (
        FROM_SCRATCH,
        check_warm_bench,
        warm_bench_markdown,
        warm_vs_cold,
    )
    from compression.recipe import recipe_for
    from storage.sales import read_sales_csv
    from storage.synthetic import generate_sales

    variants = [v.strip() for v in args.variants.split(",")] if args.variants else FROM_SCRATCH
    check_warm_bench(nights=args.nights, variants=variants)
    sales = (read_sales_csv(args.data)[0] if args.data
             else generate_sales(stores=args.stores, items=args.items))
    result = warm_vs_cold(sales, recipe_for(args.profile), nights=args.nights, variants=variants,
                          progress=_progress)
    result["profile"] = args.profile
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = warm_bench_markdown(result, profile=args.profile)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text(markdown)
    print(markdown)
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}")


def scale(args) -> None:
    """A cold and a warm night at each `--series` size: see bench/scale.py."""
    from bench.scale import check_cluster, parse_sizes, results_markdown, scale_bench

    sizes = parse_sizes(args.series)
    cluster = check_cluster(cluster=args.cluster, dask_address=args.dask_address,
                            artifact_store=args.artifact_store)
    out = Path(args.out)
    results = scale_bench(sizes, profile=args.profile, out=out, keep=args.keep,
                          progress=_progress, cluster=cluster)
    print(results_markdown(results))
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'cost.png'}")


# -- bench fleet: the service's report intake and `fleet status`, on SQLite and PostgreSQL ----

POSTGRES_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FLEET_REPORT = {"reported_at": "2026-11-29T10:00:00+00:00", "release_id": 1, "sha256": "a" * 64,
                "sync_result": "up-to-date", "sync_reason": "", "smoke_test_ok": True,
                "latency_us_p50": 41.5, "free_bytes": 10**9, "forecasts_made": 12}


def fleet(args) -> None:
    """Reports per second `shelfcast serve` accepts from `--devices` enrolled devices posting
    from `--clients` threads, and the time of `fleet status` at `--status-devices` devices,
    with the registry on SQLite and on a scratch PostgreSQL database (created and dropped)."""
    import tempfile

    for name in ("devices", "clients", "status_devices"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got "
                             f"{getattr(args, name)}")
    if not args.seconds > 0:
        raise ValueError(f"--seconds must be positive, got {args.seconds}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="shelfcast-bench-fleet-") as scratch:
        backends = [("sqlite", lambda label: f"sqlite:///{Path(scratch) / label}.sqlite")]
        postgres = _postgres_server(args.database_url)
        if postgres is not None:
            backends.append(("postgresql", postgres))
        else:
            _progress(f"no PostgreSQL at {POSTGRES_SERVER_URL} (give --database-url): "
                      "SQLite only")
        for backend, make_url in backends:
            with _scratch_database(make_url, "ingest") as url:
                _progress(f"{backend}: {args.devices:,} devices posting from {args.clients} "
                          f"threads for {args.seconds:g} s ...")
                ingest = _ingest(url, Path(scratch) / backend, devices=args.devices,
                                 clients=args.clients, seconds=args.seconds,
                                 max_reports=args.max_reports)
            with _scratch_database(make_url, "status") as url:
                _progress(f"{backend}: `fleet status` at {args.status_devices:,} devices ...")
                status = _status_timing(url, Path(scratch) / backend,
                                        devices=args.status_devices)
            rows.append({"backend": backend, **ingest, **status})
    result = {"cpus": os.cpu_count(), "devices": args.devices, "clients": args.clients,
              "seconds": args.seconds, "status_devices": args.status_devices, "rows": rows}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(f"{result['cpus']} CPU(s), service and clients on the same machine")
    print_table(rows, ["backend", "accepted", "refused", "reports_per_s", "p50_ms", "p99_ms",
                       "status_devices", "status_s", "status_cli_s"])
    print(f"wrote {out / 'results.json'}")


def _postgres_server(database_url: str | None):
    """A function naming a scratch database on the PostgreSQL server of `database_url` (else
    the local default), or None when no server answers."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(database_url or POSTGRES_SERVER_URL)
    if not server.drivername.startswith("postgresql"):
        raise ValueError(f"--database-url must be a PostgreSQL URL, got {server.drivername!r}")
    engine = create_engine(server, pool_pre_ping=True)
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means no server here
        if database_url:
            raise ConnectionError(f"--database-url: cannot connect: {exc}") from None
        return None
    finally:
        engine.dispose()
    return lambda label: server.set(database=f"shelfcast_bench_{label}_{os.getpid()}")


@contextlib.contextmanager
def _scratch_database(make_url, label: str):
    """A fresh, migrated registry at `make_url(label)`; a PostgreSQL one is created first and
    dropped after (the server's own databases are never written)."""
    from sqlalchemy import create_engine, text

    from storage.db import make_engine, upgrade

    url = make_url(label)
    admin = None
    if not isinstance(url, str):
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{url.database}"'))
    name = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    try:
        engine = make_engine(name)
        upgrade(engine)
        engine.dispose()
        yield name
    finally:
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
            admin.dispose()


def _enroll(url: str, devices: int, *, with_reports: bool) -> list[str]:
    """Enrol `devices` sensor devices over stores 1..devices (one report each if asked);
    their tokens."""
    from storage.db import make_engine, session_factory
    from storage.devices import ReportRecord, enroll_device, record_report
    from storage.models import utcnow

    engine = make_engine(url)
    tokens = []
    with session_factory(engine)() as session, session.begin():
        for store in range(1, devices + 1):
            enrolment = enroll_device(session, store=store, device_class="sensor", by="bench")
            tokens.append(enrolment.token)
            if with_reports:
                record_report(session, enrolment.device.id, ReportRecord(
                    utcnow(), None, None, "failed" if store % 50 == 0 else "up-to-date", "",
                    store % 97 != 0, 40.0, 10**9, None))
    engine.dispose()
    return tokens


def _ingest(url: str, home: Path, *, devices: int, clients: int, seconds: float,
            max_reports: int) -> dict:
    """`shelfcast serve` in a subprocess over `url`; `clients` threads post reports with the
    devices' tokens, round robin, until `seconds` pass or `max_reports` were sent."""
    import http.client
    import itertools
    import socket
    import subprocess
    import threading
    import time

    import numpy as np

    from bench.service import wait_for_service

    tokens = _enroll(url, devices, with_reports=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SHELFCAST_HOME": str(home), "SHELFCAST_DATABASE_URL": url,
           "SHELFCAST_DEVICE_REPORT_LIMIT": "1000000000 per hour"}  # throughput, not the limit
    log = (home / "serve.log").open("wb")
    service = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_service(port, service, home / "serve.log")
        body = json.dumps(FLEET_REPORT).encode()
        turn = itertools.cycle(tokens)
        lock = threading.Lock()
        statuses: list[int] = []
        latencies_ms: list[float] = []
        deadline = time.monotonic() + seconds

        def client() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while time.monotonic() < deadline:
                with lock:
                    if len(statuses) >= max_reports:
                        break
                    token = next(turn)
                started = time.perf_counter()
                connection.request("POST", "/api/v1/reports", body=body, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                with lock:
                    statuses.append(response.status)
                    latencies_ms.append((time.perf_counter() - started) * 1000)
            connection.close()

        threads = [threading.Thread(target=client) for _ in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        service.terminate()
        service.wait(30)
        log.close()
    accepted = statuses.count(201)
    return {"accepted": accepted, "refused": len(statuses) - accepted,
            "elapsed_s": round(elapsed, 2), "reports_per_s": round(accepted / elapsed, 1),
            "p50_ms": round(float(np.percentile(latencies_ms, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies_ms, 99)), 1)}


def _status_timing(url: str, home: Path, *, devices: int) -> dict:
    """Enrol `devices` with one report each through storage, then time `fleet_status` in
    process (best of 3) and the whole `shelfcast fleet status --json` command."""
    import subprocess
    import time

    from storage.db import make_engine, session_factory
    from storage.devices import fleet_status

    _enroll(url, devices, with_reports=True)
    engine = make_engine(url)
    timings = []
    for _ in range(3):
        with session_factory(engine)() as session:
            started = time.perf_counter()
            shown = fleet_status(session)
            timings.append(time.perf_counter() - started)
    engine.dispose()
    if len(shown) != devices:
        raise RuntimeError(f"fleet status showed {len(shown)} devices, {devices} were enrolled")
    env = {**os.environ, "SHELFCAST_HOME": str(home), "SHELFCAST_DATABASE_URL": url}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flows.cli", "fleet", "status", "--json"], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return {"status_devices": devices, "status_s": round(min(timings), 3),
            "status_cli_s": round(time.perf_counter() - started, 2)}


def add_parsers(sub) -> None:
    """This module's commands on the `shelfcast` parser's subcommands `sub`."""
    from flows.commands import bench_console  # it imports this module

    p = sub.add_parser("bench", help="benchmarks")
    benches = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    b = benches.add_parser("article", help="reproduce the article's experiment on LiteRT")
    b.add_argument("--data", type=Path, help="Kaggle-schema CSV (default: generated, article shape)")
    b.add_argument("--stores", default="1-5")
    b.add_argument("--items", default="1-10")
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--profile", choices=["quick", "full"], default="full")
    b.add_argument("--out", default="bench-out/article")
    b.add_argument("--peers", action="store_true",
                   help="also the forecasts a user would pick instead, once, on the same test windows: "
                        "LightGBM (Shelfcast's inputs; with calendar and ids; mlforecast's recipe), "
                        "statsforecast's AutoETS and AutoTheta")
    b.add_argument("--ablation", action="store_true",
                   help="also what each static input of contract 3 is worth: LSTM-16 INT8 and "
                        "LSTM-64 trained with the inputs added one group at a time")
    b.set_defaults(handler=article)
    b = benches.add_parser("drift", help="drift check against its claims: false-alarm nights on "
                                         "stable sales, stated against measured power")
    b.add_argument("--regimes", help="comma-separated, e.g. 'smooth 5x10,m5-sample' (default: "
                                     "all: smooth 5x10, over-dispersed 5x10, intermittent 10x5, "
                                     "smooth 10x50, m5-sample)")
    b.add_argument("--seeds", default="0-4", help="seeds of the stable nights, e.g. 0-4 or 0,3")
    b.add_argument("--nights", type=int, default=30, help="stable nights per seed")
    b.add_argument("--runs", type=int, default=40,
                   help="shifted runs per regime, kind (store, item) and shift size")
    b.add_argument("--data", type=Path, default=Path("../shared/data/m5-sample.csv"),
                   help="m5-sample.csv, for the m5-sample regime")
    b.add_argument("--false-alert-rate", type=float,
                   help="the check's target false-alert nights a night (default: DriftConfig's)")
    b.add_argument("--out", default="bench-out/drift")
    b.add_argument("--plot", help="where the power plot goes (default: OUT/drift-power.png)")
    b.set_defaults(handler=drift)
    b = benches.add_parser("gate", help="replay generated nights: fleet releases and their "
                                        "accuracy under the old and the evidence rule")
    b.add_argument("--nights", type=int, default=30)
    b.add_argument("--stores", type=int, default=5)
    b.add_argument("--items", type=int, default=10)
    b.add_argument("--profile", choices=["quick", "full"], default="quick")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", default="bench-out/gate")
    b.set_defaults(handler=gate)
    b = benches.add_parser("warm", help="one cold night, then nights both warm (fine-tuned, "
                                        "chained) and cold: MAPE and training time per night")
    b.add_argument("--nights", type=int, default=7)
    b.add_argument("--data", type=Path, help="Kaggle-schema CSV (default: generated)")
    b.add_argument("--stores", type=int, default=5, help="generated stores (default: 5)")
    b.add_argument("--items", type=int, default=10, help="generated items (default: 10)")
    b.add_argument("--variants", help="comma-separated from-scratch variants (default: all: "
                                      "lstm64,lstm32,lstm16)")
    b.add_argument("--profile", choices=["quick", "full"], default="quick")
    b.add_argument("--out", default="bench-out/warm")
    b.set_defaults(handler=warm)
    b = benches.add_parser("scale", help="a cold and a warm night at each number of series, as "
                                         "separate processes: wall time per phase, peak memory",
                           description="For each size: generated sales in a fresh home, then "
                           "`ingest`, `nightly --cold`, the next day's `ingest`, `nightly` (warm), "
                           "each its own process; writes results.md, results.json and cost.png "
                           "(wall time, the night's phases, peak RSS and PSS of each process "
                           "tree). In the full profile 2,000 series took 15 minutes here, all four "
                           "default sizes 37 (2 cores).")
    b.add_argument("--series", default="50,200,500,2000",
                   help="comma-separated numbers of series (default: 50,200,500,2000)")
    b.add_argument("--profile", choices=["quick", "full"], default="full",
                   help="the training profile of the nights (default: full, what `nightly` runs)")
    b.add_argument("--keep", action="store_true",
                   help="keep each size's home (registry, artifacts, logs) under OUT/work")
    b.add_argument("--out", default="bench-out/scale",
                   help="where the results go (default: bench-out/scale)")
    b.add_argument("--cluster", choices=["local", "loopback"],
                   help="local (the default): each night on the local Dask cluster it starts; "
                        "loopback: a Prefect server, an S3 server (moto), a Dask scheduler and 2 "
                        "workers started on 127.0.0.1 for the run and stopped after it "
                        "(scripts/multi-machine-loopback.sh --cluster-only)")
    b.add_argument("--dask-address",
                   help="the nights' tasks on this Dask scheduler (tcp://host:port) of yours; "
                        "needs PREFECT_API_URL set to a Prefect server its workers reach")
    b.add_argument("--artifact-store",
                   help="the nights' artifacts and working files under this store (s3://bucket/"
                        "prefix, or a shared folder), one prefix per size; its credentials from "
                        "the environment (AWS_ACCESS_KEY_ID, ...)")
    b.set_defaults(handler=scale)
    b = benches.add_parser("loss", help="the LSTM trained with each loss (MAE, Poisson) beside "
                           "the references, in MASE, WAPE and MAPE")
    b.add_argument("--data", type=Path, help="Kaggle-schema CSV (default: generated, 10 series)")
    b.add_argument("--profile", default="full", choices=["quick", "full"])
    b.add_argument("--units", type=int, default=32)
    b.add_argument("--seeds", type=int, default=2)
    b.add_argument("--out", default="bench-out/loss")
    b.set_defaults(handler=loss)
    b = benches.add_parser("baseline", help="the baseline LSTM against the reference forecasts")
    b.add_argument("--data", type=Path, help="Kaggle-schema CSV (default: generated, 5x10)")
    b.add_argument("--profile", choices=["quick", "full"], default="full")
    b.add_argument("--units", type=int, default=64)
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=baseline)
    b = benches.add_parser("fleet", help="reports per second `shelfcast serve` accepts and the "
                                         "time of `fleet status`, on SQLite and PostgreSQL")
    b.add_argument("--devices", type=int, default=1000, help="devices enrolled and posting")
    b.add_argument("--clients", type=int, default=4, help="client threads posting reports")
    b.add_argument("--seconds", type=float, default=15.0, help="how long they post")
    b.add_argument("--max-reports", type=int, default=100_000, help="stop after this many")
    b.add_argument("--status-devices", type=int, default=10_000,
                   help="devices (one report each) for the `fleet status` timing")
    b.add_argument("--database-url", help="a PostgreSQL server to make a scratch database on "
                                          "(default: 127.0.0.1:5432 when it answers)")
    b.add_argument("--out", default="bench-out/fleet")
    b.set_defaults(handler=fleet)

    b = benches.add_parser("console", help="render time of every ops console page with a year "
                                           "of generated nights in the registry")
    b.add_argument("--nights", type=int, default=365)
    b.add_argument("--devices", type=int, default=300, help="enrolled devices, one report each")
    b.add_argument("--requests", type=int, default=20, help="timed requests per page")
    b.add_argument("--reuse", action="store_true",
                   help="time the pages of the registry an earlier run filled in --out")
    b.add_argument("--out", default="bench-out/console")
    b.set_defaults(handler=bench_console.console)

    b = benches.add_parser("login", help="a login flood against a real `shelfcast serve`: peak "
                                         "memory and the console's latency")
    b.add_argument("--nights", type=int, default=30, help="generated nights in its registry")
    b.add_argument("--flood-seconds", type=float, default=20.0)
    b.add_argument("--unbounded", action="store_true",
                   help="also run without the bound on concurrent password checks")
    b.add_argument("--out", default="bench-out/login")
    b.set_defaults(handler=bench_console.login)
