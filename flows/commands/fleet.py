"""The fleet: the HTTP service, device enrolment and what every device reported."""

from __future__ import annotations

import datetime as dt
import sys

from flows.commands.audit import record as audit
from flows.output import print_json, print_table, record_id, user
from storage.catalog import get_catalog


def serve(args) -> None:
    import uvicorn

    from service.app import create_app, server_options

    catalog = get_catalog()
    with catalog.session():
        pass  # refuse to start on a registry that is unreachable or behind its migrations
    print(f"shelfcast: serving the device API on http://{args.host}:{args.port}/api/v1 and the "
          f"release channel {catalog.releases} on /releases/", file=sys.stderr)
    uvicorn.run(create_app(catalog), host=args.host, port=args.port, log_level="info",
                server_header=False, **server_options(catalog.settings))


def devices_enroll(args) -> None:
    from storage.devices import check_store_known, enroll_device

    by = user(args.by)
    with get_catalog().unit_of_work() as session:
        check_store_known(session, args.store)
        enrolment = enroll_device(session, store=args.store, device_class=args.device_class,
                                  by=by, name=args.name)
        device = enrolment.device
        audit(session, by, "device.enroll", f"device {device.id}",
              f"store {device.store}, {device.device_class}")
    # the token alone on stdout, so `... > device.token` keeps it; it is never shown again
    print(f"device {device.id} enrolled for store {device.store} ({device.device_class}); its "
          "token follows, shown this once: keep it on the device (--token-file)", file=sys.stderr)
    print(enrolment.token)


def devices_list(args) -> None:
    from storage.devices import DeviceView, list_devices

    with get_catalog().session() as session:
        rows = [DeviceView.of(d).as_dict() for d in list_devices(
            session, device_class=args.device_class)]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["id", "store", "device_class", "name", "enrolled_at", "enrolled_by",
                           "last_seen", "revoked_at", "revoked_by"])


def devices_revoke(args) -> None:
    from storage.devices import revoke_device

    by = user(args.by)
    with get_catalog().unit_of_work() as session:
        device = revoke_device(session, args.device, by=by)
        shown = device.id, device.store, device.device_class
        audit(session, by, "device.revoke", f"device {device.id}",
              f"store {device.store}, {device.device_class}")
    print(f"device {shown[0]} (store {shown[1]}, {shown[2]}) revoked: its token is refused")


def fleet_status(args) -> None:
    from storage.devices import fleet_status as status_of_fleet

    if not args.stale_hours > 0:
        raise ValueError(f"--stale-hours must be positive, got {args.stale_hours}")
    with get_catalog().session() as session:
        rows = [s.as_dict() for s in status_of_fleet(
            session, device_class=args.device_class,
            stale_after=dt.timedelta(hours=args.stale_hours))]
    if args.json:
        print_json(rows)
        return
    for row in rows:
        row["problems"] = ", ".join(row["problems"]) or "ok"
    print_table(rows, ["id", "store", "device_class", "name", "release_id",
                       "expected_release_id", "last_seen", "sync_result", "problems"])


def add_parsers(sub) -> None:
    """This module's commands on the `shelfcast` parser's subcommands `sub`."""
    p = sub.add_parser("serve", help="the HTTP service: ops console, device API, release channel")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8400)
    p.set_defaults(handler=serve)

    p = sub.add_parser("devices", help="enrol, list and revoke store devices")
    devices = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    v = devices.add_parser("enroll", help="add a device; prints its token once")
    v.add_argument("--store", type=record_id, required=True)
    v.add_argument("--device-class", required=True)
    v.add_argument("--name", help="a label people recognise, e.g. 'aisle 4 shelf sensor'")
    v.add_argument("--by", help="who enrols it (default: the OS user)")
    v.set_defaults(handler=devices_enroll)
    v = devices.add_parser("list", help="every enrolled device, revoked ones too")
    v.add_argument("--device-class")
    v.add_argument("--json", action="store_true")
    v.set_defaults(handler=devices_list)
    v = devices.add_parser("revoke", help="refuse a device's token from now on")
    v.add_argument("device", type=record_id)
    v.add_argument("--by", help="who revokes it (default: the OS user)")
    v.set_defaults(handler=devices_revoke)

    p = sub.add_parser("fleet", help="what the store devices report")
    fleet_actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    f = fleet_actions.add_parser("status", help="every device: its release and what is wrong")
    f.add_argument("--device-class")
    f.add_argument("--stale-hours", type=float, default=24.0,
                   help="a device without a report for this long is stale")
    f.add_argument("--json", action="store_true")
    f.set_defaults(handler=fleet_status)
