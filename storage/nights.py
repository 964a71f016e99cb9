"""A night in the registry: register its run and gate every version for every device class in
one transaction, and read a registered night back as the flow, the CLI and the summary show it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from policy.gate import Figures, GateInput, best_reference, evaluate_gate
from policy.records import (
    Evaluation,
    NightData,
    NightEvidence,
    RegisteredNight,
    RunRecord,
    VersionRecord,
)
from storage.errors import NotFound, RegistryError
from storage.models import GateDecision, ModelVersion, TrainingRun
from storage.registry import (
    active_policies,
    find_run,
    policy_limits,
    record_decision,
    register_run,
    settle_status,
    version_view,
)
from storage.releases import champion, open_releases

COMPARISON_RULES = ("champion", "slice_regression")  # the rest judge a model on its own


def register_and_gate(session: Session, *, run: RunRecord, versions: list[VersionRecord],
                      evidence: NightEvidence, baseline_variant: str) -> TrainingRun:
    """Register a run and its versions and gate every version for every device class, in the
    caller's one transaction: a failure anywhere leaves no row of the run behind. Every
    comparison is on the night's held-out windows (`evidence`)."""
    record = register_run(session, run=run, versions=versions, evidence=evidence)
    missing = {v.variant for v in record.versions} - set(evidence.candidates)
    if baseline_variant not in evidence.candidates or missing:
        raise RegistryError(f"run {run.run_key!r} lacks the evaluation of "
                            f"{sorted(missing | ({baseline_variant} - set(evidence.candidates)))}")
    for device_class, policy in active_policies(session).items():
        limits = policy_limits(policy)
        metric = limits.metric
        current = champion(session, device_class)
        champion_figures = _champion_figures(current, evidence, metric)
        canary = open_releases(session, device_class).get("canary")
        canary_figures = Figures.of(evidence.released[canary.model_version_id], metric,
                                    canary.model_version.artifact_bytes) \
            if canary is not None and canary.model_version_id in evidence.released else None
        reference, reference_error = best_reference(evidence.references, metric)
        baseline = evidence.candidates[baseline_variant].mean_over_origins(metric)
        for version in record.versions:
            evaluation = evidence.candidates[version.variant]
            verdict = evaluate_gate(GateInput(
                candidate=Figures.of(evaluation, metric, version.artifact_bytes),
                baseline_error=baseline, reference_name=reference,
                reference_error=reference_error, zero_share=evaluation.overall.zero_share,
                latency_ms_p50=version.latency_us_p50 / 1000, champion=champion_figures,
                champion_version=current.id if current else None, canary=canary_figures,
                canary_version=canary.model_version_id if canary_figures else None), limits)
            record_decision(session, version, policy, verdict)
    for version in record.versions:
        settle_status(session, version)
    return record


def _champion_figures(current: ModelVersion | None, evidence: NightEvidence,
                      metric: str) -> Figures | None:
    """The champion on tonight's windows; if it could not be measured tonight, its figures at
    its own gate (no paired test is then possible, so nothing replaces it on evidence)."""
    if current is None:
        return None
    if current.id in evidence.released:
        return Figures.of(evidence.released[current.id], metric, current.artifact_bytes)
    if current.evaluation:
        return Figures.of(Evaluation.from_dict(current.evaluation), metric, current.artifact_bytes)
    return Figures(error=float("inf"), error_by_origin=[], stores={}, items={}, units=None,
                   artifact_bytes=current.artifact_bytes)


def gate_error(decision: GateDecision) -> float:
    """The error a decision was made on (its policy's metric, mean over origins)."""
    return next(r["observed"] for r in decision.reasons if r["rule"] == decision.policy.metric)


def quality_passed(decision: GateDecision) -> bool:
    """Whether the version passed every rule that judges it on its own."""
    return all(r["passed"] for r in decision.reasons if r["rule"] not in COMPARISON_RULES)


def best_approved(run: TrainingRun) -> dict[str, ModelVersion]:
    """Per device class, the run's version with the lowest error that passed for that class."""
    best: dict[str, tuple[float, ModelVersion]] = {}
    for version in run.versions:
        for decision in version.decisions:
            error = gate_error(decision)
            if decision.passed and (decision.device_class not in best
                                    or error < best[decision.device_class][0]):
                best[decision.device_class] = (error, version)
    return {device_class: version for device_class, (_, version) in best.items()}


def classes_without_a_forecaster(run: TrainingRun) -> list[str]:
    """Device classes for which no version of the run passed the rules that judge a model on
    its own (a class whose champion simply stays is not among them)."""
    passing = {d.device_class for v in run.versions for d in v.decisions if quality_passed(d)}
    every = {d.device_class for v in run.versions for d in v.decisions}
    return sorted(every - passing)


def registered_night(session: Session, run_key: str, *, status: str) -> RegisteredNight:
    """The registered run `run_key` with every version, its decisions and the best per class."""
    run = find_run(session, run_key)
    if run is None:
        raise NotFound(f"run {run_key!r} is not registered")
    views = {v.id: version_view(v, details=True)
             for v in sorted(run.versions, key=lambda version: version.id)}
    return RegisteredNight(
        run_key=run.run_key, as_of=run.as_of, status=status, versions=list(views.values()),
        best={cls: views[v.id] for cls, v in best_approved(run).items()},
        data=NightData(run.series_count, run.train_windows, run.test_windows),
        timings_s=dict(run.timings_s or {}),
        without_forecaster=classes_without_a_forecaster(run), start=run.start,
        start_reason=run.start_reason)
