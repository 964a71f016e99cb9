"""A night in the registry: register its run and gate every version in one transaction, and
read a registered night back as the flow, the CLI and the summary show it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from storage.errors import NotFound, RegistryError
from storage.gate import GateInput, evaluate_gate
from storage.models import ModelVersion, TrainingRun
from storage.records import NightData, RegisteredNight, RunRecord, VersionRecord
from storage.registry import (
    active_policies,
    find_run,
    policy_limits,
    record_decision,
    register_run,
    settle_status,
    version_view,
)
from storage.releases import champion


def register_and_gate(session: Session, *, run: RunRecord, versions: list[VersionRecord],
                      baseline_variant: str) -> TrainingRun:
    """Register a run and its versions and gate every version for every device class, in the
    caller's one transaction: a failure anywhere leaves no row of the run behind."""
    record = register_run(session, run=run, versions=versions)
    by_variant = {v.variant: v for v in record.versions}
    if baseline_variant not in by_variant:
        raise RegistryError(f"run {run.run_key!r} has no baseline variant {baseline_variant!r}")
    baseline_mape = by_variant[baseline_variant].mape_pct
    for device_class, policy in active_policies(session).items():
        current = champion(session, device_class)
        limits = policy_limits(policy)
        for version in record.versions:
            verdict = evaluate_gate(GateInput(
                mape_pct=version.mape_pct, artifact_bytes=version.artifact_bytes,
                latency_ms_p50=version.latency_us_p50 / 1000, baseline_mape_pct=baseline_mape,
                champion_mape_pct=current.mape_pct if current else None), limits)
            record_decision(session, version, policy, verdict)
    for version in record.versions:
        settle_status(session, version)
    return record


def best_approved(run: TrainingRun) -> dict[str, ModelVersion]:
    """Per device class, the run's version with the lowest MAPE that passed for that class."""
    best: dict[str, ModelVersion] = {}
    for version in run.versions:
        for decision in version.decisions:
            if decision.passed and (decision.device_class not in best
                                    or version.mape_pct < best[decision.device_class].mape_pct):
                best[decision.device_class] = version
    return best


def registered_night(session: Session, run_key: str, *, status: str) -> RegisteredNight:
    """The registered run `run_key` with every version, its decisions and the best per class."""
    run = find_run(session, run_key)
    if run is None:
        raise NotFound(f"run {run_key!r} is not registered")
    views = {v.id: version_view(v, details=True) for v in run.versions}
    return RegisteredNight(
        run_key=run.run_key, as_of=run.as_of, status=status, versions=list(views.values()),
        best={cls: views[v.id] for cls, v in best_approved(run).items()},
        data=NightData(run.series_count, run.train_windows, run.test_windows),
        timings_s=dict(run.timings_s or {}))
