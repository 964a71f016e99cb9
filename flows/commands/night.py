"""Running nights: `shelfcast nightly` and `shelfcast demo`."""

from __future__ import annotations

import datetime as dt

from storage.catalog import get_catalog


def _run_night(as_of: str | None, profile: str, drop: str | None = None,
               cold: bool = False) -> None:
    from flows.nightly import nightly_retrain
    from policy.summary import night_markdown

    print(night_markdown(nightly_retrain(as_of=as_of, profile=profile, drop=drop, cold=cold)))


def nightly(args) -> None:
    from storage.sales import sales_date_range
    from storage.synthetic import generate_sales, write_sales_csv

    catalog = get_catalog()
    with catalog.session() as session:
        first, _ = sales_date_range(session)
    drop = None
    if first is None:
        # the embedded default: with no sales stored, generate the article's shape
        drop = catalog.drops / "generated-sales.csv"
        drop.parent.mkdir(parents=True, exist_ok=True)
        write_sales_csv(generate_sales(**({"end": args.as_of} if args.as_of else {})), drop)
        print(f"no sales stored: generated 5 stores x 10 items into {drop}")
    _run_night(args.as_of, args.profile, str(drop) if drop else None, cold=args.cold)


def demo(args) -> None:
    """Generated sales up to a start day, then one night per new day of sales."""
    import pandas as pd

    from storage.ingest import describe_ingest, ingest_file
    from storage.synthetic import Shift, generate_sales, write_sales_csv

    catalog = get_catalog()
    catalog.drops.mkdir(parents=True, exist_ok=True)
    last = dt.date.fromisoformat(args.end)
    first_night = last - dt.timedelta(days=args.nights - 1)
    shift_from = first_night + dt.timedelta(days=min(1, args.nights - 1))
    sales = generate_sales(stores=args.stores, items=args.items, start=args.start, end=args.end,
                           shifts=(Shift(store=args.stores, start=pd.Timestamp(shift_from),
                                         factor=1.3),))
    history = catalog.drops / "history.csv"
    write_sales_csv(sales[sales["date"] < pd.Timestamp(first_night)], history)
    print(f"demo: {args.stores} stores x {args.items} items, nights {first_night}..{last}, "
          f"store {args.stores} sells 30 % more from {shift_from}")
    print(describe_ingest(ingest_file(catalog, history)))
    for offset in range(args.nights):
        day = first_night + dt.timedelta(days=offset)
        drop = catalog.drops / f"sales-{day}.csv"
        write_sales_csv(sales[sales["date"] == pd.Timestamp(day)], drop)
        _run_night(str(day), args.profile, str(drop))
    settings = catalog.settings
    print("\nwhere to look:")
    print("  shelfcast models list                 # every variant of every night, gate verdicts")
    print("  shelfcast models show ID              # figures, lineage, every gate reason")
    print("  shelfcast releases list               # what went to which device class and stores")
    print("  shelfcast alerts list --open          # drift and quality alerts; ack with `alerts ack`")
    print(f"  drift reports: {catalog.drift_reports}  (evidently ui --workspace "
          f"{catalog.evidently_workspace})")
    print(f"  release channel: {catalog.releases}  (public key {catalog.signing_key.parent})")
    print(f"  artifacts: {catalog.artifacts}")
    print(f"  registry:  {catalog.database_url_shown}")
    print(f"  Prefect artifacts (summary + table): PREFECT_HOME={settings.prefect_home} "
          "prefect server start")
