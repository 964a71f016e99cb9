"""What each console page shows, as plain data: the page renders it, its JSON twin under
/api/ returns it. Everything is read through `storage/`."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from policy.summary import class_decisions, demand_line, gate_failures, variant_rows
from storage.alerts import alert_as_dict, open_alerts
from storage.approvals import awaits_approval
from storage.devices import fleet_status
from storage.nights import registered_night
from storage.overview import (
    alert_history,
    ancestors,
    best_error_by_night,
    drift_by_night,
    drift_report_on,
    latest_run,
    night_dates,
    releases_on,
    releases_page,
    versions_page,
)
from storage.registry import VERSION_STATUSES, active_policies, get_version, policy_as_dict
from storage.registry import version_view as view_of_version
from storage.releases import open_releases, release_as_dict
from storage.users import action_as_dict, list_actions

TREND_NIGHTS = 90  # nights the plots over nights look back


def _iso(value) -> str | None:
    return value and value.isoformat()


def _drift(report) -> dict | None:
    if report is None:
        return None
    details = report.details or {}
    return {"id": report.id, "as_of": report.as_of.isoformat(), "drifted": report.drifted,
            "drift_share": round(report.drift_share, 4), "drifted_columns": report.drifted_columns,
            "summary": details.get("summary", ""), "findings": details.get("findings", []),
            "reports": sorted((details.get("files") or {}).keys() & {"store_html", "item_html"})}


def error_trend(session: Session, until: dt.date) -> dict[str, list]:
    series = best_error_by_night(session, since=until - dt.timedelta(days=TREND_NIGHTS))
    return {cls: [[d.isoformat(), round(e, 3)] for d, e in values] for cls, values in series.items()}


def tonight(session: Session) -> dict:
    """The newest night: status, timings, variants, gate failures, what decided per class, the
    drift verdict, the night's releases and where each class's rollout stands."""
    run = latest_run(session)
    if run is None:
        return {"night": None}
    night = registered_night(session, run.run_key, status=run.status)
    return {
        "night": {"run_key": run.run_key, "as_of": run.as_of.isoformat(), "status": run.status,
                  "start": run.start, "start_reason": run.start_reason,
                  "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
                  "series": run.series_count, "train_windows": run.train_windows,
                  "test_windows": run.test_windows, "demand": demand_line(night),
                  # what the night's gate measured (MASE where `auto` found sparse demand)
                  "gate_metric": next((d.reasons[0]["rule"] for v in night.versions
                                       for d in v.decisions or []), "mape_pct")},
        "timings_s": {k: round(v, 1) for k, v in (run.timings_s or {}).items()},
        "variants": variant_rows(night),
        "decisions": class_decisions(night),
        "gate_failures": gate_failures(night),
        "drift": _drift(drift_report_on(session, run.as_of)),
        "releases": [release_as_dict(r) for r in releases_on(session, run.as_of)],
        "rollout": rollout_state(session),
        "open_alerts": len(open_alerts(session)),
        "error_trend": error_trend(session, run.as_of),
    }


def rollout_state(session: Session) -> list[dict]:
    """Per device class what stable and canary run, and what the canary waits for."""
    state = []
    for device_class, policy in active_policies(session).items():
        current = open_releases(session, device_class)
        canary = current.get("canary")
        state.append({
            "device_class": device_class,
            "stable": current.get("stable") and release_as_dict(current["stable"]),
            "canary": canary and release_as_dict(canary),
            "waits_for_approval": canary is not None
            and awaits_approval(session, canary, policy=policy) is not None})
    return state


def models(session: Session, *, as_of: dt.date | None, status: str | None,
           device_class: str | None) -> dict:
    rows = [_listed(v) for v in versions_page(session, as_of=as_of, status=status or None,
                                              device_class=device_class or None)]
    return {"filters": {"night": _iso(as_of), "status": status, "device_class": device_class},
            "nights": [d.isoformat() for d in night_dates(session)],
            "statuses": list(VERSION_STATUSES), "device_classes": list(active_policies(session)),
            "versions": rows}


def _listed(version) -> dict:
    """A version's row in the Models listing (what `models list` shows)."""
    return {"id": version.id, "as_of": version.run.as_of.isoformat(), "variant": version.variant,
            "status": version.status, "artifact_bytes": version.artifact_bytes,
            "mape_pct": round(version.mape_pct, 3), "wape_pct": round(version.wape_pct, 3),
            "latency_us_p50": round(version.latency_us_p50, 1),
            "passed_for": sorted(d.device_class for d in version.decisions if d.passed)}


