"""Checks ops run on their own, outside a night: `shelfcast drift check`."""

from __future__ import annotations

from dataclasses import asdict

from flows.output import print_json
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
