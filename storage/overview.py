"""What the ops console reads that the rest of the registry API does not: the newest night,
a page of versions, error and drift over nights, a version's ancestors. Functions take a
session; none writes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, defer, selectinload

from storage.models import (
    Action,
    Alert,
    DriftReport,
    GateDecision,
    ModelVersion,
    Release,
    TrainingRun,
)
from storage.users import actions_query

# what a listing may be sorted by: the key the console uses, and the column behind it
VERSION_SORTS = {"id": ModelVersion.id, "as_of": TrainingRun.as_of,
                 "variant": ModelVersion.variant, "status": ModelVersion.status,
                 "artifact_bytes": ModelVersion.artifact_bytes,
                 "mape_pct": ModelVersion.mape_pct, "wape_pct": ModelVersion.wape_pct,
                 "latency_us_p50": ModelVersion.latency_us_p50}
RELEASE_SORTS = {"released_at": Release.id, "as_of": Release.as_of,
                 "device_class": Release.device_class, "channel": Release.channel,
                 "model_version": Release.model_version_id}
ACTION_SORTS = {"at": Action.id, "actor": Action.actor, "action": Action.action,
                "via": Action.via}


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


def paged(session: Session, stmt: Select, *, offset: int, limit: int) -> tuple[list, int]:
    """One page of `stmt`'s rows (from `offset`, at most `limit`) and how many rows it has."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    return list(session.scalars(stmt.offset(offset).limit(limit))), int(total or 0)


def listed(session: Session, stmt: Select, *, search: str | None, within: tuple, order,
           newest, descending: bool, offset: int, limit: int) -> tuple[list, int]:
    """One page of `stmt` narrowed to the rows where a column of `within` contains `search`
    (in any case), sorted by `order` and then `newest` first; and how many rows match."""
    if search:
        stmt = stmt.where(or_(*(column.icontains(search, autoescape=True) for column in within)))
    stmt = stmt.order_by(order.desc() if descending else order.asc(), newest.desc())
    return paged(session, stmt, offset=offset, limit=limit)


def versions_page(session: Session, *, as_of: dt.date | None = None, status: str | None = None,
                  device_class: str | None = None, search: str | None = None,
                  sort: str = "id", descending: bool = True, offset: int = 0,
                  limit: int = 100) -> tuple[list[ModelVersion], int]:
    """A page of model versions filtered by night, status, a class they passed for and a
    variant name containing `search`, sorted by `sort` (a key of VERSION_SORTS, then newest
    first); and how many versions match."""
    stmt = select(ModelVersion).join(TrainingRun, ModelVersion.run_id == TrainingRun.id)
    if as_of is not None:
        stmt = stmt.where(TrainingRun.as_of == as_of)
    if status:
        stmt = stmt.where(ModelVersion.status == status)
    if device_class:
        stmt = stmt.where(ModelVersion.id.in_(select(GateDecision.model_version_id).where(
            GateDecision.device_class == device_class, GateDecision.passed.is_(True))))
    # a listing shows only which classes each version passed for: leave the reasons unread
    stmt = stmt.options(
        selectinload(ModelVersion.decisions).load_only(GateDecision.device_class,
                                                       GateDecision.passed),
        selectinload(ModelVersion.run).load_only(TrainingRun.as_of),
        defer(ModelVersion.evaluation), defer(ModelVersion.probe),
        defer(ModelVersion.hyperparams))
    return listed(session, stmt, search=search, within=(ModelVersion.variant,),
                  order=VERSION_SORTS[sort], newest=ModelVersion.id, descending=descending,
                  offset=offset, limit=limit)


def actions_page(session: Session, *, actor: str | None = None, action: str | None = None,
                 search: str | None = None, sort: str = "at", descending: bool = True,
                 offset: int = 0, limit: int = 100) -> tuple[list[Action], int]:
    """A page of the audit trail filtered as `list_actions` filters it (by who, and by an
    action or its family), searched in the target or the note, sorted by `sort` (a key of
    ACTION_SORTS, then newest first); and how many rows match."""
    return listed(session, actions_query(actor=actor, action=action), search=search,
                  within=(Action.target, Action.note), order=ACTION_SORTS[sort],
                  newest=Action.id, descending=descending, offset=offset, limit=limit)


def actors_and_actions(session: Session) -> tuple[list[str], list[str]]:
    """Every actor and every action name in the audit trail (the Audit filters)."""
    return (list(session.scalars(select(Action.actor).distinct().order_by(Action.actor))),
            list(session.scalars(select(Action.action).distinct().order_by(Action.action))))


def promotions_since(session: Session, since: dt.date) -> list[Release]:
    """The stable releases made on a night from `since`, oldest first (the plots' markers)."""
    return list(session.scalars(select(Release).where(Release.channel == "stable",
                                                      Release.as_of >= since)
                                .order_by(Release.as_of, Release.id)))


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
    return releases_history(session, device_class=device_class, limit=limit)[0]


def releases_history(session: Session, *, device_class: str | None = None,
                     channel: str | None = None, search: str | None = None,
                     sort: str = "released_at", descending: bool = True, offset: int = 0,
                     limit: int = 100) -> tuple[list[Release], int]:
    """A page of every release, filtered by class and channel, searched in who released it
    and why, sorted by `sort` (a key of RELEASE_SORTS, then newest first); and how many match."""
    stmt = select(Release).options(
        selectinload(Release.model_version).load_only(ModelVersion.variant))
    if device_class:
        stmt = stmt.where(Release.device_class == device_class)
    if channel:
        stmt = stmt.where(Release.channel == channel)
    return listed(session, stmt, search=search, within=(Release.reason, Release.released_by),
                  order=RELEASE_SORTS[sort], newest=Release.id, descending=descending,
                  offset=offset, limit=limit)
