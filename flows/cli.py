"""`shelfcast`: the command line. This module only parses and dispatches; the commands live in
`flows/commands/`, and heavy modules are imported inside each command."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from flows.commands import bench, bench_console, checks, data, fleet, night, people, registry
from flows.errors import EXIT_OK, classify
from policy.limits import METRIC_CHOICES, POLICY_FIELDS


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

    p = sub.add_parser("generate", help="write generated Kaggle-schema sales to a CSV")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--stores", type=int, default=5)
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--start", default="2013-01-01")
    p.add_argument("--end", default="2017-12-31")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--zero-share", type=float, default=0.0,
                   help="share of days with no sales in every series (intermittent items)")
    p.add_argument("--dispersion", type=float,
                   help="negative-binomial size: over-dispersed counts (default: Poisson)")
    p.add_argument("--shift", action="append", default=[], metavar="SPEC",
                   help="inject a shift: store=3,start=2017-06-01,factor=1.2[,item=5][,kind=promo]")
    p.set_defaults(handler=data.generate)

    p = sub.add_parser("ingest", help="validate a sales CSV, then load all rows or none")
    p.add_argument("file", type=Path)
    p.add_argument("--replace", action="store_true", help="overwrite stored rows that differ")
    p.set_defaults(handler=data.ingest)

    p = sub.add_parser("nightly", help="run one night: ingest, drift, train, compress, gate, ship")
    p.add_argument("--as-of", help="the night's date (default: the last day with sales)")
    p.add_argument("--profile", choices=["quick", "full"], default="full")
    p.add_argument("--cold", action="store_true",
                   help="train every model from nothing instead of fine-tuning the last "
                        "approved weights (a warm start)")
    p.set_defaults(handler=night.nightly)

    p = sub.add_parser("demo", help="several generated nights end to end, drift on the last ones")
    p.add_argument("--nights", type=int, default=4)
    p.add_argument("--stores", type=int, default=3)
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--start", default="2015-01-01")
    p.add_argument("--end", default="2017-12-31")
    p.add_argument("--profile", choices=["quick", "full"], default="quick")
    p.set_defaults(handler=night.demo)

    p = sub.add_parser("bench", help="benchmarks")
    benches = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    b = benches.add_parser("article", help="reproduce the article's experiment on LiteRT")
    b.add_argument("--data", type=Path, help="Kaggle-schema CSV (default: generated, article shape)")
    b.add_argument("--stores", default="1-5")
    b.add_argument("--items", default="1-10")
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--profile", choices=["quick", "full"], default="full")
    b.add_argument("--out", default="bench-out/article")
    b.set_defaults(handler=bench.article)
    b = benches.add_parser("drift", help="drift check against its claims: false-alarm nights on "
                                         "stable sales, stated against measured power")
    b.add_argument("--regimes", help="comma-separated, e.g. 'smooth 5x10,m5-sample' (default: "
                                     "all: smooth 5x10, over-dispersed 5x10, intermittent 10x5, "
                                     "smooth 10x50, m5-sample)")
    b.add_argument("--seeds", default="0-4", help="seeds of the stable nights, e.g. 0-4 or 0,3")
    b.add_argument("--nights", type=int, default=30, help="stable nights per seed")
    b.add_argument("--runs", type=int, default=40,
                   help="shifted runs per regime, kind (store, item) and shift size")
    b.add_argument("--data", type=Path, default=Path("../shared/data/m5-sample.csv"),
                   help="m5-sample.csv, for the m5-sample regime")
    b.add_argument("--false-alert-rate", type=float,
                   help="the check's target false-alert nights a night (default: DriftConfig's)")
    b.add_argument("--out", default="bench-out/drift")
    b.add_argument("--plot", help="where the power plot goes (default: OUT/drift-power.png)")
    b.set_defaults(handler=bench.drift)
    b = benches.add_parser("gate", help="replay generated nights: fleet releases and their "
                                        "accuracy under the old and the evidence rule")
    b.add_argument("--nights", type=int, default=30)
    b.add_argument("--stores", type=int, default=5)
    b.add_argument("--items", type=int, default=10)
    b.add_argument("--profile", choices=["quick", "full"], default="quick")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", default="bench-out/gate")
    b.set_defaults(handler=bench.gate)
    b = benches.add_parser("warm", help="one cold night, then nights both warm (fine-tuned, "
                                        "chained) and cold: MAPE and training time per night")
    b.add_argument("--nights", type=int, default=7)
    b.add_argument("--data", type=Path, help="Kaggle-schema CSV (default: generated)")
    b.add_argument("--stores", type=int, default=5, help="generated stores (default: 5)")
    b.add_argument("--items", type=int, default=10, help="generated items (default: 10)")
    b.add_argument("--variants", help="comma-separated from-scratch variants (default: all: "
                                      "lstm64,lstm32,lstm16)")
    b.add_argument("--profile", choices=["quick", "full"], default="quick")
    b.add_argument("--out", default="bench-out/warm")
    b.set_defaults(handler=bench.warm)
    b = benches.add_parser("scale", help="a cold and a warm night at each number of series, as "
                                         "separate processes: wall time per phase, peak memory",
                           description="For each size: generated sales in a fresh home, then "
                           "`ingest`, `nightly --cold`, the next day's `ingest`, `nightly` (warm), "
                           "each its own process; writes results.md, results.json and cost.png "
                           "(wall time, the night's phases, peak RSS and PSS of each process "
                           "tree). In the full profile 2,000 series took 15 minutes here, all four "
                           "default sizes 37 (2 cores).")
    b.add_argument("--series", default="50,200,500,2000",
                   help="comma-separated numbers of series (default: 50,200,500,2000)")
    b.add_argument("--profile", choices=["quick", "full"], default="full",
                   help="the training profile of the nights (default: full, what `nightly` runs)")
    b.add_argument("--keep", action="store_true",
                   help="keep each size's home (registry, artifacts, logs) under OUT/work")
    b.add_argument("--out", default="bench-out/scale",
                   help="where the results go (default: bench-out/scale)")
    b.set_defaults(handler=bench.scale)
    b = benches.add_parser("loss", help="the LSTM trained with each loss (MAE, Poisson) beside "
                           "the references, in MASE, WAPE and MAPE")
    b.add_argument("--data", type=Path, help="Kaggle-schema CSV (default: generated, 10 series)")
    b.add_argument("--profile", default="full", choices=["quick", "full"])
    b.add_argument("--units", type=int, default=32)
    b.add_argument("--seeds", type=int, default=2)
    b.add_argument("--out", default="bench-out/loss")
    b.set_defaults(handler=bench.loss)
    b = benches.add_parser("baseline", help="the baseline LSTM against the reference forecasts")
    b.add_argument("--data", type=Path, help="Kaggle-schema CSV (default: generated, 5x10)")
    b.add_argument("--profile", choices=["quick", "full"], default="full")
    b.add_argument("--units", type=int, default=64)
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=bench.baseline)
    b = benches.add_parser("fleet", help="reports per second `shelfcast serve` accepts and the "
                                         "time of `fleet status`, on SQLite and PostgreSQL")
    b.add_argument("--devices", type=int, default=1000, help="devices enrolled and posting")
    b.add_argument("--clients", type=int, default=4, help="client threads posting reports")
    b.add_argument("--seconds", type=float, default=15.0, help="how long they post")
    b.add_argument("--max-reports", type=int, default=100_000, help="stop after this many")
    b.add_argument("--status-devices", type=int, default=10_000,
                   help="devices (one report each) for the `fleet status` timing")
    b.add_argument("--database-url", help="a PostgreSQL server to make a scratch database on "
                                          "(default: 127.0.0.1:5432 when it answers)")
    b.add_argument("--out", default="bench-out/fleet")
    b.set_defaults(handler=bench.fleet)

    b = benches.add_parser("console", help="render time of every ops console page with a year "
                                           "of generated nights in the registry")
    b.add_argument("--nights", type=int, default=365)
    b.add_argument("--devices", type=int, default=300, help="enrolled devices, one report each")
    b.add_argument("--requests", type=int, default=20, help="timed requests per page")
    b.add_argument("--reuse", action="store_true",
                   help="time the pages of the registry an earlier run filled in --out")
    b.add_argument("--out", default="bench-out/console")
    b.set_defaults(handler=bench_console.console)

    p = sub.add_parser("drift", help="the drift check on its own")
    drift = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    d = drift.add_parser("check", help="check stored sales for drift, save the report, raise or "
                                       "resolve alerts like the nightly step")
    d.add_argument("--as-of", help="the night's date (default: the last day with sales)")
    d.add_argument("--again", action="store_true",
                   help="check again even if this night's report exists")
    d.add_argument("--json", action="store_true")
    d.set_defaults(handler=checks.drift_check)

    p = sub.add_parser("serve", help="the HTTP service: ops console, device API, release channel")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8400)
    p.set_defaults(handler=fleet.serve)

    p = sub.add_parser("devices", help="enrol, list and revoke store devices")
    devices = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    v = devices.add_parser("enroll", help="add a device; prints its token once")
    v.add_argument("--store", type=int, required=True)
    v.add_argument("--device-class", required=True)
    v.add_argument("--name", help="a label people recognise, e.g. 'aisle 4 shelf sensor'")
    v.add_argument("--by", help="who enrols it (default: the OS user)")
    v.set_defaults(handler=fleet.devices_enroll)
    v = devices.add_parser("list", help="every enrolled device, revoked ones too")
    v.add_argument("--device-class")
    v.add_argument("--json", action="store_true")
    v.set_defaults(handler=fleet.devices_list)
    v = devices.add_parser("revoke", help="refuse a device's token from now on")
    v.add_argument("device", type=int)
    v.add_argument("--by", help="who revokes it (default: the OS user)")
    v.set_defaults(handler=fleet.devices_revoke)

    p = sub.add_parser("fleet", help="what the store devices report")
    fleet_actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    f = fleet_actions.add_parser("status", help="every device: its release and what is wrong")
    f.add_argument("--device-class")
    f.add_argument("--stale-hours", type=float, default=24.0,
                   help="a device without a report for this long is stale")
    f.add_argument("--json", action="store_true")
    f.set_defaults(handler=fleet.fleet_status)

    p = sub.add_parser("models", help="list and show registered model versions")
    models = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    m = models.add_parser("list", help="model versions, newest first")
    m.add_argument("--status", help="candidate, approved, rejected, released or retired")
    m.add_argument("--device-class", help="only versions that passed the gate for this class")
    m.add_argument("--json", action="store_true")
    m.set_defaults(handler=registry.models_list)
    m = models.add_parser("show", help="one version: figures, lineage, gate reasons")
    m.add_argument("version", type=int)
    m.add_argument("--json", action="store_true")
    m.set_defaults(handler=registry.models_show)

    p = sub.add_parser("gate", help="show and set gate policies per device class")
    gate = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    g = gate.add_parser("show", help="the active policy of every device class")
    g.add_argument("--json", action="store_true")
    g.set_defaults(handler=registry.gate_show)
    g = gate.add_parser("suggest", help="limits the newest night's figures call for, and what "
                        "they would have let through on the last nights (changes nothing)")
    g.add_argument("device_class")
    g.add_argument("--nights", type=int, default=7, help="nights to replay (default 7)")
    g.add_argument("--json", action="store_true")
    g.set_defaults(handler=registry.gate_suggest)
    g = gate.add_parser("set", help="add a new policy version for a device class")
    g.add_argument("device_class")
    for spec in POLICY_FIELDS:  # one option per policy field (policy.limits)
        g.add_argument(spec.flag, *spec.aliases, dest=spec.name,
                       choices=METRIC_CHOICES if spec.low is None else None,
                       type=str if spec.low is None else int if spec.whole else float,
                       help=spec.help)
    g.add_argument("--require-approval", action=argparse.BooleanOptionalAction, default=None,
                   help="a canary of this class goes to the fleet only once a person approved "
                        "it (`releases approve`, or the console)")
    g.add_argument("--new-class", action="store_true",
                   help="add a device class that has no policy yet (every threshold needed)")
    g.add_argument("--by", help="who sets it (default: the OS user)")
    g.set_defaults(handler=registry.gate_set)

    p = sub.add_parser("alerts", help="list, show and acknowledge alerts")
    alerts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = alerts.add_parser("list", help="alerts, newest first")
    a.add_argument("--open", action="store_true", help="only alerts not resolved yet")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=registry.alerts_list)
    a = alerts.add_parser("show", help="one alert, whole")
    a.add_argument("alert", type=int)
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=registry.alerts_show)
    a = alerts.add_parser("ack", help="acknowledge an alert (releases a fleet-promotion hold)")
    a.add_argument("alert", type=int)
    a.add_argument("--by", required=True)
    a.add_argument("--note")
    a.set_defaults(handler=registry.alerts_ack)

    p = sub.add_parser("promote", help="release a model version to a device class")
    p.add_argument("version", type=int)
    p.add_argument("--device-class", required=True)
    p.add_argument("--channel", choices=["canary", "stable"], default="canary")
    p.add_argument("--by", help="who releases it (default: the OS user)")
    p.add_argument("--reason")
    p.set_defaults(handler=registry.promote)

    p = sub.add_parser("rollback", help="undo the newest release of a device class")
    p.add_argument("--device-class", required=True)
    p.add_argument("--reason", required=True)
    p.add_argument("--by", help="who rolls back (default: the OS user)")
    p.set_defaults(handler=registry.rollback)

    p = sub.add_parser("releases", help="the release audit trail")
    releases = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = releases.add_parser("list", help="every release, newest first")
    r.add_argument("--device-class")
    r.add_argument("--json", action="store_true")
    r.set_defaults(handler=registry.releases_list)
    r = releases.add_parser("approve", help="approve the open canary for the fleet (device "
                                            "classes whose gate policy requires approval)")
    r.add_argument("release", type=int)
    r.add_argument("--by", help="who approves it (default: the OS user)")
    r.add_argument("--note")
    r.set_defaults(handler=people.releases_approve)

    p = sub.add_parser("users", help="people who use the ops console, and their roles")
    users = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    # no abbreviations: `--password SECRET` must be refused, not taken for --password-file
    u = users.add_parser("add", help="add a user; the password is asked for (or --password-file)",
                         allow_abbrev=False)
    u.add_argument("name")
    u.add_argument("--role", choices=["viewer", "ops", "admin"], required=True)
    u.add_argument("--password-file", type=Path,
                   help="read the password from this file ('-': standard input), for scripts")
    u.add_argument("--by", help="who adds the user (default: the OS user)")
    u.set_defaults(handler=people.users_add)
    u = users.add_parser("remove", help="refuse a user from now on (their sessions end)")
    u.add_argument("name")
    u.add_argument("--by", help="who removes the user (default: the OS user)")
    u.set_defaults(handler=people.users_remove)
    u = users.add_parser("token", help="a new API token for a user's scripts (printed once)")
    u.add_argument("name")
    u.add_argument("--by", help="who issues it (default: the OS user)")
    u.set_defaults(handler=people.users_token)
    u = users.add_parser("list", help="every user and role")
    u.add_argument("--json", action="store_true")
    u.set_defaults(handler=people.users_list)

    p = sub.add_parser("keys", help="release-signing keys")
    keys = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    k = keys.add_parser("init", help="make the Ed25519 key that signs release manifests")
    k.add_argument("--force", action="store_true", help="replace an existing key")
    k.set_defaults(handler=data.keys_init)
    k = keys.add_parser("rotate", help="replace the signing key: announce the new public key "
                                       "signed by the old one, re-sign the open releases")
    k.add_argument("--by", help="who rotates it (default: the OS user)")
    k.set_defaults(handler=data.keys_rotate)

    p = sub.add_parser("db", help="registry schema")
    db = p.add_subparsers(dest="db", required=True, metavar="ACTION")
    db.add_parser("upgrade", help="migrate the registry to the newest schema").set_defaults(
        handler=data.db_upgrade
    )
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
