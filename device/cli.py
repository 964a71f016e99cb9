"""`shelfcast-device`: the store-device agent's command line (numpy + LiteRT only)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shelfcast-device",
                                     description="Fetch, verify and run Shelfcast models on a store device.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (("sync", "fetch, verify and install the model for this device class"),
                       ("predict", "forecast next-day sales from the last 14 days"),
                       ("status", "the installed model and its verification")):
        p = sub.add_parser(name, help=text)
        p.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    print(f"shelfcast-device: `{args.command}` is not built yet (issue 7)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
