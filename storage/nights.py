"""A night in the registry: register its run and gate every version for every device class in
one transaction, and read a registered night back as the flow, the CLI and the summary show it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from policy.demand import DemandMix, MetricChoice, resolve_metric
from policy.gate import Figures, GateInput, best_reference, evaluate_gate
from policy.limits import limits_for
from policy.records import (
    Evaluation,
    NightData,
    NightEvidence,
    RegisteredNight,
    RunRecord,
    VersionRecord,
)
from policy.suggest import Proposal, suggest_limits
from policy.summary import is_wall_time
from storage.errors import NotFound, RegistryError
from storage.models import GateDecision, ModelVersion, TrainingRun
from storage.registry import (
    POLICY_FIELDS,
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
# the phases a night times after its run row is written (the flow's timings, see flows/nightly)
AFTER_REGISTRATION = ("register_s", "rollout_s")


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
        choice = resolve_metric(policy.metric, evidence.demand)
        limits = policy_limits(policy, choice.metric)
        metric = choice.metric
        current = champion(session, device_class)
        champion_figures = _champion_figures(current, evidence, metric)
        canary = open_releases(session, device_class).get("canary")
        canary_figures = Figures.of(evidence.released[canary.model_version_id], metric,
                                    canary.model_version.artifact_bytes) \
            if canary is not None and canary.model_version_id in evidence.released else None
        for version in record.versions:
            verdict = evaluate_gate(gate_input(
                version, evidence, choice, baseline_variant=baseline_variant,
                champion=champion_figures, champion_version=current.id if current else None,
                canary=canary_figures,
                canary_version=canary.model_version_id if canary_figures else None), limits)
            record_decision(session, version, policy, verdict)
    for version in record.versions:
        settle_status(session, version)
    return record


def gate_input(version: ModelVersion, evidence: NightEvidence, choice: MetricChoice, *,
               baseline_variant: str, **comparison) -> GateInput:
    """What the gate judges `version` on, in tonight's metric: its figures, this run's
    baseline, the best reference, and (`comparison`) the champion and canary when there are."""
    metric = choice.metric
    evaluation = evidence.candidates[version.variant]
    reference, reference_error = best_reference(evidence.references, metric)
    return GateInput(
        candidate=Figures.of(evaluation, metric, version.artifact_bytes),
        baseline_error=evidence.candidates[baseline_variant].mean_over_origins(metric),
        reference_name=reference, reference_error=reference_error,
        zero_share=evaluation.overall.zero_share, latency_ms_p50=version.latency_us_p50 / 1000,
        metric_reason=choice.reason, **comparison)


def stored_evidence(run: TrainingRun) -> NightEvidence:
    """A registered night's evidence as the registry keeps it (no paired-test units)."""
    stored = run.evaluation or {}
    return NightEvidence(
        candidates={v.variant: Evaluation.from_dict(v.evaluation) for v in run.versions
                    if v.evaluation},
        references={k: Evaluation.from_dict(v) for k, v in stored.get("references", {}).items()},
        released={}, demand=DemandMix.from_dict(run.demand) if run.demand else None)


def replay_quality(run: TrainingRun, policies: list[dict], chosen_metric: str, *,
                   baseline_variant: str) -> list[dict[str, bool]]:
    """Per policy of `policies` (fields as policy.limits names them), which of a registered
    night's versions would pass the rules that judge a model on its own, by variant."""
    evidence = stored_evidence(run)
    if baseline_variant not in evidence.candidates or not evidence.references:
        return [{} for _ in policies]
    choice = resolve_metric(chosen_metric, evidence.demand)
    inputs = {version.variant: gate_input(version, evidence, choice,
                                          baseline_variant=baseline_variant)
              for version in run.versions if version.variant in evidence.candidates}
    return [{variant: evaluate_gate(given, limits_for(values, choice.metric)).quality_passed
             for variant, given in inputs.items()} for values in policies]


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
    """The error a decision was made on (the metric its policy resolved to that night, mean
    over origins): its first reason."""
    return decision.reasons[0]["observed"]


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


def night_span(run: TrainingRun) -> tuple[dt.datetime, dt.datetime]:
    """When the night began and ended (UTC). The run row is written at registration
    (`finished_at`), with the moment the flow began (`started_at`); the phases timed after
    registration (the registration itself, the rollout) end it. A run registered before the
    flow recorded its start has `started_at` at registration: its start is estimated from the
    wall-clock phase timings before it (ingest to saving the artifacts; the per-task sums,
    `*_task_s`, overlap in parallel and are left out, as are the MiB and worker counts), a
    lower bound."""
    wall = {k: float(v) for k, v in (run.timings_s or {}).items()
            if is_wall_time(k) and isinstance(v, int | float)}
    after = sum(wall.get(k, 0.0) for k in AFTER_REGISTRATION)
    registered, started = _utc(run.finished_at or run.started_at), _utc(run.started_at)
    if registered - started < dt.timedelta(seconds=1):
        started = registered - dt.timedelta(seconds=sum(wall.values()) - after)
    return started, registered + dt.timedelta(seconds=after)


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands datetimes back naive; the registry writes UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


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
        start_reason=run.start_reason, demand=dict(run.demand or {}))


def suggest_for_class(session: Session, device_class: str, *, baseline_variant: str,
                      nights: int = 7) -> tuple[Proposal, list[dict]]:
    """`gate suggest`: the proposal for `device_class` from the newest night's figures, and for
    each of the last `nights` nights how many versions pass the class's quality rules now and
    would under the proposal (and the best of them), all read from the registry."""
    policy = active_policies(session).get(device_class)
    if policy is None:
        raise NotFound(f"unknown device class {device_class[:40]!r}; known: "
                       f"{', '.join(active_policies(session)) or 'none'}")
    runs = session.scalars(select(TrainingRun).order_by(TrainingRun.as_of.desc(),
                                                        TrainingRun.id.desc()).limit(nights)).all()
    if not runs:
        raise NotFound("no night is registered yet: run `shelfcast nightly` first")
    evidence = stored_evidence(runs[0])
    if not evidence.references or baseline_variant not in evidence.candidates:
        raise NotFound(f"night {runs[0].as_of} keeps no reference figures to suggest from")
    values = {f: getattr(policy, f) for f in POLICY_FIELDS}
    metric = resolve_metric(policy.metric, evidence.demand).metric
    proposal = suggest_limits(values, metric, references=evidence.references,
                              candidates=evidence.candidates, baseline=baseline_variant)
    proposed = proposal.limits(values)
    replay = []
    for run in runs:
        errors = {v.variant: gate_error(d) for v in run.versions for d in v.decisions
                  if d.device_class == device_class}
        now, then = replay_quality(run, [values, proposed], policy.metric,
                                   baseline_variant=baseline_variant)
        passing = [v for v, ok in then.items() if ok]
        replay.append({"as_of": run.as_of.isoformat(), "passes_now": sum(now.values()),
                       "would_pass": len(passing), "variants": len(then),
                       "best_would_pass": min(passing, key=lambda v: errors.get(v) or 0.0)
                       if passing else None})
    return proposal, replay
