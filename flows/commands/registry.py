"""The registry as release managers and ops use it: models, gate policies, releases, alerts."""

from __future__ import annotations

import argparse

from flows.commands.audit import record as audit
from flows.output import print_json, print_table, record_id, user
from policy.demand import DemandMix
from policy.limits import METRIC_CHOICES, POLICY_FIELDS
from storage.catalog import get_catalog

POLICY_COLUMNS = ["device_class", "version", *(f.name for f in POLICY_FIELDS),
                  "require_approval", "created_by"]


def gate_show(args) -> None:
    from storage.registry import active_policies, policy_as_dict

    with get_catalog().session() as session:
        policies = [policy_as_dict(p) for p in active_policies(session).values()]
    if args.json:
        print_json(policies)
    else:
        print_table(policies, POLICY_COLUMNS)


def gate_suggest(args) -> None:
    from compression.variants import BASELINE
    from storage.nights import suggest_for_class

    if args.nights < 1:
        raise ValueError(f"--nights must be at least 1, got {args.nights}")
    with get_catalog().session() as session:
        proposal, replay = suggest_for_class(session, args.device_class,
                                             baseline_variant=BASELINE, nights=args.nights)
    rows = [{"field": s.field, "current": s.current, "suggested": s.suggested,
             "why": s.why} for s in proposal.suggestions]
    if args.json:
        print_json({"device_class": args.device_class, "metric": proposal.metric,
                    "best_reference": proposal.reference,
                    "reference_error": proposal.reference_error, "limits": rows,
                    "notes": proposal.notes, "nights": replay})
        return
    print(f"{args.device_class}: the gate measures {proposal.metric}; the best reference is "
          f"{proposal.reference} ({proposal.reference_error:.4g}) on the newest night")
    print_table(rows, ["field", "current", "suggested", "why"])
    for note in proposal.notes:
        print(f"note: {note}")
    print(f"\nversions passing the class's own rules (size and latency included), now and "
          f"under the suggestion, on the last {len(replay)} night(s):")
    print_table(replay, ["as_of", "passes_now", "would_pass", "variants", "best_would_pass"])
    changed = [s for s in proposal.suggestions if s.changes]
    if changed:
        flags = " ".join(f"--{s.field.replace('_', '-')} {s.suggested:g}" for s in changed)
        print(f"\nnothing changed; to adopt it: shelfcast gate set {args.device_class} {flags}")
    else:
        print("\nthe current limits already let through every model that beats the references")


def gate_set(args) -> None:
    from storage.registry import set_policy

    with get_catalog().unit_of_work() as session:
        policy = set_policy(
            session, args.device_class, by=user(args.by), new_class=args.new_class,
            require_approval=args.require_approval,
            **{f.name: getattr(args, f.name) for f in POLICY_FIELDS})
        device_class, version = policy.device_class, policy.version
        audit(session, policy.created_by, "gate.set", f"{device_class} policy {version}")
    print(f"gate policy for {device_class} is now version {version}")


def models_list(args) -> None:
    from storage.registry import list_versions, version_view

    with get_catalog().session() as session:
        rows = [version_view(v).as_dict() for v in list_versions(
            session, status=args.status, device_class=args.device_class)]
    if args.json:
        print_json(rows)
        return
    for row in rows:
        row["passed_for"] = ",".join(row["passed_for"]) or "-"
    print_table(rows, ["id", "as_of", "variant", "status", "artifact_bytes", "gzip_bytes",
                       "mape_pct", "wape_pct", "latency_us_p50", "passed_for"])


def models_show(args) -> None:
    from storage.registry import get_version, version_view

    with get_catalog().session() as session:
        data = version_view(get_version(session, args.version), details=True).as_dict()
    if args.json:
        print_json(data)
        return
    first = ["id", "variant", "status", "as_of", "run_id", "technique", "base_variant"]
    for key in first + [k for k in data if k not in first]:
        if key not in ("decisions", "hyperparams", "lineage", "evaluation", "demand"):
            print(f"{key:>22}: {data[key]}")
    if data.get("demand"):
        print(f"{'demand':>22}: {DemandMix.from_dict(data['demand']).statement()}")
    print_evaluation(data.get("evaluation") or {})
    lineage = data["lineage"]
    print("\nlineage")
    print(f"  code: {lineage.get('code_version')} (commit {lineage.get('git_commit') or 'unknown'}"
          + (", uncommitted changes" if lineage.get("git_dirty") else "") + ")")
    for name, version in (lineage.get("packages") or {}).items():
        print(f"  {name}: {version or 'not installed'}")
    for decision in data["decisions"]:
        verdict = "PASS" if decision["passed"] else "FAIL"
        print(f"\n{decision['device_class']} (policy v{decision['policy_version']}): {verdict}")
        for reason in decision["reasons"]:
            mark = "ok  " if reason["passed"] else "FAIL"
            print(f"  {mark} {reason['rule']}: observed {reason['observed']} limit {reason['limit']}"
                  + (f" ({reason['note']})" if reason["note"] else ""))