def version(session: Session, version_id: int) -> dict:
    """One version: figures, lineage (run and warm-start parents), every gate reason, slices."""
    record = get_version(session, version_id)
    shown = view_of_version(record, details=True).as_dict()
    evaluation = shown.pop("evaluation") or {}
    return {**shown,
            "parents": [{"id": p.id, "variant": p.variant, "as_of": p.run.as_of.isoformat()}
                        for p in ancestors(session, record)],
            "run": {"run_key": record.run.run_key, "start": record.run.start,
                    "start_reason": record.run.start_reason,
                    "data_start": record.run.data_start.isoformat(),
                    "data_end": record.run.data_end.isoformat()},
            "slices": {kind: _slices(evaluation.get(kind) or {}) for kind in ("stores", "items")},
            "download": f"/models/{record.id}/tflite"}


def _slices(scores: dict) -> list[dict]:
    return [{"id": key, **{m: round(v, 3) for m, v in figures.items()
                           if m in ("mape_pct", "wape_pct", "mase") and v is not None}}
            for key, figures in sorted(scores.items(), key=lambda kv: int(kv[0]))]


def alerts(session: Session) -> dict:
    """Open alerts first (unacknowledged, then by severity), then the history."""
    order = {"severe": 0, "warning": 1, "info": 2}
    current = sorted(open_alerts(session), key=lambda a: (a.acknowledged_at is not None,
                                                          order.get(a.severity, 3), -a.id))
    return {"open": [alert_as_dict(a) for a in current],
            "history": [alert_as_dict(a) for a in alert_history(session)]}


def releases(session: Session) -> dict:
    classes = []
    for policy, state in zip(active_policies(session).values(), rollout_state(session),
                             strict=True):
        classes.append({**state, "policy": policy_as_dict(policy),
                        "history": [release_as_dict(r)
                                    for r in releases_page(session, policy.device_class)]})
    return {"classes": classes}


def fleet(session: Session, *, stale_after: dt.timedelta) -> dict:
    # the devices with a problem first, so the page opens on what needs a person
    devices = sorted((s.as_dict() for s in fleet_status(session, stale_after=stale_after)),
                     key=lambda d: not d["problems"])
    return {"devices": devices, "with_problems": sum(bool(d["problems"]) for d in devices)}


def drift(session: Session, *, store: int | None = None, item: int | None = None) -> dict:
    """Drift over the nights: the drifted share per night, and for one store or item its level
    change on the nights the check named it."""
    run = latest_run(session)
    until = run.as_of if run else dt.date.today()
    reports = drift_by_night(session, since=until - dt.timedelta(days=TREND_NIGHTS))
    member = ("store", store) if store is not None else ("item", item) if item is not None else None
    trend = []
    for report in reports:
        entry = {"as_of": report.as_of.isoformat(), "drift_share": round(report.drift_share, 4),
                 "drifted": report.drifted, "id": report.id}
        if member:
            found = [f for f in (report.details or {}).get("findings", [])
                     if f["kind"] == member[0] and int(f["id"]) == member[1]]
            entry["level_change_pct"] = found[0]["level_change_pct"] if found else 0.0
        trend.append(entry)
    named = sorted({(f["kind"], int(f["id"])) for r in reports
                    for f in (r.details or {}).get("findings", [])})
    return {"member": member and {"kind": member[0], "id": member[1]}, "trend": trend,
            "named": [{"kind": k, "id": i} for k, i in named],
            "reports": [_drift(r) for r in reversed(reports[-30:])]}


def audit(session: Session) -> dict:
    return {"actions": [action_as_dict(a) for a in list_actions(session)]}

