"""`shelfcast-device`: the store-device agent's command line (numpy + LiteRT + the signature
check only)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from device.agent import SyncError, installed_model, latency_us, predict, read_state, sync


def cmd_sync(args) -> int:
    result = sync(args.channel, args.device_class, args.store, Path(args.state),
                  Path(args.public_key).read_bytes())
    m = result.manifest
    print(f"{result.status}: model version {m.model_version} ({m.variant}), release "
          f"{m.release_id} on {m.channel}, {m.artifact_bytes:,} B, sha256 {m.sha256[:12]}")
    return 0


def cmd_predict(args) -> int:
    print(f"{predict(Path(args.state), args.history):.4f}")
    return 0


def cmd_status(args) -> int:
    state = read_state(Path(args.state))
    if state["current"] is not None:
        try:
            installed_model(Path(args.state))
            state["current"]["verified"] = True
        except SyncError as exc:
            state["current"]["verified"] = False
            state["current"]["problem"] = str(exc)
    if args.json:
        print(json.dumps(state, indent=2))
    elif state["current"] is None:
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


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="shelfcast-device",
        description="Fetch, verify and run Shelfcast models on a store device.")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("sync", help="fetch, verify and install the model for this device")
    p.add_argument("--channel", required=True, help="base URL (or folder) of the release channel")
    p.add_argument("--device-class", required=True)
    p.add_argument("--store", required=True, type=int)
    p.add_argument("--state", required=True, help="folder holding the installed models")
    p.add_argument("--public-key", required=True, help="PEM file of the release signing key")
    p.set_defaults(handler=cmd_sync)
    p = sub.add_parser("predict", help="forecast next-day sales from the last 14 days")
    p.add_argument("--state", required=True)
    p.add_argument("--history", required=True, type=float, nargs="+",
                   help="14 daily sales, oldest first")
    p.set_defaults(handler=cmd_predict)
    p = sub.add_parser("status", help="the installed model and whether its file verifies")
    p.add_argument("--state", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)
    p = sub.add_parser("bench", help="LiteRT latency of the installed model on this device")
    p.add_argument("--state", required=True)
    p.add_argument("--repeats", type=int, default=1000)
    p.add_argument("--out", help="also write the figures to this JSON file")
    p.set_defaults(handler=cmd_bench)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except (SyncError, ValueError, OSError) as exc:
        print(f"shelfcast-device {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
