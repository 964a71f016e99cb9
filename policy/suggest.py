"""Limits to propose for a device class from a night's figures (`shelfcast gate suggest`): the
loosest a policy needs so that a model better than the best reference forecast passes, in the
metric the class's policy resolves to. Nothing changes until a person runs `gate set`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from policy.limits import BY_NAME
from policy.records import Evaluation


@dataclass(frozen=True)
class Suggestion:
    field: str  # the policy field (`mase_max_error` for MASE's max_error)
    current: float
    suggested: float
    why: str

    @property
    def changes(self) -> bool:
        return self.suggested != self.current


def field_for(limit: str, metric: str) -> str:
    """The policy field that holds `limit` when the gate measures `metric`."""
    twin = f"mase_{limit}"
    return twin if metric == "mase" and twin in BY_NAME else limit


def _round_up(value: float) -> float:
    """Up to two significant figures, so a proposal reads like a limit a person would set."""
    if value <= 0 or not math.isfinite(value):
        return value
    step = 10 ** (math.floor(math.log10(value)) - 1)
    return round(math.ceil(value / step - 1e-9) * step, 10)


def _worst_slice(evaluation: Evaluation, metric: str) -> float:
    values = [s.metric(metric) for kind in (evaluation.stores, evaluation.items)
              for s in kind.values() if math.isfinite(s.metric(metric))]
    return max(values) if values else math.nan


@dataclass(frozen=True)
class Proposal:
    metric: str
    reference: str  # the best reference forecast in `metric`
    reference_error: float
    suggestions: list[Suggestion]
    notes: list[str]

    def limits(self, values: dict) -> dict:
        """`values` with every suggestion applied."""
        return values | {s.field: s.suggested for s in self.suggestions}


def suggest_limits(values: dict, metric: str, *, references: dict[str, Evaluation],
                   candidates: dict[str, Evaluation], baseline: str) -> Proposal:
    """Per error limit of `metric`, the current value and the proposal:

    - `max_error` and `max_worst_slice` at least the best reference's error and worst store or
      item (rounded up): those rules must never refuse a model that beats every reference;
    - `max_delta_baseline` at least the largest gap to `baseline` of a candidate that beats the
      best reference (a compressed model that still beats it is worth shipping);
    - `max_reference_ratio` stays: a model that does not beat the references is no forecaster;
    - for MAPE, when the held-out zero share is over `max_zero_share_pct`, a note: metric
      `auto` (MAPE leaves the zero days out).
    """
    best_name = min(references, key=lambda n: references[n].mean_over_origins(metric))
    best = references[best_name]
    reference_error = best.mean_over_origins(metric)
    proposals, notes = [], []

    def propose(limit: str, floor: float, why: str) -> None:
        name = field_for(limit, metric)
        current = float(values[name])
        wanted = _round_up(floor) if math.isfinite(floor) else current
        proposals.append(Suggestion(name, current, max(current, wanted), why))

    propose("max_error", reference_error,
            f"the best reference, {best_name}, has {metric} {reference_error:.4g}")
    propose("max_worst_slice", _worst_slice(best, metric),
            f"{best_name}'s worst store or item has {metric} {_worst_slice(best, metric):.4g}")
    beating = {name: e.mean_over_origins(metric) for name, e in candidates.items()
               if e.mean_over_origins(metric) <= reference_error * values["max_reference_ratio"]}
    if baseline in candidates and beating:
        gap = max(error - candidates[baseline].mean_over_origins(metric)
                  for error in beating.values())
        propose("max_delta_baseline", gap,
                f"{len(beating)} variant(s) beat {best_name}; the furthest from {baseline} is "
                f"{gap:+.4g} from it")
    else:
        name = field_for("max_delta_baseline", metric)
        proposals.append(Suggestion(name, float(values[name]), float(values[name]),
                                    f"no variant beats {best_name} in {metric}: nothing to let "
                                    "through"))
    proposals.append(Suggestion("max_reference_ratio", float(values["max_reference_ratio"]),
                                float(values["max_reference_ratio"]),
                                "kept: a model must beat the best reference to be a forecaster"))
    if metric == "mape_pct":
        share = best.overall.zero_share * 100
        if share > values["max_zero_share_pct"]:
            notes.append(f"{share:.0f} % of the actuals are zero, over max_zero_share_pct "
                         f"{values['max_zero_share_pct']:g}: set --metric auto (MASE on such data)")
    return Proposal(metric, best_name, reference_error, proposals, notes)
