"""Warm or cold: whether a night fine-tunes the last approved weights of its from-scratch
models or trains every model from nothing, decided from the registry before the night trains.

Only nights strictly before tonight's are consulted, so running a night again (after a crash,
or to check it) plans the same start, the same run key and the same parents.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, selectinload

from policy.records import StartPlan
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


def _series(pairs: Iterable[tuple[int, int]], shown: int = 3) -> str:
    pairs = sorted(pairs)
    listed = ", ".join(f"store {store} item {item}" for store, item in pairs[:shown])
    return listed + (f" and {len(pairs) - shown} more" if len(pairs) > shown else "")


def plan_start(session: Session, *, as_of: dt.date, profile: str,
               requirements: Mapping[str, Mapping], series_first_day: Mapping[tuple[int, int], dt.date],
               cold_every_days: int = 7, cold: bool = False,
               carriers: Mapping[str, Sequence[str]] | None = None) -> StartPlan:
    """Warm or cold for the night `as_of` of `profile`, with every reason.

    `requirements` maps each from-scratch variant to the hyper-parameters its parent must share
    (`TrainRecipe.warm_requirements`); `carriers` each to the variants that carry its weights
    (`compression.variants.weight_carriers`); `series_first_day` gives each (store, item) of
    tonight's sales its first day.

    The whole night is cold when asked (`cold`); when the last cold run is `cold_every_days` or
    more days old (or there is none); when a severe drift alert opened after the last cold run
    is still open; when tonight's sales hold series that began after the parents' data ended.
    Otherwise each from-scratch variant with a parent (`last_approved`) of the same
    architecture and training, whose weights are in the artifact store, is fine-tuned from it
    (a warm night); one without trains from nothing, and the reason says why. With no parent
    at all the night is cold.
    """
    night_reasons = ["asked for (--cold)"] if cold else []
    parents: dict[str, ModelVersion] = {}
    orphans: list[str] = []  # why a variant has no parent
    for variant, required in requirements.items():
        parent = last_approved(session, variant, profile=profile, before=as_of,
                               carriers=(carriers or {}).get(variant, ()))
        differs = parent and sorted(key for key, value in required.items()
                                    if (parent.hyperparams or {}).get(key) != value)
        if parent is None:
            orphans.append(f"no approved {variant} from an earlier {profile} night")
        elif differs:
            orphans.append(f"{variant} version {parent.id} differs in {', '.join(differs)}")
        elif not weights_stored(parent.artifact_uri):
            orphans.append(f"{variant} version {parent.id} has no stored weights")
        else:
            parents[variant] = parent
    last_cold = last_cold_run(session, before=as_of)
    if last_cold is None:
        night_reasons.append("no earlier cold run")
    elif (as_of - last_cold.as_of).days >= cold_every_days:
        night_reasons.append(f"scheduled: the last cold run ({last_cold.as_of}) is "
                             f"{(as_of - last_cold.as_of).days} days old (every {cold_every_days})")
    drift = [alert for alert in open_alerts(session, kind="data_drift", severity="severe")
             if last_cold is None or _utc(alert.first_seen) > _utc(last_cold.started_at)]
    if drift:
        night_reasons.append("severe drift alert " + ", ".join(str(a.id) for a in drift)
                             + " open since the last cold run")
    if parents:
        seen_until = min(parent.run.data_end for parent in parents.values())
        new = [pair for pair, first in series_first_day.items() if first > seen_until]
        if new:
            night_reasons.append(f"{len(new)} new series the parents never saw ({_series(new)})")
    if night_reasons or not parents:
        return StartPlan(start="cold", reason="; ".join(orphans + night_reasons))
    fresh = [variant for variant in requirements if variant not in parents]
    return StartPlan(
        start="warm",
        reason="fine-tuned from the last approved " + ", ".join(
            f"{variant} (version {parent.id}, {parent.run.as_of})"
            for variant, parent in parents.items())
        + (f"; {', '.join(fresh)} trained from nothing: {'; '.join(orphans)}" if fresh else "")
        + f"; last cold run {last_cold.as_of}",
        parents={variant: parent.id for variant, parent in parents.items()},
        weights={variant: weights_uri(parent.artifact_uri) for variant, parent in parents.items()})
