"""The registry API: runs, model versions, gate policies and decisions. Every SQL statement
lives in `storage/`; functions here take a session and never commit."""

from __future__ import annotations

import dataclasses
import math
import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from policy.gate import GateLimits, GateVerdict
from policy.limits import BY_NAME, METRIC_CHOICES, limits_for
from policy.limits import POLICY_FIELDS as SPEC
from policy.records import (
    DecisionView,
    NightEvidence,
    RunRecord,
    VersionRecord,
    VersionView,
)
from storage.errors import Conflict, NotFound, RegistryError
from storage.models import GateDecision, GatePolicy, ModelVersion, TrainingRun, utcnow

POLICY_FIELDS = tuple(f.name for f in SPEC)
# a new device class must name these; the others start from their defaults
REQUIRED_FOR_NEW_CLASS = tuple(f.name for f in SPEC if f.default is None)
POLICY_DEFAULTS = {f.name: f.default for f in SPEC if f.default is not None}
VERSION_STATUSES = ("candidate", "approved", "rejected", "released", "retired")


class RunAlreadyRegistered(Conflict):
    pass


# -- gate policies ---------------------------------------------------------------------------


def active_policies(session: Session) -> dict[str, GatePolicy]:
    """The newest policy version of every device class."""
    newest = (select(GatePolicy.device_class, func.max(GatePolicy.version).label("version"))
              .group_by(GatePolicy.device_class).subquery())
    rows = session.scalars(select(GatePolicy).join(
        newest, (GatePolicy.device_class == newest.c.device_class)
        & (GatePolicy.version == newest.c.version)).order_by(GatePolicy.max_artifact_bytes))
    return {policy.device_class: policy for policy in rows}


DEVICE_CLASS_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def check_policy_value(name: str, value) -> float | int | str:
    """`value` for threshold `name` if it is a finite number within its range (or a known
    metric choice), else a RegistryError naming the field, the value and the range."""
    if name == "metric":
        if value not in METRIC_CHOICES:
            raise RegistryError(f"metric must be one of {METRIC_CHOICES}, got {str(value)[:40]!r}")
        return value
    # a limit outside its range is a typo or an attempt to switch the gate off (inf, 1e308, NaN)
    low, high = BY_NAME[name].low, BY_NAME[name].high
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise RegistryError(f"{name} must be a finite number from {low} to {high}, got {shown}")
    if isinstance(low, int) and not float(value).is_integer():
        raise RegistryError(f"{name} must be a whole number, got {value!r}")
    return int(value) if isinstance(low, int) else float(value)


def set_policy(session: Session, device_class: str, *, by: str, new_class: bool = False,
               require_approval: bool | None = None, **changes) -> GatePolicy:
    """Add a new version of `device_class`'s policy with `changes` over the current one
    (`require_approval` None keeps whether a canary needs a person's approval).

    An unknown device class is refused unless `new_class` (then every threshold is needed):
    a typo must not create a class that no device belongs to.
    """
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise RegistryError(f"unknown policy fields {sorted(unknown)}; expected {POLICY_FIELDS}")
    given = {name: check_policy_value(name, value) for name, value in changes.items()
             if value is not None}
    if not by or not by.strip():
        raise RegistryError("a policy change needs a name (--by)")
    policies = active_policies(session)
    current = policies.get(device_class)
    if current is None and not new_class:
        raise NotFound(f"unknown device class {device_class[:40]!r}; known: "
                       f"{', '.join(policies) or 'none'} (add one with --new-class)")
    if current is None:
        if not DEVICE_CLASS_PATTERN.fullmatch(device_class):
            raise RegistryError(f"device class name {device_class[:40]!r}: expected lower-case "
                                "letters, digits, '_' or '-', starting with a letter, 1-32 long")
        missing = [f for f in REQUIRED_FOR_NEW_CLASS if f not in given]
        if missing:
            raise RegistryError(f"new device class {device_class!r} needs every threshold; "
                                f"missing {missing}")
        given = {**POLICY_DEFAULTS, **given}
    elif new_class:
        raise Conflict(f"device class {device_class!r} exists already (policy version "
                       f"{current.version}); leave out --new-class to change it")
    values = {f: getattr(current, f) for f in POLICY_FIELDS} if current else {}
    values.update(given)
    if require_approval is None:
        require_approval = bool(current and current.require_approval)
    policy = GatePolicy(device_class=device_class, version=(current.version + 1) if current else 1,
                        created_by=by, require_approval=require_approval, **values)
    session.add(policy)
    session.flush()
    return policy


def policy_limits(policy: GatePolicy, metric: str) -> GateLimits:
    """The policy's limits in `metric`, the metric it resolved to tonight."""
    return limits_for({f: getattr(policy, f) for f in POLICY_FIELDS}, metric)


def policy_as_dict(policy: GatePolicy) -> dict:
    return {"device_class": policy.device_class, "version": policy.version,
            **{f: getattr(policy, f) for f in POLICY_FIELDS},
            "require_approval": policy.require_approval, "created_by": policy.created_by,
            "created_at": policy.created_at.isoformat()}


# -- runs and versions -----------------------------------------------------------------------


def find_run(session: Session, run_key: str) -> TrainingRun | None:
    return session.scalar(select(TrainingRun).where(TrainingRun.run_key == run_key))


