"""Running nights: `shelfcast nightly` and `shelfcast demo`. Quiet by default: the logs of
Prefect, Dask, TensorFlow, LiteRT, Evidently and uvicorn go to a log file under the data
directory (`flows.progress.quiet_terminal`); `shelfcast --verbose` shows them as they come."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flows.output import iso_date
from flows.progress import STEP, log_file_for, quiet_terminal, say
from flows.runner import check_prefect_api
from policy.records import NightResult
from storage.catalog import get_catalog

THIRD_PARTY = "Prefect, Dask, TensorFlow and LiteRT"


@contextmanager
def night_terminal(command: str, *, verbose: bool = False) -> Iterator[Path | None]:
    """Quiet unless `verbose`: yields the log file under the data directory that the
    third-party logs go to meanwhile (None when `verbose`: they stay on stderr)."""
    if verbose:
        yield None
        return
    with quiet_terminal(log_file_for(get_catalog().home, command)) as log_file:
        yield log_file


def _run_night(as_of: str | None, profile: str, drop: str | None = None,
               cold: bool = False) -> NightResult:
    from flows.nightly import nightly_retrain

    return nightly_retrain(as_of=as_of, profile=profile, drop=drop, cold=cold)


def nightly(args) -> None:
    from policy.summary import night_markdown
    from storage.sales import sales_date_range
    from storage.synthetic import generate_sales, write_sales_csv

    catalog = get_catalog()
    check_prefect_api(catalog.settings)  # before any work: refused, nothing changes
    with night_terminal("nightly", verbose=args.verbose) as log_file:
        if log_file:
            say(f"logs of {THIRD_PARTY}: {log_file} (shelfcast --verbose shows them here)",
                kind=STEP)
        with catalog.session() as session:
            first, _ = sales_date_range(session)
        as_of = args.as_of.isoformat() if args.as_of else None
        drop = None
        if first is None:
            # the embedded default: with no sales stored, generate the article's shape
            drop = catalog.drops / "generated-sales.csv"
            drop.parent.mkdir(parents=True, exist_ok=True)
            write_sales_csv(generate_sales(**({"end": as_of} if as_of else {})), drop)
            print(f"no sales stored: generated 5 stores x 10 items into {drop}", flush=True)
        result = _run_night(as_of, args.profile, str(drop) if drop else None, cold=args.cold)
    print(night_markdown(result))


def night_digest(result: NightResult) -> list[str]:
    """A night in a few lines, for the demo's terminal: how it started, drift, the best
    approved per device class, the rollout and what holds it. The whole summary is what
    `shelfcast nightly` prints and the Prefect UI shows (artifact `shelfcast-night`)."""
    night = result.night
    start = f"{night.start} start" + (f" ({night.start_reason.rstrip('.')})"
                                      if night.start == "cold" and night.start_reason else "")
    built = night.timings_s.get("build_s")
    best = "; ".join(f"{cls} version {v.id} ({v.variant}, MAPE {v.mape_pct:.2f} %, "
                     f"{v.artifact_bytes:,} B)" for cls, v in sorted(night.best.items()))
    return [f"night {night.as_of:%Y-%m-%d}: {night.status}, {start}; {len(night.versions)} "
            f"variants on {night.data.series_count} series"
            + (f", built in {built:.0f} s" if built is not None else ""),
            f"  drift: {drift_headline(result.drift)}",
            f"  best approved: {best or 'nothing passed the gate for any device class'}",
            *(f"  rollout: {line}" for line in result.rollout),
            *(f"  on hold: {hold}" for hold in result.holds)]


def drift_headline(drift: str) -> str:
    """The night's drift line without the report's link and the power caveats (both are in
    the report): what drifted and the open alerts, on one line."""
    report, link, rest = drift.partition(" (")
    if link and report.startswith("report ") and "): " in rest:
        drift = f"{report}: {rest.split('): ', 1)[1]}"
    head, power, caveats = drift.partition("; power: ")
    if not power:
        return drift
    alerts = caveats.rsplit("; ", 1)[-1]
    return head + (f"; {alerts}" if alerts.endswith("open drift alert(s)") else "")


def demo(args) -> None:
    """Generated sales up to a start day, then one night per new day of sales."""
    import pandas as pd

    from storage.ingest import describe_ingest, ingest_file
    from storage.synthetic import Shift, generate_sales, write_sales_csv

    catalog = get_catalog()
    check_prefect_api(catalog.settings)
    catalog.drops.mkdir(parents=True, exist_ok=True)
    last = dt.date.fromisoformat(args.end)
    first_night = last - dt.timedelta(days=args.nights - 1)
    shift_from = first_night + dt.timedelta(days=min(1, args.nights - 1))
    with night_terminal("demo", verbose=args.verbose) as log_file:
        print(f"demo: {args.stores} stores x {args.items} items, nights {first_night}..{last}, "
              f"store {args.stores} sells 30 % more from {shift_from}", flush=True)
        if log_file:
            print(f"logs of {THIRD_PARTY}: {log_file} (shelfcast --verbose shows them here)",
                  flush=True)
        sales = generate_sales(stores=args.stores, items=args.items, start=args.start,
                               end=args.end, shifts=(Shift(store=args.stores,
                                                           start=pd.Timestamp(shift_from),
                                                           factor=1.3),))
        history = catalog.drops / "history.csv"
        write_sales_csv(sales[sales["date"] < pd.Timestamp(first_night)], history)
        print(describe_ingest(ingest_file(catalog, history)), flush=True)
        for offset in range(args.nights):
            day = first_night + dt.timedelta(days=offset)
            drop = catalog.drops / f"sales-{day}.csv"
            write_sales_csv(sales[sales["date"] == pd.Timestamp(day)], drop)
            say(f"night {day} of the demo ...", kind=STEP)
            print("\n".join(night_digest(_run_night(str(day), args.profile, str(drop)))),
                  flush=True)
    print("\n" + "\n".join(where_to_look(catalog, log_file)))


def where_to_look(catalog, log_file: Path | None) -> list[str]:
    """The demo's last lines: the commands, reports, UIs and files to look at next."""
    home = catalog.home.resolve()
    return [
        f"where to look (in this directory, or with SHELFCAST_HOME={home}):",
        "  shelfcast models list                 # every variant of every night, gate verdicts",
        "  shelfcast models show ID              # figures, lineage, every gate reason",
        "  shelfcast releases list               # what went to which device class and stores",
        "  shelfcast alerts list --open          # drift and quality alerts; ack with `alerts ack`",
        "  shelfcast users add NAME --role admin, then shelfcast serve   # the ops console at "
        "http://127.0.0.1:8400",
        f"  drift reports: {catalog.drift_reports}  (or `evidently ui --workspace "
        f"{catalog.evidently_workspace}`, at http://127.0.0.1:8000)",
        f"  Prefect UI (each night's runs, summary and table): PREFECT_HOME="
        f"{catalog.settings.prefect_home.resolve()} prefect server start, at http://127.0.0.1:4200",
        f"  logs of {THIRD_PARTY}: {log_file or 'shown above (--verbose)'}",
        f"  release channel: {catalog.releases}  (public key {catalog.signing_key.parent})",
        f"  artifacts: {catalog.artifacts};  registry: {catalog.database_url_shown}",
    ]


def add_parsers(sub) -> None:
    """This module's commands on the `shelfcast` parser's subcommands `sub`."""
    p = sub.add_parser("nightly", help="run one night: ingest, drift, train, compress, gate, ship")
    p.add_argument("--as-of", type=iso_date,
                   help="the night's date, YYYY-MM-DD (default: the last day with sales)")
    p.add_argument("--profile", choices=["quick", "full"], default="full")
    p.add_argument("--cold", action="store_true",
                   help="train every model from nothing instead of fine-tuning the last "
                        "approved weights (a warm start)")
    p.set_defaults(handler=nightly)

    p = sub.add_parser("demo", help="several generated nights end to end, drift on the last ones")
    p.add_argument("--nights", type=int, default=4)
    p.add_argument("--stores", type=int, default=3)
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--start", default="2015-01-01")
    p.add_argument("--end", default="2017-12-31")
    p.add_argument("--profile", choices=["quick", "full"], default="quick")
    p.set_defaults(handler=demo)
