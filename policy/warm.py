"""Warm or cold: whether a night fine-tunes the last approved weights of its from-scratch
models or trains every model from nothing, decided from what the registry holds
(`storage.warm.start_facts` loads it).

Only nights strictly before tonight's count, so running a night again (after a crash, or to
check it) plans the same start, the same run key and the same parents.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from policy.records import StartPlan


@dataclass(frozen=True)
class ParentCandidate:
    """The newest approved version of a from-scratch variant from an earlier night."""

    version_id: int
    as_of: dt.date  # its night
    data_end: dt.date  # the last day of sales it was trained on
    hyperparams: dict
    weights_stored: bool
    weights_uri: str


@dataclass(frozen=True)
class StartFacts:
    """What the warm/cold decision reads from the registry."""

    parents: dict[str, ParentCandidate | None]  # per from-scratch variant
    last_cold: dt.date | None  # the as-of date of the newest cold run before tonight
    last_cold_started: dt.datetime | None  # naive UTC
    severe_drift: list[tuple[int, dt.datetime]] = field(default_factory=list)  # open: id, since


def _series(pairs: Iterable[tuple[int, int]], shown: int = 3) -> str:
    pairs = sorted(pairs)
    listed = ", ".join(f"store {store} item {item}" for store, item in pairs[:shown])
    return listed + (f" and {len(pairs) - shown} more" if len(pairs) > shown else "")


def plan_start(facts: StartFacts, *, as_of: dt.date, profile: str,
               requirements: Mapping[str, Mapping],
               series_first_day: Mapping[tuple[int, int], dt.date], cold_every_days: int = 7,
               cold: bool = False) -> StartPlan:
    """Warm or cold for the night `as_of` of `profile`, with every reason.

    `requirements` maps each from-scratch variant to the hyper-parameters its parent must share
    (`TrainRecipe.warm_requirements`); `series_first_day` gives each (store, item) of tonight's
    sales its first day.

    The whole night is cold when asked (`cold`); when the last cold run is `cold_every_days` or
    more days old (or there is none); when a severe drift alert opened after the last cold run
    is still open; when tonight's sales hold series that began after the parents' data ended.
    Otherwise each from-scratch variant with a parent of the same architecture and training,
    whose weights are stored, is fine-tuned from it (a warm night); one without trains from
    nothing, and the reason says why. With no parent at all the night is cold.
    """
    night_reasons = ["asked for (--cold)"] if cold else []
    parents: dict[str, ParentCandidate] = {}
    orphans: list[str] = []  # why a variant has no parent
    for variant, required in requirements.items():
        parent = facts.parents.get(variant)
        differs = parent and sorted(key for key, value in required.items()
                                    if (parent.hyperparams or {}).get(key) != value)
        if parent is None:
            orphans.append(f"no approved {variant} from an earlier {profile} night")
        elif differs:
            orphans.append(f"{variant} version {parent.version_id} differs in {', '.join(differs)}")
        elif not parent.weights_stored:
            orphans.append(f"{variant} version {parent.version_id} has no stored weights")
        else:
            parents[variant] = parent
    if facts.last_cold is None:
        night_reasons.append("no earlier cold run")
    elif (as_of - facts.last_cold).days >= cold_every_days:
        night_reasons.append(f"scheduled: the last cold run ({facts.last_cold}) is "
                             f"{(as_of - facts.last_cold).days} days old (every {cold_every_days})")
    drift = [alert for alert, since in facts.severe_drift
             if facts.last_cold_started is None or since > facts.last_cold_started]
    if drift:
        night_reasons.append("severe drift alert " + ", ".join(str(a) for a in drift)
                             + " open since the last cold run")
    if parents:
        seen_until = min(parent.data_end for parent in parents.values())
        new = [pair for pair, first in series_first_day.items() if first > seen_until]
        if new:
            night_reasons.append(f"{len(new)} new series the parents never saw ({_series(new)})")
    if night_reasons or not parents:
        return StartPlan(start="cold", reason="; ".join(orphans + night_reasons))
    fresh = [variant for variant in requirements if variant not in parents]
    return StartPlan(
        start="warm",
        reason="fine-tuned from the last approved " + ", ".join(
            f"{variant} (version {parent.version_id}, {parent.as_of})"
            for variant, parent in parents.items())
        + (f"; {', '.join(fresh)} trained from nothing: {'; '.join(orphans)}" if fresh else "")
        + f"; last cold run {facts.last_cold}",
        parents={variant: parent.version_id for variant, parent in parents.items()},
        weights={variant: parent.weights_uri for variant, parent in parents.items()})
