"""`shelfcast-device`: the store-device agent's command line (numpy + LiteRT + the signature
check only)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import traceback
from pathlib import Path

from device.agent import (
    AgentOutdated,
    ChannelUnavailable,
    SyncError,
    installed_model,
    latency_us,
    predict,
    read_state,
    sync,
)
from device.manifest import MAX_ID
from device.messages import echo
from device.report import (
    QUEUE_DIR,
    Delivery,
    read_report_target,
    record_sync,
    send_report,
)
from device.sales_log import kept_sales, record_sales
from device.trust import KEYRING_FILE, ROOT_STATE_FILE, install_root, read_keyring, read_root, trust_key


def cmd_sync(args) -> int:
    if (args.report_to is None) != (args.token_file is None):
        raise ValueError("--report-to and --token-file go together: the report needs the "
                         "service's URL and the device token")
    if args.report_to:
        read_report_target(args.report_to, Path(args.token_file), option="--report-to")
    try:
        result = sync(args.channel, args.device_class, args.store, Path(args.state),
                      Path(args.public_key).read_bytes() if args.public_key else None)
    except Exception as exc:  # recorded and reported, then failed as before
        refused = isinstance(exc, SyncError) and not isinstance(exc, ChannelUnavailable)
        result = ("outdated" if isinstance(exc, AgentOutdated) else "refused" if refused
                  else "failed")
        record_sync(Path(args.state), result, str(exc))
        _report_after_sync(args)
        raise
    record_sync(Path(args.state), result.status)
    for version in result.learned_roots:
        print(f"follows root version {version} now: signed by the root keys of the version "
              "before it and its own")
    m = result.manifest
    print(f"{result.status}: model version {m.model_version} ({m.variant}), release "
          f"{m.release_id} on {m.channel}, {m.artifact_bytes:,} B, sha256 {m.sha256[:12]}")
    _report_after_sync(args)
    return 0


def _report_after_sync(args) -> None:
    """With --report-to, tell the service how the sync went. A report that cannot go now stays
    queued for the next run and does not change the sync's exit code: the model on the device
    is what the sync made it."""
    if not args.report_to:
        return
    try:
        delivery = send_report(args.report_to, Path(args.token_file), Path(args.state))
    except (OSError, ValueError) as exc:
        print(f"shelfcast-device sync: no report sent: {exc}", file=sys.stderr)
        return
    _print_delivery("shelfcast-device sync", delivery, args.report_to, Path(args.state))


def _print_delivery(command: str, delivery: Delivery, server: str, state: Path) -> None:
    for reason in delivery.dropped:
        print(f"{command}: dropped a queued report the service refused: {reason}",
              file=sys.stderr)
    if delivery.queued:
        print(f"{command}: {delivery.problem}; {delivery.queued} report(s) queued in "
              f"{state / QUEUE_DIR} for the next run", file=sys.stderr)
    else:
        print(f"sent {delivery.sent} report(s) to {server}")


def cmd_trust(args) -> int:
    if (args.root is None) == (args.public_key is None):
        raise ValueError("give one of --root (the channel's root at enrolment) and --public-key")
    if args.root:
        root = install_root(Path(args.state), Path(args.root).read_bytes())
        print(f"follows root version {root.version} (release keys "
              f"{', '.join(root.role_ids('release'))}; {Path(args.state) / ROOT_STATE_FILE})")
        return 0
    kid = trust_key(Path(args.state), Path(args.public_key).read_bytes())
    print(f"trusts release key {kid} (keyring {Path(args.state) / KEYRING_FILE}) for the "
          "channel's first root")
    return 0


def cmd_predict(args) -> int:
    sales = args.history if args.history is not None else \
        kept_sales(Path(args.state), args.item, args.date)
    print(f"{predict(Path(args.state), sales, args.date):.4f}")
    return 0


def cmd_status(args) -> int:
    state = read_state(Path(args.state))
    keyring, root = read_keyring(Path(args.state)), read_root(Path(args.state))
    state["trusted_keys"] = list(root.role_ids("release")) if root else sorted(keyring["trusted"])
    state["retired_keys"] = keyring["retired"]
    state["root_version"] = root and root.version
    if state["current"] is not None:
        try:
            installed_model(Path(args.state))
            state["current"]["verified"] = True
        except SyncError as exc:
            state["current"]["verified"] = False
            state["current"]["problem"] = str(exc)
    if args.json:
        print(json.dumps(state, indent=2))
        return 0 if state["current"] is None or state["current"]["verified"] else 1
    print(f"trusted release keys: {', '.join(state['trusted_keys']) or 'none installed'}"
          + (f" (root version {state['root_version']})" if state["root_version"] else ""))
    if state["current"] is None:
        print("no model installed")
    else:
        for label in ("current", "previous"):
            e = state[label]
            if e:
                print(f"{label}: model version {e['model_version']} ({e['variant']}), release "
                      f"{e['release_id']} on {e['channel']}, {e['artifact_bytes']:,} B, sha256 "
                      f"{e['sha256'][:12]}, installed {e['installed_at']}"
                      + ("" if label == "previous" else f", verified: {e['verified']}"))
    return 0 if state["current"] is None or state["current"]["verified"] else 1


def cmd_bench(args) -> int:
    figures = latency_us(Path(args.state), repeats=args.repeats)
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))
    return 0


def cmd_report(args) -> int:
    delivery = send_report(args.server, Path(args.token_file), Path(args.state))
    _print_delivery("shelfcast-device report", delivery, args.server, Path(args.state))
    if not delivery.queued:
        return 0
    return EXIT_UNAVAILABLE if delivery.unreachable else EXIT_REFUSED


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a date (YYYY-MM-DD)") from None


def _id(kind: str):
    """A parser of `kind` ids as the registry keeps them: whole numbers from 1 to MAX_ID."""
    def parse(text: str) -> int:
        if text.isdigit() and len(text) <= len(str(MAX_ID)) and 1 <= int(text) <= MAX_ID:
            return int(text)
        raise argparse.ArgumentTypeError(f"expected {kind} id from 1 to {MAX_ID}, got "
                                         f"{echo(text)}")
    return parse


_store, _item = _id("a store"), _id("an item")


def cmd_record(args) -> int:
    record_sales(Path(args.state), args.item, args.date, args.sales)
    return 0


class UsageError(ValueError):
    """A bad command line, on one line."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


