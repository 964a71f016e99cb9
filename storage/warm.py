"""What the warm/cold decision (`policy.warm`) reads from the registry: each from-scratch
model's last approved version, the last cold run, open severe drift alerts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, selectinload

from policy.records import StartPlan
from policy.warm import ParentCandidate, StartFacts
from policy.warm import plan_start as decide
from storage.alerts import open_alerts
from storage.artifacts import weights_stored, weights_uri
from storage.models import ModelVersion, TrainingRun

PARENT_STATUSES = ("approved", "released")  # passed the gate, and not rolled back (retired)


def last_approved(session: Session, variant: str, *, profile: str, before: dt.date,
                  carriers: Sequence[str] = ()) -> ModelVersion | None:
    """The newest version of `variant` from a night of `profile` before `before` whose weights
    are in an approved model: it, or a variant of the same night that carries its weights
    (`carriers`: pruned or quantized from it), passed the gate for some device class and was
    not rolled back. (LSTM-64 itself rarely fits a device; its pruned int8 child often does.)"""
    carrier = aliased(ModelVersion)
    approved_in_run = (select(carrier.id)
                       .where(carrier.run_id == ModelVersion.run_id,
                              carrier.variant.in_({variant, *carriers}),
                              carrier.status.in_(PARENT_STATUSES))
                       .exists())
    return session.scalar(
        select(ModelVersion).join(TrainingRun)
        .where(ModelVersion.variant == variant, approved_in_run,
               TrainingRun.profile == profile, TrainingRun.as_of < before)
        .options(selectinload(ModelVersion.run))
        .order_by(TrainingRun.as_of.desc(), ModelVersion.id.desc()).limit(1))


def last_cold_run(session: Session, *, before: dt.date) -> TrainingRun | None:
    return session.scalar(select(TrainingRun).where(TrainingRun.start == "cold",
                                                    TrainingRun.as_of < before)
                          .order_by(TrainingRun.as_of.desc(), TrainingRun.id.desc()).limit(1))


def _utc(moment: dt.datetime) -> dt.datetime:
    """Naive UTC (SQLite hands back naive datetimes, PostgreSQL aware ones)."""
    return moment if moment.tzinfo is None else \
        moment.astimezone(dt.UTC).replace(tzinfo=None)


def start_facts(session: Session, *, as_of: dt.date, profile: str, variants: Sequence[str],
                carriers: Mapping[str, Sequence[str]] | None = None) -> StartFacts:
    """What `policy.warm.plan_start` decides on: each from-scratch variant's newest approved
    version before `as_of` (`last_approved`), the last cold run, and the open severe drift
    alerts."""
    parents = {}
    for variant in variants:
        parent = last_approved(session, variant, profile=profile, before=as_of,
                               carriers=(carriers or {}).get(variant, ()))
        parents[variant] = None if parent is None else ParentCandidate(
            version_id=parent.id, as_of=parent.run.as_of, data_end=parent.run.data_end,
            hyperparams=dict(parent.hyperparams or {}),
            weights_stored=weights_stored(parent.artifact_uri),
            weights_uri=weights_uri(parent.artifact_uri))
    last_cold = last_cold_run(session, before=as_of)
    return StartFacts(
        parents=parents, last_cold=last_cold.as_of if last_cold else None,
        last_cold_started=_utc(last_cold.started_at) if last_cold else None,
        severe_drift=[(alert.id, _utc(alert.first_seen))
                      for alert in open_alerts(session, kind="data_drift", severity="severe")])


def plan_start(session: Session, *, as_of: dt.date, profile: str,
               requirements: Mapping[str, Mapping], series_first_day: Mapping[tuple[int, int], dt.date],
               cold_every_days: int = 7, cold: bool = False,
               carriers: Mapping[str, Sequence[str]] | None = None) -> StartPlan:
    """Warm or cold for the night `as_of` of `profile` (`policy.warm.plan_start`), on what the
    registry holds; `carriers` maps each from-scratch variant to the variants that carry its
    weights (`compression.variants.weight_carriers`)."""
    facts = start_facts(session, as_of=as_of, profile=profile, variants=list(requirements),
                        carriers=carriers)
    return decide(facts, as_of=as_of, profile=profile, requirements=requirements,
                  series_first_day=series_first_day, cold_every_days=cold_every_days, cold=cold)
