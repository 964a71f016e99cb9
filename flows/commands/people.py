"""People and approvals: console users, and approving a waiting canary for the fleet."""

from __future__ import annotations

import sys
from pathlib import Path

from flows.commands.audit import record as audit
from flows.output import print_json, print_table, user
from storage.catalog import get_catalog


def read_password(password_file) -> str:
    """The password from `--password-file` ('-' for stdin), else asked twice without echo;
    never from the command line, where `ps` and the shell history would keep it."""
    import getpass

    if password_file is not None:
        text = sys.stdin.read() if str(password_file) == "-" else password_file.read_text()
        return text.rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ; nothing was changed")
    return first


def users_add(args) -> None:
    from storage.users import add_user

    password = read_password(args.password_file)
    by = user(args.by)
    with get_catalog().unit_of_work() as session:
        added = add_user(session, args.name, role=args.role, password=password, by=by)
        audit(session, by, "user.add", added.name, f"role {added.role}")
        shown = added.name, added.role
    print(f"user {shown[0]} added with role {shown[1]}")


def users_remove(args) -> None:
    from storage.users import disable_user

    by = user(args.by)
    with get_catalog().unit_of_work() as session:
        removed = disable_user(session, args.name)
        audit(session, by, "user.remove", removed.name)
    print(f"user {args.name} removed: their sessions ended and they cannot log in; the audit "
          "trail keeps their name")


def users_token(args) -> None:
    from storage.users import issue_api_token

    by = user(args.by)
    with get_catalog().unit_of_work() as session:
        token = issue_api_token(session, args.name)
        audit(session, by, "user.token", args.name)
    # the token alone on stdout, so `... > name.token` keeps it; it is never shown again
    print(f"API token for {args.name} follows, shown this once; scripts send it as "
          "'Authorization: Bearer TOKEN' (any earlier token of theirs stops working)",
          file=sys.stderr)
    print(token)


def users_list(args) -> None:
    from storage.users import list_users, user_as_dict

    with get_catalog().session() as session:
        rows = [user_as_dict(u) for u in list_users(session)]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["name", "role", "created_by", "created_at", "disabled_at"])


def releases_approve(args) -> None:
    from storage.approvals import approve_release

    by = user(args.by)
    with get_catalog().unit_of_work() as session:
        release = approve_release(session, args.release, by=by)
        audit(session, by, "release.approve", f"release {release.id}", args.note)
        shown = release.id, release.device_class, release.model_version_id
    print(f"release {shown[0]} ({shown[1]}, version {shown[2]}) approved by {by}: it goes to "
          "the fleet on the next rollout that finds it clean")


def add_parsers(sub) -> None:
    """This module's commands on the `shelfcast` parser's subcommands `sub`."""
    p = sub.add_parser("users", help="people who use the ops console, and their roles")
    users = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    # no abbreviations: `--password SECRET` must be refused, not taken for --password-file
    u = users.add_parser("add", help="add a user; the password (12 or more characters, not a "
                                     "common one, not the name) is asked for (or --password-file)",
                         allow_abbrev=False)
    u.add_argument("name")
    u.add_argument("--role", choices=["viewer", "ops", "admin"], required=True)
    u.add_argument("--password-file", type=Path,
                   help="read the password from this file ('-': standard input), for scripts")
    u.add_argument("--by", help="who adds the user (default: the OS user)")
    u.set_defaults(handler=users_add)
    u = users.add_parser("remove", help="refuse a user from now on (their sessions end)")
    u.add_argument("name")
    u.add_argument("--by", help="who removes the user (default: the OS user)")
    u.set_defaults(handler=users_remove)
    u = users.add_parser("token", help="a new API token for a user's scripts (printed once)")
    u.add_argument("name")
    u.add_argument("--by", help="who issues it (default: the OS user)")
    u.set_defaults(handler=users_token)
    u = users.add_parser("list", help="every user and role")
    u.add_argument("--json", action="store_true")
    u.set_defaults(handler=users_list)