def print_evaluation(evaluation: dict) -> None:
    """Figures per forecast origin, store and item (MAPE, WAPE, MASE) as tables."""
    if not evaluation:
        return
    columns = ["slice", "mape_pct", "wape_pct", "mase", "zero_share", "windows"]

    def rows(label: str, scores: dict) -> list[dict]:
        return [{"slice": f"{label} {key}", **{c: _round(v) for c, v in s.items()}}
                for key, s in scores.items()]

    print("\nfigures on the night's held-out windows (LiteRT)")
    print_table([{"slice": "all", **{c: _round(v) for c, v in evaluation["overall"].items()}}]
                + rows("origin", dict(enumerate(evaluation["origins"], start=1)))
                + rows("store", evaluation["stores"]) + rows("item", evaluation["items"]),
                columns)


def _round(value):
    return round(value, 3) if isinstance(value, float) else value


def promote(args) -> None:
    from storage.releases import ReleaseTarget, release_as_dict, release_version

    catalog = get_catalog()
    with catalog.unit_of_work() as session:
        release = release_version(
            session, ReleaseTarget.from_settings(catalog.settings), args.version,
            args.device_class, channel=args.channel, by=user(args.by),
            reason=args.reason or "manual promotion")
        shown = release_as_dict(release)
        audit(session, release.released_by, "release.promote", f"release {release.id}",
              release.reason)
    print(f"release {shown['id']}: version {shown['model_version']} ({shown['variant']}) on "
          f"{shown['device_class']}/{shown['channel']} for stores {shown['stores']}; "
          f"manifest {shown['manifest']}")


def rollback(args) -> None:
    from storage.releases import ReleaseTarget, release_as_dict
    from storage.releases import rollback as roll_back

    catalog = get_catalog()
    with catalog.unit_of_work() as session:
        release = roll_back(session, ReleaseTarget.from_settings(catalog.settings),
                            args.device_class, by=user(args.by), reason=args.reason)
        shown = release and release_as_dict(release)
        audit(session, user(args.by), "release.rollback", args.device_class, args.reason)
    if shown is None:
        print(f"{args.device_class}: canary withdrawn; there is no stable release to fall back to")
    else:
        print(f"{args.device_class}: release {shown['id']} republishes version "
              f"{shown['model_version']} ({shown['variant']}) on stable")


def releases_list(args) -> None:
    from storage.releases import release_as_dict, release_history

    with get_catalog().session() as session:
        rows = [release_as_dict(r) for r in release_history(session, args.device_class)]
    if args.json:
        print_json(rows)
        return
    print_table(rows, ["id", "device_class", "channel", "stores", "model_version", "variant",
                       "as_of", "released_at", "released_by", "approved_by", "ended_at",
                       "end_reason"])


def alerts_list(args) -> None:
    from storage.alerts import alert_as_dict, list_alerts

    with get_catalog().session() as session:
        rows = [alert_as_dict(a) for a in list_alerts(session, only_open=args.open)]
    _rows(rows, ["id", "kind", "severity", "message", "occurrences", "last_seen",
                 "acknowledged_by", "resolved_at"], as_json=args.json)


def _rows(rows: list[dict], columns: list[str], *, as_json: bool) -> None:
    """An alerts listing: JSON for scripts, else a table of `columns`."""
    if as_json:
        print_json(rows)
    else:
        print_table(rows, columns)


def alerts_show(args) -> None:
    from storage.alerts import alert_as_dict, get_alert

    with get_catalog().session() as session:
        data = alert_as_dict(get_alert(session, args.alert))
    if args.json:
        print_json(data)
        return
    for key, value in data.items():
        print(f"{key:>16}: {value}")


def alerts_ack(args) -> None:
    from storage.alerts import acknowledge

    with get_catalog().unit_of_work() as session:
        alert = acknowledge(session, args.alert, by=args.by, note=args.note)
        alert_id, by = alert.id, alert.acknowledged_by
        audit(session, by, "alert.ack", f"alert {alert_id}", args.note)
    print(f"alert {alert_id} acknowledged by {by}")


def alerts_silence(args) -> None:
    import datetime as dt

    from policy.silences import Matchers
    from storage.silences import create_silence

    try:
        ends_at = args.until and dt.datetime.fromisoformat(args.until)
    except ValueError:
        raise ValueError(f"--until {args.until!r}: expected an ISO time with its zone, e.g. "
                         "2026-12-08T09:00+00:00") from None
    matchers = Matchers(args.kind, args.store, args.item, args.device_class)
    with get_catalog().unit_of_work() as session:
        silence = create_silence(session, matchers, by=args.by, reason=args.reason,
                                 duration=args.duration, ends_at=ends_at or None)
        silence_id, until = silence.id, silence.ends_at.isoformat()
        audit(session, args.by, "silence.create", f"silence {silence_id}",
              f"{matchers.describe()} until {until}: {args.reason}")
    print(f"silence {silence_id} until {until}: {matchers.describe()}")


