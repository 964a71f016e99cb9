"""Checks ops run on their own, outside a night: `shelfcast drift check`."""

from __future__ import annotations

from dataclasses import asdict

from flows.output import iso_date, print_json
from storage.catalog import get_catalog


def drift_check(args) -> None:
    """Run the night's drift check alone on the stored sales, saving its report and raising or
    resolving alerts exactly as the nightly step does."""
    from flows.checks import drift_check as run_check
    from flows.checks import load_sales_up_to

    catalog = get_catalog()
    sales, as_of = load_sales_up_to(catalog, args.as_of)
    outcome = run_check(catalog, sales, as_of, again=args.again)
    if args.json:
        print_json({"as_of": as_of.isoformat(), **asdict(outcome)})
        return
    print(f"drift {as_of}: {outcome.line}")


def add_parsers(sub) -> None:
    """This module's commands on the `shelfcast` parser's subcommands `sub`."""
    p = sub.add_parser("drift", help="the drift check on its own")
    drift = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    d = drift.add_parser("check", help="check stored sales for drift, save the report, raise or "
                                       "resolve alerts like the nightly step")
    d.add_argument("--as-of", type=iso_date,
                   help="the night's date, YYYY-MM-DD (default: the last day with sales)")
    d.add_argument("--again", action="store_true",
                   help="check again even if this night's report exists")
    d.add_argument("--json", action="store_true")
    d.set_defaults(handler=drift_check)
