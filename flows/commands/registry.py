"""The registry as release managers and ops use it: models, gate policies, releases, alerts."""

from __future__ import annotations

from flows.output import print_json, print_table, user
from policy.demand import DemandMix
from policy.limits import POLICY_FIELDS
from storage.catalog import get_catalog

POLICY_COLUMNS = ["device_class", "version", *(f.name for f in POLICY_FIELDS),
                  "require_approval", "created_by"]


def audit(session, actor: str, action: str, target: str, note: str | None = None) -> None:
    """Record a CLI write in the audit trail, under the `--by` name it was given."""
    from storage.users import record_action

    record_action(session, actor=actor, via="cli", action=action, target=target, note=note or "")


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
    if args.json:
        print_json(rows)
        return
    print_table(rows, ["id", "kind", "severity", "message", "occurrences", "last_seen",
                       "acknowledged_by", "resolved_at"])


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