def alerts_silences(args) -> None:
    from storage.silences import list_silences, silence_as_dict

    with get_catalog().session() as session:
        rows = [silence_as_dict(s) for s in list_silences(session, include_ended=args.all)]
    _rows(rows, ["id", "matchers", "starts_at", "ends_at", "created_by", "reason", "ended_by",
                 "active"], as_json=args.json)


def alerts_unsilence(args) -> None:
    from storage.silences import end_silence

    with get_catalog().unit_of_work() as session:
        silence = end_silence(session, args.silence, by=args.by)
        audit(session, args.by, "silence.end", f"silence {silence.id}", silence.reason)
    print(f"silence {args.silence} ended by {args.by}")


def add_parsers(sub) -> None:
    """This module's commands on the `shelfcast` parser's subcommands `sub`."""
    from flows.commands import people  # releases approve

    p = sub.add_parser("models", help="list and show registered model versions")
    models = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    m = models.add_parser("list", help="model versions, newest first")
    m.add_argument("--status", help="candidate, approved, rejected, released or retired")
    m.add_argument("--device-class", help="only versions that passed the gate for this class")
    m.add_argument("--json", action="store_true")
    m.set_defaults(handler=models_list)
    m = models.add_parser("show", help="one version: figures, lineage, gate reasons")
    m.add_argument("version", type=record_id)
    m.add_argument("--json", action="store_true")
    m.set_defaults(handler=models_show)

    p = sub.add_parser("gate", help="show and set gate policies per device class")
    gate = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    g = gate.add_parser("show", help="the active policy of every device class")
    g.add_argument("--json", action="store_true")
    g.set_defaults(handler=gate_show)
    g = gate.add_parser("suggest", help="limits the newest night's figures call for, and what "
                        "they would have let through on the last nights (changes nothing)")
    g.add_argument("device_class")
    g.add_argument("--nights", type=int, default=7, help="nights to replay (default 7)")
    g.add_argument("--json", action="store_true")
    g.set_defaults(handler=gate_suggest)
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
    g.set_defaults(handler=gate_set)

    p = sub.add_parser("alerts", help="list, show, acknowledge and silence alerts")
    alerts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = alerts.add_parser("list", help="alerts, newest first")
    a.add_argument("--open", action="store_true", help="only alerts not resolved yet")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=alerts_list)
    a = alerts.add_parser("show", help="one alert, whole")
    a.add_argument("alert", type=record_id)
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=alerts_show)
    a = alerts.add_parser("ack", help="acknowledge an alert (releases a fleet-promotion hold)")
    a.add_argument("alert", type=record_id)
    a.add_argument("--by", required=True)
    a.add_argument("--note")
    a.set_defaults(handler=alerts_ack)
    a = alerts.add_parser("silence", help="silence matching alerts for a while, with a reason "
                          "(not counted as open, not notified)")
    a.add_argument("kind", help="the alert kind, e.g. data_drift")
    a.add_argument("--store", type=record_id, help="only alerts about this store")
    a.add_argument("--item", type=record_id, help="only alerts about this item")
    a.add_argument("--device-class", help="only alerts about this device class")
    when = a.add_mutually_exclusive_group(required=True)
    when.add_argument("--for", dest="duration", help="how long: 30m, 1h, 4h, 1d, 2w")
    when.add_argument("--until", help="when it ends: an ISO time with its zone")
    a.add_argument("--reason", required=True)
    a.add_argument("--by", required=True)
    a.set_defaults(handler=alerts_silence)
    a = alerts.add_parser("silences", help="the active silences, newest first")
    a.add_argument("--all", action="store_true", help="ended silences too")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=alerts_silences)
    a = alerts.add_parser("unsilence", help="end a silence now")
    a.add_argument("silence", type=record_id)
    a.add_argument("--by", required=True)
    a.set_defaults(handler=alerts_unsilence)

    p = sub.add_parser("promote", help="release a model version to a device class")
    p.add_argument("version", type=record_id)
    p.add_argument("--device-class", required=True)
    p.add_argument("--channel", choices=["canary", "stable"], default="canary")
    p.add_argument("--by", help="who releases it (default: the OS user)")
    p.add_argument("--reason")
    p.set_defaults(handler=promote)

    p = sub.add_parser("rollback", help="undo the newest release of a device class")
    p.add_argument("--device-class", required=True)
    p.add_argument("--reason", required=True)
    p.add_argument("--by", help="who rolls back (default: the OS user)")
    p.set_defaults(handler=rollback)

    p = sub.add_parser("releases", help="the release audit trail")
    releases = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = releases.add_parser("list", help="every release, newest first")
    r.add_argument("--device-class")
    r.add_argument("--json", action="store_true")
    r.set_defaults(handler=releases_list)
    r = releases.add_parser("approve", help="approve the open canary for the fleet (device "
                                            "classes whose gate policy requires approval)")
    r.add_argument("release", type=record_id)
    r.add_argument("--by", help="who approves it (default: the OS user)")
    r.add_argument("--note")
    r.set_defaults(handler=people.releases_approve)
