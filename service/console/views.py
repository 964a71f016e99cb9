"""What each console page shows, as plain data: the page renders it, its JSON twin under
/api/ returns it. Everything is read through `storage/`."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from policy.summary import class_decisions, demand_line, gate_failures, variant_rows
from service.console.listing import Listing
from storage.alerts import (
    ALERT_KINDS,
    ALERT_STATES,
    SEVERITIES,
    alert_as_dict,
    alert_evidence,
    filter_alerts,
    needing_attention,
)
from storage.approvals import awaits_approval
from storage.devices import AGENT_UPGRADE, fleet_status
from storage.models import utcnow
from storage.nights import night_span, registered_night
from storage.overview import (
    actions_page,
    actors_and_actions,
    ancestors,
    best_error_by_night,
    drift_by_night,
    drift_report_on,
    latest_run,
    night_dates,
    promotions_since,
    releases_history,
    releases_on,
    releases_page,
    versions_page,
)
from storage.registry import VERSION_STATUSES, active_policies, get_version, policy_as_dict
from storage.registry import version_view as view_of_version
from storage.releases import open_releases, release_as_dict
from storage.sales import sales_date_range
from storage.silences import list_silences, silence_as_dict
from storage.users import action_as_dict

TREND_NIGHTS = 90  # nights the plots over nights look back
MODEL_SORTS = ("id", "as_of", "variant", "status", "artifact_bytes", "mape_pct", "wape_pct",
               "latency_us_p50")
FLEET_SORTS = ("health", "id", "store", "device_class", "last_seen")
AUDIT_SORTS = ("at", "actor", "action", "via")
RELEASE_SORTS = ("released_at", "as_of", "device_class", "channel", "model_version")


def _iso(value) -> str | None:
    return value and value.isoformat()


def duration_text(seconds: float) -> str:
    """A span as a person says it: "45 s", "2 min 31 s", "3 h 5 min", "4 d 2 h"."""
    seconds = round(seconds)
    for unit, size, smaller, smaller_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60),
                                              ("min", 60, "s", 1)):
        if seconds >= size:
            whole, rest = divmod(seconds, size)
            part = rest // smaller_size
            return f"{whole} {unit}" + (f" {part} {smaller}" if part else "")
    return f"{seconds} s"


def _ago_s(then: dt.datetime, now: dt.datetime) -> int:
    return max(0, round((now - then).total_seconds()))


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


def tonight(session: Session, *, now: dt.datetime | None = None) -> dict:
    """The newest night: status, when it ran and how long ago, how old its sales are, timings,
    variants, gate failures, what decided per class, the drift verdict, the night's releases
    and where each class's rollout stands."""
    now = now or utcnow()
    run = latest_run(session)
    if run is None:
        return {"night": None, "updated_at": now.isoformat(timespec="seconds")}
    night = registered_night(session, run.run_key, status=run.status)
    started_at, finished_at = night_span(run)
    last_sales_day = sales_date_range(session)[1] or run.data_end
    return {
        "night": {"run_key": run.run_key, "as_of": run.as_of.isoformat(), "status": run.status,
                  "start": run.start, "start_reason": run.start_reason,
                  "started_at": started_at.isoformat(timespec="seconds"),
                  "finished_at": finished_at.isoformat(timespec="seconds"),
                  "duration_s": round((finished_at - started_at).total_seconds(), 1),
                  "finished_ago_s": _ago_s(finished_at, now),
                  "last_sales_day": last_sales_day.isoformat(),
                  "sales_age_days": (now.date() - last_sales_day).days,
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
        "open_alerts": alert_badge(session),
        "error_trend": error_trend(session, run.as_of),
        "limits": gate_limits(session),
        "promotions": promotions(session, until=run.as_of),
        "updated_at": now.isoformat(timespec="seconds"),
    }


def gate_limits(session: Session) -> dict[str, dict]:
    """Per device class, the gate's error limit in each metric and its size limit (what the
    plots draw as thresholds)."""
    return {cls: {"mape_pct": p.max_error, "wape_pct": p.max_error, "mase": p.mase_max_error,
                  "artifact_bytes": p.max_artifact_bytes}
            for cls, p in active_policies(session).items()}


def promotions(session: Session, *, until: dt.date) -> list[dict]:
    """The promotions to the fleet (stable releases) over the plotted nights (the markers)."""
    return [{"as_of": r.as_of.isoformat(), "device_class": r.device_class, "release": r.id,
             "model_version": r.model_version_id}
            for r in promotions_since(session, until - dt.timedelta(days=TREND_NIGHTS))]


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
           device_class: str | None, listing: Listing) -> dict:
    """A page of versions: filtered by night, status and a class they passed for, searched by
    variant name, sorted and paged by `listing`."""
    found, total = versions_page(session, as_of=as_of, status=status or None,
                                 device_class=device_class or None, search=listing.search,
                                 sort=listing.sort, descending=listing.descending,
                                 offset=listing.offset, limit=listing.per_page)
    return {"filters": {"night": _iso(as_of), "status": status, "device_class": device_class},
            "nights": [d.isoformat() for d in night_dates(session)],
            "statuses": list(VERSION_STATUSES), "device_classes": list(active_policies(session)),
            "paging": listing.paging(total), "versions": [_listed(v) for v in found]}


