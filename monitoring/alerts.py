"""Alert rules: what a night's checks mean for ops, as data.

Each rule returns `AlertChanges` (what to raise or update, what to resolve); storage applies
them in the caller's transaction (`storage.alerts.apply_alert_changes`): one alert per open
condition, updated each night it lasts and resolved when it clears.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from monitoring.drift import DriftCheck
from monitoring.quality import QualityScore
from policy.records import AlertChanges, AlertRaise, AlertResolve


def drift_alert_changes(check: DriftCheck, *, report_link: str | None) -> AlertChanges:
    """One data_drift alert per store or item whose level moved (a lasting level or a burst
    that is over, a promotion's pattern), updated each night it stays named with tonight's size
    and start; one no_sales warning per store-item that stopped selling (left out of the level
    test; it holds no rollout); those no longer named resolve."""
    raised = [AlertRaise(
        kind="data_drift", severity=finding.severity,
        scope={finding.kind: finding.id, "change": finding.change,
               "level_change_pct": finding.level_change_pct, "se_pct": finding.se_pct,
               "since": finding.since.isoformat(),
               "until": finding.until.isoformat() if finding.until else None,
               "sold": finding.sold, "expected": finding.expected,
               "columns": finding.drifted_columns},
        dedup_key=f"data_drift:{finding.kind}:{finding.id}",
        message=f"{finding.message} (current {check.current_start}..{check.current_end})",
        link=report_link) for finding in check.findings]
    empty = [AlertRaise(
        kind="no_sales", severity="warning",
        scope={**s.ids, "since": s.since.isoformat(), "days": s.days,
               "sales_per_day": s.sales_per_day},
        dedup_key="no_sales:" + s.scope.replace(" ", ":"), message=s.message, link=report_link)
        for s in check.stopped]
    return AlertChanges(raised + empty, [
        AlertResolve("data_drift", "data_drift:", frozenset(r.dedup_key for r in raised)),
        AlertResolve("no_sales", "no_sales:", frozenset(r.dedup_key for r in empty))])


def quality_key(device_class: str, model_version: int) -> str:
    return f"forecast_quality:{device_class}:v{model_version}"


def quality_alert_changes(scores: Sequence[QualityScore], *,
                          unscored: Sequence[tuple[str, int]] = ()) -> AlertChanges:
    """A forecast_quality alert per released version whose rolling MAPE is over its gate MAPE
    plus the margin. Versions not scored tonight (no new actuals) keep their alert."""
    raised = []
    for score in scores:
        if score.degraded:
            over = score.rolling_mape_pct - score.gate_mape_pct
            raised.append(AlertRaise(
                kind="forecast_quality",
                severity="severe" if over > 2 * score.margin_pct else "warning",
                scope={"device_class": score.device_class, "model_version": score.model_version,
                       "channel": score.channel, "stores": score.degraded_stores,
                       "rolling_mape_pct": round(score.rolling_mape_pct, 3),
                       "gate_mape_pct": round(score.gate_mape_pct, 3)},
                dedup_key=quality_key(score.device_class, score.model_version),
                message=score.message))
    keep = {r.dedup_key for r in raised} | {quality_key(c, v) for c, v in unscored}
    return AlertChanges(raised, [AlertResolve("forecast_quality", "forecast_quality:",
                                              frozenset(keep))])


class RolledBackCanary(Protocol):
    device_class: str
    model_version: int | None
    message: str


def canary_rollback_changes(rolled_back: Sequence[RolledBackCanary]) -> AlertChanges:
    """A severe canary_rollback alert for each canary the night rolled back because its
    devices failed (storage.releases.RolloutStep); it stays open until ops acknowledge it:
    the devices' failures (a key, a URL, a clock) need a person even though the fleet is safe."""
    return AlertChanges([AlertRaise(
        kind="canary_rollback", severity="severe",
        scope={"device_class": step.device_class, "model_version": step.model_version},
        dedup_key=f"canary_rollback:{step.device_class}:v{step.model_version}",
        message=f"{step.device_class}: {step.message}") for step in rolled_back])


def gate_alert_changes(*, device_classes: Sequence[str], failed: Sequence[str],
                       run_key: str) -> AlertChanges:
    """A gate_failure alert for each device class for which no variant of tonight's run
    passed the rules that judge a model on its own (not merely "the champion stays")."""
    raised = [AlertRaise(
        kind="gate_failure", severity="warning",
        scope={"device_class": device_class, "run_key": run_key},
        dedup_key=f"gate_failure:{device_class}",
        message=f"{device_class}: no variant of run {run_key} passed the gate; "
                "the device class keeps its current model")
        for device_class in device_classes if device_class in failed]
    return AlertChanges(raised, [AlertResolve("gate_failure", "gate_failure:",
                                              frozenset(r.dedup_key for r in raised))])


FLOW_FAILURE_KEY = "flow_failure:nightly-retrain"


def flow_failure_changes(*, flow_run: str, error: str) -> AlertChanges:
    return AlertChanges([AlertRaise(kind="flow_failure", severity="severe",
                                    scope={"flow_run": flow_run}, dedup_key=FLOW_FAILURE_KEY,
                                    message=f"nightly run {flow_run} failed: {error}")])


def flow_success_changes() -> AlertChanges:
    """A night that got this far resolves the last failure's alert."""
    return AlertChanges(resolved=[AlertResolve("flow_failure", "flow_failure:")])


def fleet_holds(severe_unacknowledged_drift: Sequence) -> list[str]:
    """Why automatic promotion to the whole fleet must wait: severe drift alerts nobody has
    acknowledged yet."""
    return [f"severe drift alert {a.id} ({a.message}) is not acknowledged: "
            f"`shelfcast alerts ack {a.id} --by NAME`" for a in severe_unacknowledged_drift]


def canary_blockers(open_quality_alerts: Sequence, device_class: str,
                    model_version: int) -> list[str]:
    """Why a canary must not graduate: an open forecast-quality alert for its version."""
    key = quality_key(device_class, model_version)
    return [f"forecast-quality alert {a.id} is open: {a.message}"
            for a in open_quality_alerts if a.dedup_key == key]