def code_version(run: RunRecord) -> str:
    """The package version, with the commit it was built from when known (PEP 440 local)."""
    lineage = run.lineage
    if not lineage.git_commit:
        return lineage.package_version
    return (f"{lineage.package_version}+g{lineage.git_commit[:12]}"
            + (".dirty" if lineage.git_dirty else ""))


def register_run(session: Session, *, run: RunRecord, versions: list[VersionRecord],
                 evidence: NightEvidence | None = None) -> TrainingRun:
    """Add a completed run and all its versions. Raises RunAlreadyRegistered if the run key
    exists (also when another process registered it a moment ago)."""
    if find_run(session, run.run_key) is not None:
        raise RunAlreadyRegistered(f"run {run.run_key!r} is already registered")
    fields = {f.name: getattr(run, f.name) for f in dataclasses.fields(run)}
    fields["lineage"] = dataclasses.asdict(run.lineage)
    fields["evaluation"] = evidence.as_dict() if evidence else {}
    if fields["started_at"] is None:  # a run recorded without its start: the row's moment
        del fields["started_at"]
    record = TrainingRun(status="completed", finished_at=utcnow(), code_version=code_version(run),
                         **fields)
    session.add(record)
    try:
        session.flush()
    except IntegrityError as exc:
        raise RunAlreadyRegistered(
            f"run {run.run_key!r} was registered concurrently by another process"
        ) from exc
    candidates = evidence.candidates if evidence else {}
    for version in versions:
        evaluation = candidates.get(version.variant)
        session.add(ModelVersion(run_id=record.id, status="candidate",
                                 evaluation=evaluation.as_dict() if evaluation else {},
                                 **dataclasses.asdict(version)))
    session.flush()
    return record


def record_decision(session: Session, version: ModelVersion, policy: GatePolicy,
                    verdict: GateVerdict) -> GateDecision:
    decision = GateDecision(model_version_id=version.id, policy_id=policy.id,
                            device_class=policy.device_class, passed=verdict.passed,
                            reasons=verdict.reasons_as_dicts())
    session.add(decision)
    session.flush()
    return decision


def settle_status(session: Session, version: ModelVersion) -> str:
    """Approved if it passed the gate for at least one device class, else rejected."""
    passed = session.scalar(select(func.count()).select_from(GateDecision).where(
        GateDecision.model_version_id == version.id, GateDecision.passed.is_(True)))
    if version.status == "candidate":
        version.status = "approved" if passed else "rejected"
    return version.status


def get_version(session: Session, version_id: int) -> ModelVersion:
    version = session.get(ModelVersion, version_id,
                          options=[selectinload(ModelVersion.decisions), selectinload(ModelVersion.run)])
    if version is None:
        raise NotFound(f"no model version {version_id}")
    return version


def list_versions(session: Session, *, status: str | None = None,
                  device_class: str | None = None, run_id: int | None = None) -> list[ModelVersion]:
    """Model versions, newest first; `device_class` keeps those that passed for it."""
    if status is not None and status not in VERSION_STATUSES:
        raise RegistryError(f"unknown status {status!r}; expected one of {VERSION_STATUSES}")
    stmt = select(ModelVersion).options(selectinload(ModelVersion.decisions),
                                        selectinload(ModelVersion.run))
    if status:
        stmt = stmt.where(ModelVersion.status == status)
    if run_id is not None:
        stmt = stmt.where(ModelVersion.run_id == run_id)
    if device_class:
        stmt = stmt.where(ModelVersion.id.in_(select(GateDecision.model_version_id).where(
            GateDecision.device_class == device_class, GateDecision.passed.is_(True))))
    return list(session.scalars(stmt.order_by(ModelVersion.id.desc())))


def version_view(version: ModelVersion, *, details: bool = False) -> VersionView:
    """A version as `models list` shows it; with `details` also its hyper-parameters, every gate
    decision with its reasons, and the lineage of its run (`models show`)."""
    decisions = [DecisionView(d.device_class, d.passed, d.policy_id, d.policy.version, d.reasons)
                 for d in version.decisions] if details else None
    return VersionView(
        id=version.id, run_id=version.run_id, as_of=version.run.as_of.isoformat(),
        variant=version.variant, technique=version.technique, base_variant=version.base_variant,
        status=version.status, artifact_bytes=version.artifact_bytes,
        gzip_bytes=version.gzip_bytes, nonzero_params=version.nonzero_params,
        compression_ratio=version.compression_ratio, mape_pct=round(version.mape_pct, 3),
        wape_pct=round(version.wape_pct, 3), latency_us_p50=round(version.latency_us_p50, 1),
        max_abs_diff_vs_keras=version.max_abs_diff_vs_keras, sha256=version.sha256,
        artifact_uri=version.artifact_uri,
        passed_for=sorted(d.device_class for d in version.decisions if d.passed),
        start=version.run.start, start_reason=version.run.start_reason,
        parent_version_id=version.parent_version_id,
        hyperparams=version.hyperparams if details else None, decisions=decisions,
        lineage={"code_version": version.run.code_version, **(version.run.lineage or {})}
        if details else None,
        evaluation=version.evaluation if details else None,
        demand=(version.run.demand or None) if details else None,
    )
