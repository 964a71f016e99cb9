"""The audit trail on the command line: `shelfcast audit`, and how every CLI command that
changes who can do what, or what ships, records itself in it."""

from __future__ import annotations

import argparse
import datetime as dt

from device.messages import echo
from flows.output import iso_date, print_json
from storage.catalog import get_catalog

MAX_LIMIT = 100_000


def record(session, actor: str, action: str, target: str, note: str | None = None) -> None:
    """Record a CLI write in the audit trail, in the caller's transaction, under the `--by`
    name (or the OS user) it was done by."""
    from storage.users import record_action

    record_action(session, actor=actor, via="cli", action=action, target=target, note=note or "")


def positive_limit(text: str) -> int:
    """An argparse type: how many acts to show, 1 to MAX_LIMIT."""
    if text.isdigit() and len(text) <= 6 and 1 <= int(text) <= MAX_LIMIT:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_LIMIT:,}, "
                                     f"got {echo(text)}")


def act_line(act: dict) -> str:
    """One act as a person reads it: when (UTC), who and through what, what, to what, why."""
    at = dt.datetime.fromisoformat(act["at"])
    return (f"{at:%Y-%m-%d %H:%M:%S}  {act['actor']} ({act['via']})  {act['action']}  "
            f"{act['target']}" + (f"  - {act['note']}" if act["note"] else ""))


def show_audit(args) -> None:
    from storage.users import action_as_dict, list_actions

    since = args.since and dt.datetime.combine(args.since, dt.time(), tzinfo=dt.UTC)
    with get_catalog().session() as session:
        acts = [action_as_dict(a) for a in list_actions(
            session, limit=args.limit, actor=args.actor, action=args.action, since=since)]
    if args.json:
        print_json(acts)
    elif not acts:
        print("(none)")
    else:
        print("\n".join(act_line(act) for act in acts))


def add_parsers(sub) -> None:
    """This module's commands on the `shelfcast` parser's subcommands `sub`."""
    p = sub.add_parser("audit", help="who did what, when: every admin act of the CLI, the "
                                     "console and the API, newest first")
    p.add_argument("--actor", help="only this person's acts")
    p.add_argument("--action", help="only this action (e.g. release.promote), or its family "
                                    "(release)")
    p.add_argument("--since", type=iso_date, help="only acts from this day on (UTC), YYYY-MM-DD")
    p.add_argument("--limit", type=positive_limit, default=100,
                   help="show at most this many (default 100)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=show_audit)
