"""Alerts in the registry: raise with dedup, resolve, acknowledge, list, and the
notification bookkeeping. The rules that decide when to alert live in `monitoring/`."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from policy.records import AlertChanges
from storage.errors import Conflict, NotFound, RegistryError
from storage.models import Alert, AlertSilence, DriftReport, TrainingRun, utcnow
from storage.silences import active_silences, silencing

ALERT_KINDS = ("data_drift", "no_sales", "forecast_quality", "gate_failure", "flow_failure",
               "canary_rollback")
SEVERITIES = ("info", "warning", "severe")


def raise_alert(session: Session, *, kind: str, severity: str, scope: dict, dedup_key: str,
                message: str, link: str | None = None) -> tuple[Alert, bool]:
    """Open an alert, or update the open one with the same dedup key (one row per condition,
    however many nights it lasts). Returns (alert, created)."""
    if kind not in ALERT_KINDS:
        raise RegistryError(f"unknown alert kind {kind!r}; expected one of {ALERT_KINDS}")
    if severity not in SEVERITIES:
        raise RegistryError(f"unknown severity {severity!r}; expected one of {SEVERITIES}")
    alert = session.scalar(select(Alert).where(Alert.dedup_key == dedup_key,
                                               Alert.resolved_at.is_(None)))
    if alert is not None:
        alert.occurrences += 1
        alert.last_seen = utcnow()
        alert.message, alert.link, alert.scope = message, link, scope
        if SEVERITIES.index(severity) > SEVERITIES.index(alert.severity):
            # an escalation is news: notify again, and an ack of the milder alert no longer covers it
            if alert.acknowledged_at is not None:
                alert.ack_note = (f"{alert.ack_note or ''} [acknowledged as {alert.severity} by "
                                  f"{alert.acknowledged_by} at {alert.acknowledged_at.isoformat()}; "
                                  f"escalated to {severity}]").strip()
                alert.acknowledged_by = alert.acknowledged_at = None
            alert.severity = severity
            alert.notified_at = None
        session.flush()
        return alert, False
    alert = Alert(kind=kind, severity=severity, scope=scope, dedup_key=dedup_key, message=message,
                  link=link)
    session.add(alert)
    session.flush()
    return alert, True


def resolve_cleared(session: Session, *, kind: str, prefix: str, still_open: set[str]) -> list[Alert]:
    """Resolve the open alerts of `kind` whose dedup key starts with `prefix` and whose
    condition is no longer seen (its key is not in `still_open`)."""
    cleared = [a for a in open_alerts(session, kind=kind)
               if a.dedup_key.startswith(prefix) and a.dedup_key not in still_open]
    for alert in cleared:
        alert.resolved_at = utcnow()
    session.flush()
    return cleared


def apply_alert_changes(session: Session, changes: AlertChanges) -> list[Alert]:
    """Raise (or update) every alert in `changes`, then resolve what cleared; return the
    alerts raised."""
    raised = [raise_alert(session, kind=r.kind, severity=r.severity, scope=r.scope,
                          dedup_key=r.dedup_key, message=r.message, link=r.link)[0]
              for r in changes.raised]
    for resolve in changes.resolved:
        resolve_cleared(session, kind=resolve.kind, prefix=resolve.prefix,
                        still_open=set(resolve.keep))
    return raised


def open_alerts(session: Session, *, kind: str | None = None, severity: str | None = None,
                unacknowledged: bool = False) -> list[Alert]:
    stmt = select(Alert).where(Alert.resolved_at.is_(None))
    if kind:
        stmt = stmt.where(Alert.kind == kind)
    if severity:
        stmt = stmt.where(Alert.severity == severity)
    if unacknowledged:
        stmt = stmt.where(Alert.acknowledged_at.is_(None))
    return list(session.scalars(stmt.order_by(Alert.id)))


def list_alerts(session: Session, *, only_open: bool = False) -> list[Alert]:
    stmt = select(Alert)
    if only_open:
        stmt = stmt.where(Alert.resolved_at.is_(None))
    return list(session.scalars(stmt.order_by(Alert.id.desc())))


def get_alert(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    return alert


def acknowledge(session: Session, alert_id: int, *, by: str, note: str | None = None) -> Alert:
    """Acknowledge an open alert. The write is conditional (only while nobody has), so of two
    acknowledgements racing from two processes exactly one wins; the other is a Conflict."""
    if not by.strip():
        raise RegistryError("an acknowledgement needs a name (--by)")
    alert = get_alert(session, alert_id)
    won = session.execute(
        update(Alert).where(Alert.id == alert_id, Alert.acknowledged_at.is_(None))
        .values(acknowledged_by=by, acknowledged_at=utcnow(), ack_note=note)
        .execution_options(synchronize_session=False)).rowcount == 1
    session.refresh(alert)
    if not won:
        raise Conflict(f"alert {alert_id} was already acknowledged by {alert.acknowledged_by} "
                       f"at {alert.acknowledged_at.isoformat()}")
    return alert


def unnotified(session: Session) -> list[Alert]:
    """Open alerts whose news has not reached anyone yet (new, escalated, or failed before),
    leaving out those an active silence matches: they stay un-notified, so one still open
    when its silence ends is sent then."""
    pending = list(session.scalars(select(Alert).where(
        Alert.resolved_at.is_(None), Alert.notified_at.is_(None)).order_by(Alert.id)))
    silenced = silencing(pending, active_silences(session))
    return [alert for alert in pending if alert.id not in silenced]


def needing_attention(session: Session) -> list[Alert]:
    """Open alerts nobody has acknowledged and no active silence matches: the badge's count."""
    pending = open_alerts(session, unacknowledged=True)
    silenced = silencing(pending, active_silences(session))
    return [alert for alert in pending if alert.id not in silenced]