def _page_of(rows: list, listing: Listing) -> tuple[list, dict]:
    """One page of rows already in memory, and its paging."""
    return rows[listing.offset:listing.offset + listing.per_page], listing.paging(len(rows))


def _listed(version) -> dict:
    """A version's row in the Models listing (what `models list` shows)."""
    return {"id": version.id, "as_of": version.run.as_of.isoformat(), "variant": version.variant,
            "status": version.status, "artifact_bytes": version.artifact_bytes,
            "mape_pct": round(version.mape_pct, 3), "wape_pct": round(version.wape_pct, 3),
            "latency_us_p50": round(version.latency_us_p50, 1),
            "passed_for": sorted(d.device_class for d in version.decisions if d.passed)}


def version(session: Session, version_id: int, *, prefect_ui_url: str | None = None) -> dict:
    """One version: figures, lineage (run and warm-start parents, the flow run that trained
    it), every gate reason, slices."""
    record = get_version(session, version_id)
    shown = view_of_version(record, details=True).as_dict()
    evaluation = shown.pop("evaluation") or {}
    return {**shown,
            "parents": [{"id": p.id, "variant": p.variant, "as_of": p.run.as_of.isoformat()}
                        for p in ancestors(session, record)],
            "run": {"run_key": record.run.run_key, "as_of": record.run.as_of.isoformat(),
                    "start": record.run.start,
                    "start_reason": record.run.start_reason,
                    "data_start": record.run.data_start.isoformat(),
                    "data_end": record.run.data_end.isoformat(),
                    "flow_run_href": flow_run_href(prefect_ui_url, (record.run.lineage or {})
                                                   .get("flow_run_id"))},
            "slices": {kind: _slices(evaluation.get(kind) or {}) for kind in ("stores", "items")},
            "download": f"/models/{record.id}/tflite"}


def _slices(scores: dict) -> list[dict]:
    return [{"id": key, **{m: round(v, 3) for m, v in figures.items()
                           if m in ("mape_pct", "wape_pct", "mase") and v is not None}}
            for key, figures in sorted(scores.items(), key=lambda kv: int(kv[0]))]


ALERTS_PER_PAGE = 25


def prefect_ui_url(settings) -> str | None:
    """The Prefect UI's base URL when one is configured (setting `prefect_ui_url`)."""
    return settings.prefect_ui_url.rstrip("/") if settings.prefect_ui_url else None


def flow_run_href(prefect_ui: str | None, flow_run_id: str | None) -> str | None:
    """The Prefect UI's page of a flow run, when both are known."""
    return f"{prefect_ui}/runs/flow-run/{flow_run_id}" if prefect_ui and flow_run_id else None


def alert_badge(session: Session) -> int:
    """The open-alert badge: open alerts nobody acknowledged and no active silence matches."""
    return len(needing_attention(session))


