"""Alert rules (what a night's checks mean for ops) and notifications through Apprise.

The rules turn drift checks, quality scores and gate results into alerts through
`storage/alerts.py`: one alert per open condition, updated each night it lasts and resolved
when it clears. Notifications go out after the alerts are committed, so a failed delivery
never loses an alert: it stays un-notified and is retried the next time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from monitoring.drift import DriftCheck
from monitoring.quality import QualityScore
from storage.alerts import (
    open_alerts,
    raise_alert,
    record_notification,
    resolve_cleared,
    unnotified,
)

RETRY_DELAYS_S = (0.5, 2.0)  # within one delivery; the next night tries again after that


def drift_alerts(session: Session, check: DriftCheck, *, report_link: str | None) -> list:
    """One data_drift alert per drifted store or item; those that no longer drift are resolved."""
    raised = []
    for finding in check.findings:
        alert, _ = raise_alert(
            session, kind="data_drift", severity=finding.severity,
            scope={finding.kind: finding.id, "columns": finding.drifted_columns,
                   "level_change_pct": finding.level_change_pct},
            dedup_key=f"data_drift:{finding.kind}:{finding.id}",
            message=f"{finding.message} (current {check.current_start}..{check.current_end})",
            link=report_link)
        raised.append(alert)
    resolve_cleared(session, kind="data_drift", prefix="data_drift:",
                    still_open={a.dedup_key for a in raised})
    return raised


def quality_key(device_class: str, model_version: int) -> str:
    return f"forecast_quality:{device_class}:v{model_version}"


def quality_alerts(session: Session, scores: Sequence[QualityScore], *,
                   unscored: Sequence[tuple[str, int]] = ()) -> list:
    """A forecast_quality alert per released version whose rolling MAPE is over its gate MAPE
    plus the margin. Versions not scored tonight (no new actuals) keep their alert."""
    raised = []
    for score in scores:
        if score.degraded:
            over = score.rolling_mape_pct - score.gate_mape_pct
            alert, _ = raise_alert(
                session, kind="forecast_quality",
                severity="severe" if over > 2 * score.margin_pct else "warning",
                scope={"device_class": score.device_class, "model_version": score.model_version,
                       "rolling_mape_pct": round(score.rolling_mape_pct, 3),
                       "gate_mape_pct": round(score.gate_mape_pct, 3)},
                dedup_key=quality_key(score.device_class, score.model_version),
                message=score.message)
            raised.append(alert)
    keep = {a.dedup_key for a in raised} | {quality_key(c, v) for c, v in unscored}
    resolve_cleared(session, kind="forecast_quality", prefix="forecast_quality:", still_open=keep)
    return raised


def gate_alerts(session: Session, *, device_classes: Sequence[str], passed: Sequence[str],
                run_key: str) -> list:
    """A gate_failure alert for each device class that got no approved variant tonight."""
    raised = []
    for device_class in device_classes:
        if device_class not in passed:
            alert, _ = raise_alert(
                session, kind="gate_failure", severity="warning",
                scope={"device_class": device_class, "run_key": run_key},
                dedup_key=f"gate_failure:{device_class}",
                message=f"{device_class}: no variant of run {run_key} passed the gate; "
                        "the device class keeps its current model")
            raised.append(alert)
    resolve_cleared(session, kind="gate_failure", prefix="gate_failure:",
                    still_open={a.dedup_key for a in raised})
    return raised


def flow_failure_alert(session: Session, *, flow_run: str, error: str):
    alert, _ = raise_alert(session, kind="flow_failure", severity="severe",
                           scope={"flow_run": flow_run}, dedup_key="flow_failure:nightly-retrain",
                           message=f"nightly run {flow_run} failed: {error}")
    return alert


def clear_flow_failure(session: Session) -> list:
    """A night that got this far resolves the last failure's alert."""
    return resolve_cleared(session, kind="flow_failure", prefix="flow_failure:", still_open=set())


def fleet_holds(session: Session) -> list[str]:
    """Why automatic promotion to the whole fleet must wait: severe drift nobody has
    acknowledged yet."""
    return [f"severe drift alert {a.id} ({a.message}) is not acknowledged: "
            f"`shelfcast alerts ack {a.id} --by NAME`"
            for a in open_alerts(session, kind="data_drift", severity="severe", unacknowledged=True)]


def canary_blockers(session: Session, device_class: str, model_version: int) -> list[str]:
    key = quality_key(device_class, model_version)
    return [f"forecast-quality alert {a.id} is open: {a.message}"
            for a in open_alerts(session, kind="forecast_quality") if a.dedup_key == key]


# -- notifications ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    alert_id: int
    delivered: bool
    attempts: int
    failed_urls: list[str]


def apprise_send(url: str, title: str, body: str) -> bool:
    """Send one notification to one Apprise URL (Slack, Teams, mailto, json:// webhook ...)."""
    import apprise

    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise ValueError(f"not a usable Apprise URL: {url!r}")
    return bool(notifier.notify(title=title, body=body))


def _send_with_retries(url: str, title: str, body: str, send: Callable, delays: Sequence[float]) -> int:
    """Attempts used until the URL took it; 0 when every attempt failed."""
    for attempt in range(1, len(delays) + 2):
        if send(url, title, body):
            return attempt
        if attempt <= len(delays):
            time.sleep(delays[attempt - 1])
    return 0


def notify_pending(session: Session, urls: Sequence[str], *, send: Callable = apprise_send,
                   delays: Sequence[float] = RETRY_DELAYS_S) -> list[Delivery]:
    """Send every open alert not yet notified to every URL, retrying each URL; an alert counts
    as notified only when every URL took it. The caller commits the bookkeeping."""
    if not urls:
        return []
    deliveries = []
    for alert in unnotified(session):
        title = f"[shelfcast {alert.severity}] {alert.kind.replace('_', ' ')}"
        body = alert.message + (f"\nreport: {alert.link}" if alert.link else "") + \
            f"\nacknowledge: shelfcast alerts ack {alert.id} --by NAME"
        attempts, failed = 0, []
        for url in urls:
            used = _send_with_retries(url, title, body, send, delays)
            attempts += used or len(delays) + 1
            if not used:
                failed.append(url)
        record_notification(alert, delivered=not failed)
        deliveries.append(Delivery(alert.id, not failed, attempts, failed))
    session.flush()
    return deliveries
