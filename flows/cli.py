"""`shelfcast`: the command line. Heavy modules are imported inside each command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class CommandError(Exception):
    """A failure to report as one line on stderr with a non-zero exit code."""


def _settings():
    from storage.settings import get_settings

    return get_settings()


def _user(name: str | None) -> str:
    import getpass

    return name or getpass.getuser()


def _sessions():
    from storage.db import open_settings_registry

    return open_settings_registry(_settings())


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


def _print_table(rows: list[dict], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


# -- data --------------------------------------------------------------------------------


def cmd_generate(args) -> None:
    from storage.synthetic import generate_sales, parse_shift, write_sales_csv

    shifts = tuple(parse_shift(text) for text in args.shift)
    sales = generate_sales(
        stores=args.stores, items=args.items, start=args.start, end=args.end, seed=args.seed,
        shifts=shifts,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_sales_csv(sales, args.out)
    print(f"wrote {len(sales):,} rows ({args.stores} stores x {args.items} items, "
          f"{args.start}..{args.end}) to {args.out}")


def cmd_ingest(args) -> None:
    from flows.night import describe_ingest, ingest_file

    print(describe_ingest(ingest_file(_settings(), args.file, replace=args.replace)))


def cmd_db_upgrade(args) -> None:
    from storage.db import current_revision, make_engine, upgrade

    engine = make_engine(_settings().sqlalchemy_url)
    before = current_revision(engine)
    upgrade(engine)
    print(f"database at revision {current_revision(engine)} (was {before or 'empty'})")


def cmd_bench_baseline(args) -> None:
    from compression.benchmarks import baseline_vs_references
    from compression.lstm import recipe_for
    from storage.sales import read_sales_csv
    from storage.synthetic import generate_sales

    if args.data:
        sales, _ = read_sales_csv(args.data)
    else:
        sales = generate_sales(with_expected=True)
    print(f"training LSTM-{args.units} ({args.profile} profile) on {len(sales):,} rows ...",
          file=sys.stderr)
    rows = baseline_vs_references(sales, recipe_for(args.profile), units=args.units)
    if args.json:
        _print_json(rows)
    else:
        _print_table(rows, ["forecast", "mape_pct", "wape_pct", "windows"])


def _run_night(as_of: str | None, profile: str, drop: str | None = None):
    from flows.nightly import nightly_retrain

    return nightly_retrain(as_of=as_of, profile=profile, drop=drop)


def _print_night(result) -> None:
    print(f"night {result.as_of}: {result.status} (run {result.run_key})")
    for version in result.versions:
        print(f"  {version['variant']:<14} {version['status']:<9} {version['artifact_bytes']:>7,} B  "
              f"MAPE {version['mape_pct']:6.2f} %  passed for: {', '.join(version['passed_for']) or '-'}")
    print(f"  drift: {result.drift}")
    for line in result.quality + result.rollout:
        print(f"  {line}")
    for hold in result.holds:
        print(f"  fleet promotion on hold: {hold}")


def cmd_nightly(args) -> None:
    from storage.sales import sales_date_range
    from storage.synthetic import generate_sales, write_sales_csv

    with _sessions()() as session:
        first, _ = sales_date_range(session)
    drop = None
    if first is None:
        # the embedded default: with no sales stored, generate the article's shape
        drop = _settings().home / "drops" / "generated-sales.csv"
        drop.parent.mkdir(parents=True, exist_ok=True)
        write_sales_csv(generate_sales(end=args.as_of or "2017-12-31"), drop)
        print(f"no sales stored: generated 5 stores x 10 items into {drop}")
    _print_night(_run_night(args.as_of, args.profile, str(drop) if drop else None))


def cmd_demo(args) -> None:
    """Generated sales up to a start day, then one night per new day of sales."""
    import datetime as dt

    import pandas as pd

    from storage.synthetic import Shift, generate_sales, write_sales_csv

    settings = _settings()
    drops = settings.home / "drops"
    drops.mkdir(parents=True, exist_ok=True)
    last = dt.date.fromisoformat(args.end)
    first_night = last - dt.timedelta(days=args.nights - 1)
    shift_from = first_night + dt.timedelta(days=min(1, args.nights - 1))
    sales = generate_sales(stores=args.stores, items=args.items, start=args.start, end=args.end,
                           shifts=(Shift(store=args.stores, start=pd.Timestamp(shift_from),
                                         factor=1.3),))
    history = drops / "history.csv"
    write_sales_csv(sales[sales["date"] < pd.Timestamp(first_night)], history)
    print(f"demo: {args.stores} stores x {args.items} items, nights {first_night}..{last}, "
          f"store {args.stores} sells 30 % more from {shift_from}")
    cmd_ingest(argparse.Namespace(file=history, replace=False))
    for offset in range(args.nights):
        day = first_night + dt.timedelta(days=offset)
        drop = drops / f"sales-{day}.csv"
        write_sales_csv(sales[sales["date"] == pd.Timestamp(day)], drop)
        _print_night(_run_night(str(day), args.profile, str(drop)))
    print("\nwhere to look:")
    print("  shelfcast models list                 # every variant of every night, gate verdicts")
    print("  shelfcast models show ID              # figures, lineage, every gate reason")
    print("  shelfcast releases list               # what went to which device class and stores")
    print("  shelfcast alerts list --open          # drift and quality alerts; ack with `alerts ack`")
    print(f"  drift reports: {settings.reports / 'drift'}  (evidently ui --workspace "
          f"{settings.reports / 'evidently-workspace'})")
    print(f"  release channel: {settings.releases}  (public key {settings.signing_key_path.parent})")
    print(f"  artifacts: {settings.artifacts}")
    print(f"  registry:  {settings.sqlalchemy_url}")
    print(f"  Prefect artifacts (summary + table): PREFECT_HOME={settings.prefect_home} prefect server start")


def cmd_bench_article(args) -> None:
    from compression.benchmarks import (
        article_benchmark,
        parse_id_range,
        results_markdown,
        save_pareto_plot,
    )
    from compression.lstm import recipe_for
    from storage.sales import read_sales_csv
    from storage.synthetic import generate_sales

    stores, items = parse_id_range(args.stores), parse_id_range(args.items)
    sales = (read_sales_csv(args.data)[0] if args.data
             else generate_sales(stores=max(stores), items=max(items)))
    sales = sales[sales["store"].isin(stores) & sales["item"].isin(items)]
    if sales.empty:
        raise CommandError(f"{args.data or 'generated sales'}: no rows for stores {args.stores} "
                           f"and items {args.items}")
    result = article_benchmark(sales, recipe_for(args.profile), runs=args.runs,
                               progress=lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result["variants"], indent=2))
    (out / "run.json").write_text(json.dumps({k: v for k, v in result.items() if k != "variants"},
                                             indent=2))
    (out / "results.md").write_text(results_markdown(result))
    save_pareto_plot(result["variants"], out / "pareto.png")
    print(results_markdown(result))
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'pareto.png'}")


def cmd_bench_drift(args) -> None:
    from monitoring.calibration import calibrate, calibration_markdown
    from monitoring.drift import DriftConfig

    config = DriftConfig(**({"p_threshold": args.p_threshold} if args.p_threshold else {}))
    results = calibrate(config=config, stable_nights=args.nights, seed=args.seed,
                        progress=lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(calibration_markdown(results))
    print(calibration_markdown(results))
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}")


def cmd_gate_show(args) -> None:
    from storage.registry import active_policies, policy_as_dict

    with _sessions()() as session:
        policies = [policy_as_dict(p) for p in active_policies(session).values()]
    if args.json:
        _print_json(policies)
    else:
        _print_table(policies, ["device_class", "version", "max_mape_pct", "max_delta_baseline_pct",
                                "max_delta_champion_pct", "max_artifact_bytes", "max_latency_ms",
                                "created_by"])


def cmd_gate_set(args) -> None:
    from storage.registry import policy_as_dict, set_policy

    with _sessions()() as session, session.begin():
        policy = set_policy(
            session, args.device_class, by=_user(args.by),
            max_mape_pct=args.max_mape, max_delta_baseline_pct=args.max_delta_baseline,
            max_delta_champion_pct=args.max_delta_champion, max_artifact_bytes=args.max_bytes,
            max_latency_ms=args.max_latency_ms,
        )
        shown = policy_as_dict(policy)
    print(f"gate policy for {shown['device_class']} is now version {shown['version']}")


def cmd_models_list(args) -> None:
    from storage.registry import list_versions, version_as_dict

    with _sessions()() as session:
        rows = [version_as_dict(v) for v in list_versions(
            session, status=args.status, device_class=args.device_class)]
    if args.json:
        _print_json(rows)
        return
    for row in rows:
        row["passed_for"] = ",".join(row["passed_for"]) or "-"
    _print_table(rows, ["id", "as_of", "variant", "status", "artifact_bytes", "gzip_bytes",
                        "mape_pct", "latency_us_p50", "passed_for"])


def cmd_models_show(args) -> None:
    from storage.registry import get_version, version_as_dict

    with _sessions()() as session:
        data = version_as_dict(get_version(session, args.version), with_reasons=True)
    if args.json:
        _print_json(data)
        return
    for key, value in data.items():
        if key not in ("decisions", "hyperparams"):
            print(f"{key:>22}: {value}")
    for decision in data["decisions"]:
        verdict = "PASS" if decision["passed"] else "FAIL"
        print(f"\n{decision['device_class']} (policy v{decision['policy_version']}): {verdict}")
        for reason in decision["reasons"]:
            mark = "ok  " if reason["passed"] else "FAIL"
            print(f"  {mark} {reason['rule']}: observed {reason['observed']} limit {reason['limit']}"
                  + (f" ({reason['note']})" if reason["note"] else ""))


def cmd_keys_init(args) -> None:
    from storage.channel import init_signing_key

    settings = _settings()
    public, key_id = init_signing_key(settings.signing_key_path, force=args.force)
    print(f"release signing key {key_id}: private {settings.signing_key_path} (keep it here), "
          f"public {public} (give it to every device: --public-key)")


def cmd_promote(args) -> None:
    from storage.releases import ReleaseTarget, release_as_dict, release_version

    with _sessions()() as session, session.begin():
        release = release_version(
            session, ReleaseTarget.from_settings(_settings()), args.version, args.device_class,
            channel=args.channel, by=_user(args.by), reason=args.reason or "manual promotion")
        shown = release_as_dict(release)
    print(f"release {shown['id']}: version {shown['model_version']} ({shown['variant']}) on "
          f"{shown['device_class']}/{shown['channel']} for stores {shown['stores']}; "
          f"manifest {shown['manifest']}")


def cmd_rollback(args) -> None:
    from storage.releases import ReleaseTarget, release_as_dict, rollback

    with _sessions()() as session, session.begin():
        release = rollback(session, ReleaseTarget.from_settings(_settings()), args.device_class,
                           by=_user(args.by), reason=args.reason)
        shown = release and release_as_dict(release)
    if shown is None:
        print(f"{args.device_class}: canary withdrawn; there is no stable release to fall back to")
    else:
        print(f"{args.device_class}: release {shown['id']} republishes version "
              f"{shown['model_version']} ({shown['variant']}) on stable")


def cmd_releases_list(args) -> None:
    from storage.releases import release_as_dict, release_history

    with _sessions()() as session:
        rows = [release_as_dict(r) for r in release_history(session, args.device_class)]
    if args.json:
        _print_json(rows)
        return
    _print_table(rows, ["id", "device_class", "channel", "stores", "model_version", "variant",
                        "night", "released_at", "released_by", "ended_at", "end_reason"])


def cmd_alerts_list(args) -> None:
    from storage.alerts import alert_as_dict, list_alerts

    with _sessions()() as session:
        rows = [alert_as_dict(a) for a in list_alerts(session, only_open=args.open)]
    if args.json:
        _print_json(rows)
        return
    _print_table(rows, ["id", "kind", "severity", "message", "occurrences", "last_seen",
                        "acknowledged_by", "resolved_at"])


def cmd_alerts_show(args) -> None:
    from storage.alerts import alert_as_dict, get_alert

    with _sessions()() as session:
        data = alert_as_dict(get_alert(session, args.alert))
    if args.json:
        _print_json(data)
        return
    for key, value in data.items():
        print(f"{key:>16}: {value}")


def cmd_alerts_ack(args) -> None:
    from storage.alerts import acknowledge

    with _sessions()() as session, session.begin():
        alert = acknowledge(session, args.alert, by=args.by, note=args.note)
        print(f"alert {alert.id} acknowledged by {alert.acknowledged_by}")


# -- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shelfcast",
        description="Keep small LSTM demand forecasters fresh on store devices.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="write generated Kaggle-schema sales to a CSV")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--stores", type=int, default=5)
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--start", default="2013-01-01")
    p.add_argument("--end", default="2017-12-31")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shift", action="append", default=[], metavar="SPEC",
                   help="inject a shift: store=3,start=2017-06-01,factor=1.2[,item=5][,kind=promo]")
    p.set_defaults(handler=cmd_generate)

    p = sub.add_parser("ingest", help="validate a sales CSV, then load all rows or none")
    p.add_argument("file", type=Path)
    p.add_argument("--replace", action="store_true", help="overwrite stored rows that differ")
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser("nightly", help="run one night: ingest, drift, train, compress, gate, ship")
    p.add_argument("--as-of", help="the night's date (default: the last day with sales)")
    p.add_argument("--profile", choices=["quick", "full"], default="full")
    p.set_defaults(handler=cmd_nightly)

    p = sub.add_parser("demo", help="several generated nights end to end, drift on the last ones")
    p.add_argument("--nights", type=int, default=4)
    p.add_argument("--stores", type=int, default=3)
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--start", default="2015-01-01")
    p.add_argument("--end", default="2017-12-31")
    p.add_argument("--profile", choices=["quick", "full"], default="quick")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("bench", help="benchmarks")
    bench = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    b = bench.add_parser("article", help="reproduce the article's experiment on LiteRT")
    b.add_argument("--data", type=Path, help="Kaggle-schema CSV (default: generated, article shape)")
    b.add_argument("--stores", default="1-5")
    b.add_argument("--items", default="1-10")
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--profile", choices=["quick", "full"], default="full")
    b.add_argument("--out", default="bench-out/article")
    b.set_defaults(handler=cmd_bench_article)
    b = bench.add_parser("drift", help="drift calibration: false alerts on stable data, nights "
                                       "to detect a shift")
    b.add_argument("--nights", type=int, default=30, help="stable nights that must stay quiet")
    b.add_argument("--p-threshold", type=float, help="override the calibrated K-S p-value")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", default="bench-out/drift")
    b.set_defaults(handler=cmd_bench_drift)
    b = bench.add_parser("baseline", help="the baseline LSTM against the reference forecasts")
    b.add_argument("--data", type=Path, help="Kaggle-schema CSV (default: generated, 5x10)")
    b.add_argument("--profile", choices=["quick", "full"], default="full")
    b.add_argument("--units", type=int, default=64)
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=cmd_bench_baseline)

    p = sub.add_parser("models", help="list and show registered model versions")
    models = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    m = models.add_parser("list", help="model versions, newest first")
    m.add_argument("--status", help="candidate, approved, rejected, released or retired")
    m.add_argument("--device-class", help="only versions that passed the gate for this class")
    m.add_argument("--json", action="store_true")
    m.set_defaults(handler=cmd_models_list)
    m = models.add_parser("show", help="one version: figures, lineage, gate reasons")
    m.add_argument("version", type=int)
    m.add_argument("--json", action="store_true")
    m.set_defaults(handler=cmd_models_show)

    p = sub.add_parser("gate", help="show and set gate policies per device class")
    gate = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    g = gate.add_parser("show", help="the active policy of every device class")
    g.add_argument("--json", action="store_true")
    g.set_defaults(handler=cmd_gate_show)
    g = gate.add_parser("set", help="add a new policy version for a device class")
    g.add_argument("device_class")
    g.add_argument("--max-mape", type=float, help="absolute MAPE limit, percent")
    g.add_argument("--max-delta-baseline", type=float, help="MAPE points over this run's baseline")
    g.add_argument("--max-delta-champion", type=float, help="MAPE points over the released model")
    g.add_argument("--max-bytes", type=int, help="artifact bytes")
    g.add_argument("--max-latency-ms", type=float, help="LiteRT p50 for one forecast")
    g.add_argument("--by", help="who sets it (default: the OS user)")
    g.set_defaults(handler=cmd_gate_set)

    p = sub.add_parser("alerts", help="list, show and acknowledge alerts")
    alerts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = alerts.add_parser("list", help="alerts, newest first")
    a.add_argument("--open", action="store_true", help="only alerts not resolved yet")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_alerts_list)
    a = alerts.add_parser("show", help="one alert, whole")
    a.add_argument("alert", type=int)
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_alerts_show)
    a = alerts.add_parser("ack", help="acknowledge an alert (releases a fleet-promotion hold)")
    a.add_argument("alert", type=int)
    a.add_argument("--by", required=True)
    a.add_argument("--note")
    a.set_defaults(handler=cmd_alerts_ack)

    p = sub.add_parser("promote", help="release a model version to a device class")
    p.add_argument("version", type=int)
    p.add_argument("--device-class", required=True)
    p.add_argument("--channel", choices=["canary", "stable"], default="canary")
    p.add_argument("--by", help="who releases it (default: the OS user)")
    p.add_argument("--reason")
    p.set_defaults(handler=cmd_promote)

    p = sub.add_parser("rollback", help="undo the newest release of a device class")
    p.add_argument("--device-class", required=True)
    p.add_argument("--reason", required=True)
    p.add_argument("--by", help="who rolls back (default: the OS user)")
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser("releases", help="the release audit trail")
    releases = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = releases.add_parser("list", help="every release, newest first")
    r.add_argument("--device-class")
    r.add_argument("--json", action="store_true")
    r.set_defaults(handler=cmd_releases_list)

    p = sub.add_parser("keys", help="release-signing keys")
    keys = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    k = keys.add_parser("init", help="make the Ed25519 key that signs release manifests")
    k.add_argument("--force", action="store_true", help="replace an existing key")
    k.set_defaults(handler=cmd_keys_init)

    p = sub.add_parser("db", help="registry schema")
    db = p.add_subparsers(dest="db", required=True, metavar="ACTION")
    db.add_parser("upgrade", help="migrate the registry to the newest schema").set_defaults(
        handler=cmd_db_upgrade
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except CommandError as exc:
        print(f"shelfcast: {exc}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, OSError) as exc:
        first = str(exc)
        print(f"shelfcast: error: {first}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