def alerts(session: Session, *, state: str = "open", kind: str | None = None,
           severity: str | None = None, page: int = 1,
           prefect_ui_url: str | None = None) -> dict:
    """Alerts newest first in one state (open, acknowledged, silenced, all), of one kind and
    severity when given, a page at a time; each with the silence that matches it and links to
    its evidence; and the silences now active."""
    rows, silenced = filter_alerts(session, state=state, kind=kind or None,
                                   severity=severity or None)
    pages = max(1, -(-len(rows) // ALERTS_PER_PAGE))
    page = min(max(page, 1), pages)
    shown = rows[(page - 1) * ALERTS_PER_PAGE:page * ALERTS_PER_PAGE]
    evidence = alert_evidence(session, shown)
    return {"filters": {"state": state, "kind": kind, "severity": severity},
            "states": list(ALERT_STATES), "kinds": list(ALERT_KINDS),
            "severities": list(SEVERITIES),
            "page": page, "pages": pages, "total": len(rows), "badge": alert_badge(session),
            "alerts": [{**alert_as_dict(a),
                        "silenced_by": a.id in silenced and silence_as_dict(silenced[a.id]),
                        "evidence": _evidence_links(evidence[a.id], prefect_ui_url)}
                       for a in shown],
            "silences": [silence_as_dict(s) for s in list_silences(session)]}


def _evidence_links(found: dict, prefect_ui: str | None) -> list[dict]:
    """An alert's evidence as (label, href) pairs a page links and a script follows."""
    links = []
    if found["drift_report"]:
        links.append({"label": f"{found['report_group']} drift report",
                      "href": f"/drift/{found['drift_report']}/{found['report_group']}.html"})
    if found["night"]:
        links.append({"label": f"night {found['night']}",
                      "href": f"/models?night={found['night']}"})
    if found["model_version"]:
        links.append({"label": f"version {found['model_version']}",
                      "href": f"/models/{found['model_version']}"})
    href = flow_run_href(prefect_ui, found["flow_run_id"])
    if href:
        links.append({"label": f"Prefect flow run {found['flow_run'] or ''}".strip(),
                      "href": href})
    elif prefect_ui and found["flow_run"]:
        # a night that failed before registering has only its flow run's name: the UI's run
        # list, where the name is one search away
        links.append({"label": f"Prefect run {found['flow_run']}", "href": f"{prefect_ui}/runs"})
    return links


def releases(session: Session) -> dict:
    classes = []
    for policy, state in zip(active_policies(session).values(), rollout_state(session),
                             strict=True):
        classes.append({**state, "policy": policy_as_dict(policy),
                        "history": [release_as_dict(r)
                                    for r in releases_page(session, policy.device_class)]})
    return {"classes": classes}


def release_history(session: Session, *, device_class: str | None, channel: str | None,
                    listing: Listing) -> dict:
    """Every release, filtered by class and channel, searched in who released it and why,
    sorted and paged."""
    found, total = releases_history(session, device_class=device_class or None,
                                    channel=channel or None, search=listing.search,
                                    sort=listing.sort, descending=listing.descending,
                                    offset=listing.offset, limit=listing.per_page)
    return {"filters": {"device_class": device_class or "", "channel": channel or ""},
            "device_classes": list(active_policies(session)), "paging": listing.paging(total),
            "releases": [release_as_dict(r) for r in found]}


FAILING, BEHIND, HEALTHY = "failing", "behind", "healthy"
HEALTH_ORDER = (FAILING, BEHIND, HEALTHY)


def device_health(device: dict, *, stale_after: dt.timedelta,
                  now: dt.datetime) -> tuple[str, list[str]]:
    """A device's health and why, in words: failing (its sync refused or failed, its smoke
    test failing, or it never reported), behind (no report lately, or an old release), or
    healthy."""
    failing, behind = [], []
    if AGENT_UPGRADE in device["problems"]:
        behind.append(f"its agent cannot feed release {device['expected_release_id'] or 'the new'}"
                      "'s input contract: upgrade the device agent (it keeps its model)")
    elif device["sync_result"] in ("refused", "failed"):
        failing.append(f"sync {device['sync_result']}"
                       + (f": {device['sync_reason']}" if device["sync_reason"] else ""))
    if device["smoke_test_ok"] is False:
        failing.append("its smoke test fails")
    if device["last_seen"] is None:
        failing.append("has never reported")
    elif "stale" in device["problems"]:
        silent_h = (now - dt.datetime.fromisoformat(device["last_seen"])).total_seconds() / 3600
        behind.append(f"no report for {silent_h:.0f} h (stale after "
                      f"{stale_after.total_seconds() / 3600:g} h)")
    if "old release" in device["problems"] and device["last_seen"] is not None:
        behind.append(f"runs release {device['release_id'] or 'none'}, should run "
                      f"{device['expected_release_id']}")
    health = FAILING if failing else BEHIND if behind else HEALTHY
    return health, failing + behind


def _device_order(sort: str):
    def key(device: dict) -> tuple:
        if sort == "health":
            return (HEALTH_ORDER.index(device["health"]), device["device_class"],
                    device["store"], device["id"])
        return device[sort] is None, device[sort] or 0, device["id"]
    return key


def fleet(session: Session, *, stale_after: dt.timedelta, listing: Listing,
          now: dt.datetime | None = None) -> dict:
    """Every device with its health and why: failing ones first, then those behind, then the
    healthy (or sorted by `listing`), searched by name, class, store or reason, paged."""
    now = now or utcnow()
    devices = []
    for status in fleet_status(session, stale_after=stale_after, now=now):
        device = status.as_dict()
        device["health"], device["why"] = device_health(device, stale_after=stale_after, now=now)
        devices.append(device)
    counts = {h: sum(d["health"] == h for d in devices) for h in HEALTH_ORDER}
    if listing.search:
        needle = listing.search.lower()
        devices = [d for d in devices if needle in " ".join(
            map(str, (d["name"] or "", d["device_class"], d["store"], d["id"], *d["why"]))
        ).lower()]
    devices.sort(key=_device_order(listing.sort), reverse=listing.descending)
    shown, paging = _page_of(devices, listing)
    return {"devices": shown, "paging": paging, "health": counts,
            "with_problems": counts[FAILING] + counts[BEHIND]}


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
            "promotions": promotions(session, until=until),
            "named": [{"kind": k, "id": i} for k, i in named],
            "reports": [_drift(r) for r in reversed(reports[-30:])]}


def audit(session: Session, *, actor: str | None, action: str | None,
          listing: Listing) -> dict:
    """Who did what: filtered by actor and action, searched in target and note, sorted, paged."""
    found, total = actions_page(session, actor=actor or None, action=action or None,
                                search=listing.search, sort=listing.sort,
                                descending=listing.descending, offset=listing.offset,
                                limit=listing.per_page)
    actors, names = actors_and_actions(session)
    return {"filters": {"actor": actor or "", "action": action or ""}, "actors": actors,
            "action_names": names, "paging": listing.paging(total),
            "actions": [action_as_dict(a) for a in found]}