# Exit codes, as `shelfcast` uses them (README, "Exit codes"): 2 bad input, 3 not found,
# 4 refused (the installed model keeps serving), 5 unavailable (network, disk), 1 internal.
EXIT_BAD_INPUT, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_INTERNAL = 2, 3, 4, 5, 1


def parser() -> argparse.ArgumentParser:
    root = OneLineParser(
        prog="shelfcast-device",
        description="Fetch, verify and run Shelfcast models on a store device.")
    root.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("sync", help="fetch, verify and install the model for this device")
    p.add_argument("--channel", required=True, help="base URL (or folder) of the release channel")
    p.add_argument("--device-class", required=True)
    p.add_argument("--store", required=True, type=_store)
    p.add_argument("--state", required=True, help="folder holding the installed models")
    p.add_argument("--public-key", help="PEM file of a release signing key, trusted for this "
                                        "run besides the keyring (see `trust`)")
    p.add_argument("--report-to", help="base URL of `shelfcast serve`: send a report after the "
                                       "sync, whatever its result (queued while unreachable)")
    p.add_argument("--token-file", help="file holding the device token (with --report-to)")
    p.set_defaults(handler=cmd_sync)
    p = sub.add_parser("trust", help="install the channel's root this device starts from "
                                      "(later roots come from the channel, version by version)")
    p.add_argument("--state", required=True)
    p.add_argument("--root", help="the channel's root file given at enrolment "
                                  "(root/1.root.json, or a later version)")
    p.add_argument("--public-key", help="PEM file of the release key: the device then takes "
                                        "the channel's root version 1 if that key signed it")
    p.set_defaults(handler=cmd_trust)
    p = sub.add_parser("predict", help="forecast a day's sales from the days before it")
    p.add_argument("--state", required=True)
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--history", type=float, nargs="+",
                       help="the daily sales before --date, oldest first: 14 at least; a model "
                            "of input contract 3 reads up to 364 (8 weeks or more forecast "
                            "better)")
    given.add_argument("--item", type=_item, help="forecast this item from the sales this "
                                                   "device kept (shelfcast-device record)")
    p.add_argument("--date", type=_day, default=dt.date.today() + dt.timedelta(days=1),
                   help="the day to forecast, YYYY-MM-DD (default: tomorrow)")
    p.set_defaults(handler=cmd_predict)
    p = sub.add_parser("record", help="keep a day's sales of an item on this device (the last "
                                      "364 days are kept, for `predict --item`)")
    p.add_argument("--state", required=True)
    p.add_argument("--item", required=True, type=_item)
    p.add_argument("--date", required=True, type=_day, help="the day sold, YYYY-MM-DD")
    p.add_argument("--sales", required=True, type=float, help="units sold that day")
    p.set_defaults(handler=cmd_record)
    p = sub.add_parser("status", help="the installed model and whether its file verifies")
    p.add_argument("--state", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)
    p = sub.add_parser("bench", help="LiteRT latency of the installed model on this device")
    p.add_argument("--state", required=True)
    p.add_argument("--repeats", type=int, default=1000)
    p.add_argument("--out", help="also write the figures to this JSON file")
    p.set_defaults(handler=cmd_bench)
    p = sub.add_parser("report", help="send this device's state to the fleet service (queued "
                                      "while the service cannot be reached)")
    p.add_argument("--server", required=True, help="base URL of `shelfcast serve`")
    p.add_argument("--token-file", required=True, help="file holding the device token")
    p.add_argument("--state", required=True)
    p.set_defaults(handler=cmd_report)
    return root


def main(argv: list[str] | None = None) -> int:
    """Run one command; a failure is one line on stderr and an exit code for its kind."""
    debug = os.environ.get("SHELFCAST_DEBUG", "") not in ("", "0")
    command = "shelfcast-device"
    try:
        args = parser().parse_args(argv)
        debug, command = debug or args.debug, f"shelfcast-device {args.command}"
        return args.handler(args)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the one place failures end
        if debug:
            traceback.print_exc()
        code, message = _classify(exc)
        print(f"{command}: {message}", file=sys.stderr)
        return code


def _classify(exc: BaseException) -> tuple[int, str]:
    first = (str(exc).strip().splitlines() or [""])[0][:400]
    if isinstance(exc, KeyboardInterrupt):
        return 130, "interrupted"
    if isinstance(exc, ChannelUnavailable):
        return EXIT_UNAVAILABLE, first
    if isinstance(exc, SyncError):
        return EXIT_REFUSED, first
    if isinstance(exc, FileNotFoundError):
        return EXIT_NOT_FOUND, first
    if isinstance(exc, OSError):
        return EXIT_UNAVAILABLE, first
    if isinstance(exc, ValueError):
        return EXIT_BAD_INPUT, first
    return EXIT_INTERNAL, (f"internal error: {type(exc).__name__}: {first[:200]} (run again "
                           "with --debug or SHELFCAST_DEBUG=1 for the traceback)")


if __name__ == "__main__":
    sys.exit(main())
