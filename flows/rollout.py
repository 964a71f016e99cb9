"""After the gate, as plain functions the flow's tasks wrap: each class's staged rollout,
alerts delivered to ops, and the night's marker that lets the next night report one that died
unrecorded."""

from __future__ import annotations

from pathlib import Path

from policy.records import CanaryErrors, RegisteredNight
from storage.catalog import Catalog


def begin_night(catalog: Catalog, flow_run: str) -> str:
    """Record a flow_failure alert for every earlier night that stopped without telling the
    registry (killed hard, or failed while the registry was down), then mark this one as
    running."""
    from monitoring.alerts import flow_failure_changes
    from storage import night_log
    from storage.alerts import apply_alert_changes

    failures = night_log.unrecorded_failures(catalog.home, running=flow_run)
    if failures:
        with catalog.unit_of_work() as session:
            for failure in failures:
                apply_alert_changes(session, flow_failure_changes(flow_run=failure.flow_run,
                                                                  error=failure.error))
        for failure in failures:
            night_log.end_night(failure.marker)
    return str(night_log.begin_night(catalog.home, flow_run))


def advance_rollouts(catalog: Catalog, night: RegisteredNight,
                     canary_errors: dict[str, CanaryErrors] | None = None,
                     ) -> tuple[list[str], list[str]]:
    """Advance every device class's staged rollout with the night's best approved version and
    what the quality check found of its canary's stores' errors; a gate alert for a class
    nothing passed for. Returns (rollout lines, fleet holds)."""
    from monitoring.alerts import (
        canary_blockers,
        canary_rollback_changes,
        fleet_holds,
        flow_success_changes,
        gate_alert_changes,
    )
    from storage.alerts import apply_alert_changes, open_alerts
    from storage.registry import active_policies, get_version
    from storage.releases import (
        CanaryPolicy,
        ReleaseTarget,
        advance_rollout,
        open_releases,
        resign_open_releases,
    )

    target = ReleaseTarget.from_settings(catalog.settings)
    policy = CanaryPolicy.from_settings(catalog.settings)
    lines = []
    if not target.signing_key.exists():  # refused where the key would be served
        public, key = target.init_signing_key()
        lines.append(f"made release signing key {key} and root version 1; devices start from "
                     f"{public.parent / 'root' / '1.root.json'} (shelfcast-device trust --root)")
    with catalog.unit_of_work() as session:
        holds = fleet_holds(open_alerts(session, kind="data_drift", severity="severe",
                                        unacknowledged=True))
        quality = open_alerts(session, kind="forecast_quality")
        classes = list(active_policies(session))
        rolled_back = []
        for device_class in classes:
            best = night.best.get(device_class)
            canary = open_releases(session, device_class).get("canary")
            blockers = canary_blockers(quality, device_class, canary.model_version_id) \
                if canary else []
            steps = advance_rollout(session, target, device_class,
                                    get_version(session, best.id) if best else None,
                                    as_of=night.as_of, canary_blockers=blockers, fleet_holds=holds,
                                    canary_policy=policy,
                                    canary_errors=(canary_errors or {}).get(device_class))
            lines += [f"{device_class}: {step.message}" for step in steps]
            rolled_back += [step for step in steps if step.action == "rolled back"]
        apply_alert_changes(session, gate_alert_changes(
            device_classes=classes, failed=night.without_forecaster, run_key=night.run_key)
            + flow_success_changes() + canary_rollback_changes(rolled_back))
        resigned = resign_open_releases(session, target)
        if resigned:
            lines.append(f"re-signed {len(resigned)} open release manifest(s), valid for "
                         f"{target.manifest_valid_days} days")
    return lines, holds


class NotificationsFailed(RuntimeError):
    """Some alerts could not be delivered; they stay un-notified and are sent again later."""


def deliver_pending(catalog: Catalog) -> tuple[int, int]:
    """One attempt to send every un-notified open alert to every configured URL; an alert
    counts as notified only when every URL took it. Returns (delivered, failed)."""
    from monitoring.notify import deliver
    from storage.alerts import record_notification, unnotified

    with catalog.unit_of_work() as session:
        pending = unnotified(session)
        outcomes = deliver(pending, catalog.settings.notify_urls)
        for alert, delivered in zip(pending, outcomes, strict=True):
            record_notification(alert, delivered=delivered)
    return sum(outcomes), len(outcomes) - sum(outcomes)


def notify_ops(catalog: Catalog) -> str:
    """Send alerts nobody has been told about yet; fails (and Prefect retries) while some
    could not be delivered."""
    if not catalog.settings.notify_urls:
        return "no notification URLs configured (settings notify_urls): alerts are in the registry"
    delivered, failed = deliver_pending(catalog)
    if failed:
        raise NotificationsFailed(f"{failed} alert(s) could not be delivered to every "
                                  "notification URL; they stay un-notified and are sent again "
                                  "after the next night")
    return f"{delivered} alert(s) notified"


def record_flow_failure(catalog: Catalog, *, flow_run: str, error: str) -> None:
    """A failed night becomes a severe flow_failure alert, and ops are told once (no retries:
    the next night sends what did not go out). If the registry cannot be reached, the night's
    marker keeps the error and the next night records it."""
    from monitoring.alerts import flow_failure_changes
    from monitoring.notify import scrub_secrets
    from storage import night_log
    from storage.alerts import apply_alert_changes

    error = scrub_secrets(error, catalog.settings.notify_urls)
    marker = night_log.marker_path(catalog.home, flow_run)
    try:
        with catalog.unit_of_work() as session:
            apply_alert_changes(session, flow_failure_changes(flow_run=flow_run, error=error))
    except Exception:
        if marker.exists():
            night_log.note_failure(marker, error)
        raise
    night_log.end_night(marker)
    if catalog.settings.notify_urls:
        deliver_pending(catalog)


def end_night(marker: str) -> None:
    from storage import night_log

    night_log.end_night(Path(marker))
