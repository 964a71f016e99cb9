"""`shelfcast`: the command line. This module only parses and dispatches; the commands live in
`flows/commands/`, and heavy modules are imported inside each command."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from flows.commands import audit, bench, checks, data, fleet, night, people, registry
from flows.errors import EXIT_OK, classify


class UsageError(ValueError):
    """A bad command line: argparse's message, on one line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line (`--help` still shows the usage)."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="shelfcast",
        description="Keep small LSTM demand forecasters fresh on store devices.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a failure (also SHELFCAST_DEBUG=1)")
    parser.add_argument("--verbose", action="store_true",
                        help="nightly and demo: show the logs of Prefect, Dask, TensorFlow and "
                             "LiteRT and every progress line on the terminal (by default they "
                             "go to a log file under the data directory, logs/)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # each command module adds its own commands, in the order `--help` lists them
    for module in (data, night, bench, checks, fleet, registry, people, audit):
        module.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; on failure print one line on stderr and return its exit code
    (README, "Exit codes")."""
    debug = os.environ.get("SHELFCAST_DEBUG", "") not in ("", "0")
    try:
        args = build_parser().parse_args(argv)
        debug = debug or args.debug
        args.handler(args)
    except BrokenPipeError:  # the reader went away (`shelfcast models list | head`): quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the one place failures end
        failure = classify(exc, registry=_registry_shown())
        if debug:
            traceback.print_exc()
        print(f"shelfcast: error: {_scrubbed(failure.message)}", file=sys.stderr)
        return failure.exit_code
    return EXIT_OK


def _registry_shown() -> str:
    try:
        from storage.catalog import get_catalog

        return f"registry {get_catalog().database_url_shown}"
    except Exception:  # noqa: BLE001 - the settings themselves may be what failed
        return "the registry"


def _scrubbed(message: str) -> str:
    """The message with every configured notification URL masked (they carry credentials)."""
    try:
        from monitoring.notify import scrub_secrets
        from storage.settings import get_settings

        return scrub_secrets(message, get_settings().notify_urls)
    except Exception:  # noqa: BLE001 - unreadable settings: nothing to scrub with
        return message


if __name__ == "__main__":
    sys.exit(main())
