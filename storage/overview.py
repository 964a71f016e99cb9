"""What the ops console reads that the rest of the registry API does not: the newest night,
a page of versions, error and drift over nights, a version's ancestors. Functions take a
session; none writes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer, selectinload

from storage.models import Alert, DriftReport, GateDecision, ModelVersion, Release, TrainingRun


def latest_run(session: Session) -> TrainingRun | None:
    """The newest night's run (by as-of date, then by id)."""
    # the id first: sorting whole rows would read every run's evaluation JSON
    run_id = session.scalar(select(TrainingRun.id).order_by(TrainingRun.as_of.desc(),
                                                            TrainingRun.id.desc()).limit(1))
    return None if run_id is None else session.get(TrainingRun, run_id)


def night_dates(session: Session, *, limit: int = 60) -> list[dt.date]:
    """The as-of dates of the newest `limit` nights, newest first (the Models filter)."""
    return list(session.scalars(select(TrainingRun.as_of).distinct()
                                .order_by(TrainingRun.as_of.desc()).limit(limit)))


def versions_page(session: Session, *, as_of: dt.date | None = None, status: str | None = None,
                  device_class: str | None = None, limit: int = 100) -> list[ModelVersion]:
    """Model versions, newest first, filtered by night, status and a class they passed for."""
    # a listing shows only which classes each version passed for: leave the reasons unread
    stmt = select(ModelVersion).options(
        selectinload(ModelVersion.decisions).load_only(GateDecision.device_class,
                                                       GateDecision.passed),
        selectinload(ModelVersion.run).load_only(TrainingRun.as_of),
        defer(ModelVersion.evaluation), defer(ModelVersion.probe),
        defer(ModelVersion.hyperparams))
    if as_of is not None:
        stmt = stmt.where(ModelVersion.run_id.in_(
            select(TrainingRun.id).where(TrainingRun.as_of == as_of)))
    if status:
        stmt = stmt.where(ModelVersion.status == status)
    if device_class:
        stmt = stmt.where(ModelVersion.id.in_(select(GateDecision.model_version_id).where(
            GateDecision.device_class == device_class, GateDecision.passed.is_(True))))
    return list(session.scalars(stmt.order_by(ModelVersion.id.desc()).limit(limit)))


def ancestors(session: Session, version: ModelVersion, *, limit: int = 10) -> list[ModelVersion]:
    """The warm-start parents of `version`, nearest first (at most `limit`)."""
    chain, parent_id = [], version.parent_version_id
    while parent_id is not None and len(chain) < limit:
        parent = session.get(ModelVersion, parent_id)
        if parent is None:
            break
        chain.append(parent)
        parent_id = parent.parent_version_id
    return chain


def best_error_by_night(session: Session, *, since: dt.date) -> dict[str, list[tuple[dt.date, float]]]:
    """Per device class, the lowest MAPE of a version that passed its gate, per night from
    `since`: how good what the class could run was, night after night."""
    rows = session.execute(
        select(GateDecision.device_class, TrainingRun.as_of, func.min(ModelVersion.mape_pct))
        .join(ModelVersion, GateDecision.model_version_id == ModelVersion.id)
        .join(TrainingRun, ModelVersion.run_id == TrainingRun.id)
        .where(GateDecision.passed.is_(True), ModelVersion.run_id.in_(
            select(TrainingRun.id).where(TrainingRun.as_of >= since)))
        .group_by(GateDecision.device_class, TrainingRun.as_of)
        .order_by(TrainingRun.as_of))
    series: dict[str, list[tuple[dt.date, float]]] = {}
    for device_class, as_of, error in rows:
        series.setdefault(device_class, []).append((as_of, float(error)))
    return series


def drift_by_night(session: Session, *, since: dt.date) -> list[DriftReport]:
    """The drift reports from `since`, oldest first (one per night, the newest of a night)."""
    newest = (select(func.max(DriftReport.id)).where(DriftReport.as_of >= since)
              .group_by(DriftReport.as_of))
    return list(session.scalars(select(DriftReport).where(DriftReport.id.in_(newest))
                                .order_by(DriftReport.as_of)))


def drift_report_on(session: Session, as_of: dt.date) -> DriftReport | None:
    """The newest drift report made for the night `as_of`."""
    return session.scalar(select(DriftReport).where(DriftReport.as_of == as_of)
                          .order_by(DriftReport.id.desc()).limit(1))


def get_drift_report(session: Session, report_id: int) -> DriftReport | None:
    return session.get(DriftReport, report_id)


def releases_on(session: Session, as_of: dt.date) -> list[Release]:
    """The releases made on the night `as_of` (the night's rollout), oldest first."""
    return list(session.scalars(select(Release).where(Release.as_of == as_of)
                                .order_by(Release.id)))


def alert_history(session: Session, *, limit: int = 100) -> list[Alert]:
    """Resolved alerts, newest first."""
    return list(session.scalars(select(Alert).where(Alert.resolved_at.is_not(None))
                                .order_by(Alert.id.desc()).limit(limit)))


def releases_page(session: Session, device_class: str, *, limit: int = 20) -> list[Release]:
    """A class's newest releases, newest first."""
    return list(session.scalars(select(Release).options(
        selectinload(Release.model_version).load_only(ModelVersion.variant))
                                .where(Release.device_class == device_class)
                                .order_by(Release.id.desc()).limit(limit)))