ALERT_STATES = ("open", "acknowledged", "silenced", "all")


def filter_alerts(session: Session, *, state: str = "open", kind: str | None = None,
                  severity: str | None = None) -> tuple[list[Alert], dict[int, AlertSilence]]:
    """Alerts newest first in one state: `open` (unresolved, unacknowledged, not silenced),
    `acknowledged` (unresolved), `silenced` (unresolved and matched by an active silence) or
    `all` (resolved ones too), of one kind and severity when given; with {alert id: its
    silence} for those an active silence matches."""
    if state not in ALERT_STATES:
        raise RegistryError(f"unknown alert state {state!r}; expected one of {ALERT_STATES}")
    if kind and kind not in ALERT_KINDS:
        raise RegistryError(f"unknown alert kind {kind!r}; expected one of {ALERT_KINDS}")
    if severity and severity not in SEVERITIES:
        raise RegistryError(f"unknown severity {severity!r}; expected one of {SEVERITIES}")
    stmt = select(Alert)
    if state != "all":
        stmt = stmt.where(Alert.resolved_at.is_(None))
    if kind:
        stmt = stmt.where(Alert.kind == kind)
    if severity:
        stmt = stmt.where(Alert.severity == severity)
    rows = list(session.scalars(stmt.order_by(Alert.last_seen.desc(), Alert.id.desc())))
    silenced = silencing([a for a in rows if a.resolved_at is None], active_silences(session))
    keep = {"open": lambda a: a.acknowledged_at is None and a.id not in silenced,
            "acknowledged": lambda a: a.acknowledged_at is not None,
            "silenced": lambda a: a.id in silenced,
            "all": lambda a: True}[state]
    return [alert for alert in rows if keep(alert)], silenced


def record_notification(alert: Alert, *, delivered: bool) -> None:
    alert.notify_attempts += 1
    if delivered:
        alert.notified_at = utcnow()


def alert_as_dict(alert: Alert) -> dict:
    iso = lambda value: value and value.isoformat()  # noqa: E731
    return {
        "id": alert.id, "kind": alert.kind, "severity": alert.severity, "scope": alert.scope,
        "message": alert.message, "link": alert.link, "dedup_key": alert.dedup_key,
        "occurrences": alert.occurrences, "first_seen": iso(alert.first_seen),
        "last_seen": iso(alert.last_seen), "acknowledged_by": alert.acknowledged_by,
        "acknowledged_at": iso(alert.acknowledged_at), "ack_note": alert.ack_note,
        "resolved_at": iso(alert.resolved_at), "notified_at": iso(alert.notified_at),
        "notify_attempts": alert.notify_attempts,
    }


def alert_evidence(session: Session, alerts: list[Alert]) -> dict[int, dict]:
    """Per alert, what it rests on: the drift report (id and group, store or item) its link
    names, its night (the report's, the run its scope names, else the newest night started
    before the alert was first seen), the model version its scope names, and the Prefect flow
    run (name) of a flow failure."""
    links = {a.link for a in alerts if a.link}
    reports = list(session.scalars(select(DriftReport).where(DriftReport.html_uri.in_(links)))) \
        if links else []
    by_link = {}
    for report in reports:
        for name, uri in ((report.details or {}).get("files") or {}).items():
            if name.endswith("_html"):
                by_link[uri] = (report, name.removesuffix("_html"))
        by_link.setdefault(report.html_uri, (report, "store"))
    found, lineages = {}, {}
    for alert in alerts:
        scope = alert.scope or {}
        report, group = by_link.get(alert.link, (None, None))
        night = report.as_of if report else None
        if night is None and scope.get("run_key"):
            night = session.scalar(select(TrainingRun.as_of).where(
                TrainingRun.run_key == scope["run_key"]))
        if night is None:
            night = session.scalar(select(TrainingRun.as_of).where(
                TrainingRun.started_at <= alert.first_seen)
                .order_by(TrainingRun.started_at.desc()).limit(1))
        version = scope.get("model_version")
        if night not in lineages:  # alerts of one night share its run: one query a night
            lineages[night] = session.scalar(
                select(TrainingRun.lineage).where(TrainingRun.as_of == night)
                .order_by(TrainingRun.id.desc()).limit(1)) if night else None
        lineage = lineages[night]
        found[alert.id] = {"drift_report": report and report.id, "report_group": group,
                           "night": night and night.isoformat(),
                           "model_version": int(version) if str(version).isdigit() else None,
                           "flow_run": scope.get("flow_run"),
                           "flow_run_id": (lineage or {}).get("flow_run_id")}
    return found
