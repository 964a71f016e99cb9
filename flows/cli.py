"""`shelfcast`: the command line. Heavy modules are imported inside each command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path


class CommandError(Exception):
    """A failure to report as one line on stderr with a non-zero exit code."""


def _settings():
    from storage.settings import get_settings

    return get_settings()


def _sessions(create_if_empty: bool = True):
    from storage.db import open_registry

    settings = _settings()
    return open_registry(
        settings.sqlalchemy_url, create_if_empty=create_if_empty and settings.database_url is None
    )


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


def _print_table(rows: list[dict], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


# -- data --------------------------------------------------------------------------------


def cmd_generate(args) -> None:
    from storage.synthetic import generate_sales, parse_shift, write_sales_csv

    shifts = tuple(parse_shift(text) for text in args.shift)
    sales = generate_sales(
        stores=args.stores, items=args.items, start=args.start, end=args.end, seed=args.seed,
        shifts=shifts,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_sales_csv(sales, args.out)
    print(f"wrote {len(sales):,} rows ({args.stores} stores x {args.items} items, "
          f"{args.start}..{args.end}) to {args.out}")


def cmd_ingest(args) -> None:
    from storage.sales import ingest_sales, read_sales_csv

    sales, sha256 = read_sales_csv(args.file)
    sessions = _sessions()
    with sessions() as session, session.begin():
        summary = ingest_sales(session, sales, source=str(args.file), sha256=sha256,
                               replace=args.replace)
    print(f"{args.file}: {summary.rows_in_file:,} rows: {summary.rows_inserted:,} inserted, "
          f"{summary.rows_replaced:,} replaced, {summary.rows_unchanged:,} already present")


def cmd_db_upgrade(args) -> None:
    from storage.db import current_revision, make_engine, upgrade

    engine = make_engine(_settings().sqlalchemy_url)
    before = current_revision(engine)
    upgrade(engine)
    print(f"database at revision {current_revision(engine)} (was {before or 'empty'})")


def cmd_bench_baseline(args) -> None:
    from compression.benchmarks import baseline_vs_references
    from compression.lstm import recipe_for
    from storage.sales import read_sales_csv
    from storage.synthetic import generate_sales

    if args.data:
        sales, _ = read_sales_csv(args.data)
    else:
        sales = generate_sales(with_expected=True)
    print(f"training LSTM-{args.units} ({args.profile} profile) on {len(sales):,} rows ...",
          file=sys.stderr)
    rows = baseline_vs_references(sales, recipe_for(args.profile), units=args.units)
    if args.json:
        _print_json(rows)
    else:
        _print_table(rows, ["forecast", "mape_pct", "wape_pct", "windows"])


def cmd_demo(args) -> None:
    from compression.benchmarks import baseline_vs_references
    from compression.lstm import recipe_for
    from storage.sales import ingest_sales, load_sales, sales_fingerprint
    from storage.synthetic import generate_sales, write_sales_csv

    settings = _settings()
    drop = settings.home / "drops" / "demo-sales.csv"
    drop.parent.mkdir(parents=True, exist_ok=True)
    sales = generate_sales(with_expected=True)
    write_sales_csv(sales, drop)
    sessions = _sessions()
    with sessions() as session, session.begin():
        summary = ingest_sales(session, sales.drop(columns="expected"), source=str(drop),
                               sha256=sales_fingerprint(sales))
        stored = load_sales(session)
    print(f"ingested {drop}: {summary.rows_inserted:,} new rows, {len(stored):,} stored")
    rows = baseline_vs_references(sales, recipe_for("quick"))
    _print_table(rows, ["forecast", "mape_pct", "wape_pct", "windows"])
    print(f"registry: {settings.sqlalchemy_url}")


def cmd_bench_article(args) -> None:
    from compression.benchmarks import (
        article_benchmark,
        parse_id_range,
        results_markdown,
        save_pareto_plot,
    )
    from compression.lstm import recipe_for
    from storage.sales import read_sales_csv
    from storage.synthetic import generate_sales

    stores, items = parse_id_range(args.stores), parse_id_range(args.items)
    if args.data:
        sales, _ = read_sales_csv(args.data)
        sales = sales[sales["store"].isin(stores) & sales["item"].isin(items)]
        if sales.empty:
            raise CommandError(f"{args.data}: no rows for stores {args.stores} and items {args.items}")
    else:
        sales = generate_sales(stores=max(stores), items=max(items))
        sales = sales[sales["store"].isin(stores) & sales["item"].isin(items)]
    result = article_benchmark(sales, recipe_for(args.profile), runs=args.runs,
                               progress=lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result["variants"], indent=2))
    (out / "run.json").write_text(json.dumps({k: v for k, v in result.items() if k != "variants"},
                                             indent=2))
    (out / "results.md").write_text(results_markdown(result))
    save_pareto_plot(result["variants"], out / "pareto.png")
    print(results_markdown(result))
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'pareto.png'}")


def not_built(issue: int) -> Callable:
    def handler(args) -> None:
        raise CommandError(f"`shelfcast {args.command}` is not built yet (issue {issue})")

    return handler


# -- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shelfcast",
        description="Keep small LSTM demand forecasters fresh on store devices.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="write generated Kaggle-schema sales to a CSV")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--stores", type=int, default=5)
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--start", default="2013-01-01")
    p.add_argument("--end", default="2017-12-31")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shift", action="append", default=[], metavar="SPEC",
                   help="inject a shift: store=3,start=2017-06-01,factor=1.2[,item=5][,kind=promo]")
    p.set_defaults(handler=cmd_generate)

    p = sub.add_parser("ingest", help="validate a sales CSV, then load all rows or none")
    p.add_argument("file", type=Path)
    p.add_argument("--replace", action="store_true", help="overwrite stored rows that differ")
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser("nightly", help="run one night: ingest, drift, train, compress, gate, ship")
    p.add_argument("--as-of", help="the night's date (default: the last day with sales)")
    p.add_argument("--profile", choices=["quick", "full"], default="full")
    p.set_defaults(handler=not_built(5))

    p = sub.add_parser("demo", help="several generated nights end to end, drift on the last ones")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("bench", help="benchmarks")
    bench = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    b = bench.add_parser("article", help="reproduce the article's experiment on LiteRT")
    b.add_argument("--data", type=Path, help="Kaggle-schema CSV (default: generated, article shape)")
    b.add_argument("--stores", default="1-5")
    b.add_argument("--items", default="1-10")
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--profile", choices=["quick", "full"], default="full")
    b.add_argument("--out", default="bench-out/article")
    b.set_defaults(handler=cmd_bench_article)
    b = bench.add_parser("baseline", help="the baseline LSTM against the reference forecasts")
    b.add_argument("--data", type=Path, help="Kaggle-schema CSV (default: generated, 5x10)")
    b.add_argument("--profile", choices=["quick", "full"], default="full")
    b.add_argument("--units", type=int, default=64)
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=cmd_bench_baseline)

    for name, issue, text in (
        ("models", 4, "list and show registered model versions"),
        ("gate", 4, "show and set gate policies per device class"),
        ("alerts", 6, "list, show and acknowledge alerts"),
        ("promote", 7, "release a model version to a device class"),
        ("rollback", 7, "republish the previous release of a device class"),
        ("releases", 7, "the release audit trail"),
        ("keys", 7, "release-signing keys"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(handler=not_built(issue))

    p = sub.add_parser("db", help="registry schema")
    db = p.add_subparsers(dest="db", required=True, metavar="ACTION")
    db.add_parser("upgrade", help="migrate the registry to the newest schema").set_defaults(
        handler=cmd_db_upgrade
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except CommandError as exc:
        print(f"shelfcast: {exc}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, OSError) as exc:
        first = str(exc)
        print(f"shelfcast: error: {first}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
