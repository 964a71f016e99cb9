"""Alerts in the registry: raise with dedup, resolve, acknowledge, list, and the
notification bookkeeping. The rules that decide when to alert live in `monitoring/`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from policy.records import AlertChanges
from storage.errors import Conflict, NotFound, RegistryError
from storage.models import Alert, utcnow

ALERT_KINDS = ("data_drift", "forecast_quality", "gate_failure", "flow_failure",
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
    if not by.strip():
        raise RegistryError("an acknowledgement needs a name (--by)")
    alert = get_alert(session, alert_id)
    if alert.acknowledged_at is not None:
        raise Conflict(f"alert {alert_id} was already acknowledged by {alert.acknowledged_by} "
                            f"at {alert.acknowledged_at.isoformat()}")
    alert.acknowledged_by, alert.acknowledged_at, alert.ack_note = by, utcnow(), note
    session.flush()
    return alert


def unnotified(session: Session) -> list[Alert]:
    """Open alerts whose news has not reached anyone yet (new, escalated, or failed before)."""
    return list(session.scalars(select(Alert).where(
        Alert.resolved_at.is_(None), Alert.notified_at.is_(None)).order_by(Alert.id)))


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
