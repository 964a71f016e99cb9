"""Forecast quality of a released model: its LiteRT forecasts of the last days, scored
against the actuals that arrived since, compared with the MAPE it showed at the gate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from compression.metrics import forecast_errors
from compression.windows import KEPT_DAYS, make_windows, sales_matrix
from device.runtime import Forecaster
from policy.records import CanaryErrors


@dataclass(frozen=True)
class QualityConfig:
    days: int = 7  # the rolling window of target days scored each night
    margin_pct: float = 5.0  # alert when rolling MAPE > gate MAPE + this many points


@dataclass(frozen=True)
class QualityScore:
    model_version: int
    device_class: str
    start: dt.date
    end: dt.date
    windows: int
    rolling_mape_pct: float
    gate_mape_pct: float
    margin_pct: float
    stores_scored: list[int] = field(default_factory=list)
    store_mape_pct: dict[int, float] = field(default_factory=dict)
    store_gate_mape_pct: dict[int, float] = field(default_factory=dict)
    channel: str = "stable"

    @property
    def degraded_stores(self) -> list[int]:
        """Stores whose rolling MAPE is over their own figure at the gate plus the margin."""
        return sorted(store for store, mape in self.store_mape_pct.items()
                      if mape > self.store_gate_mape_pct.get(store, self.gate_mape_pct)
                      + self.margin_pct)

    @property
    def degraded(self) -> bool:
        return self.rolling_mape_pct > self.gate_mape_pct + self.margin_pct \
            or bool(self.degraded_stores)

    @property
    def message(self) -> str:
        worse = "".join(f"; store {s} at {self.store_mape_pct[s]:.2f} % (gate "
                        f"{self.store_gate_mape_pct.get(s, self.gate_mape_pct):.2f} %)"
                        for s in self.degraded_stores)
        return (f"{self.device_class}/{self.channel}: released version {self.model_version} "
                f"scored MAPE {self.rolling_mape_pct:.2f} % on {self.windows} forecasts in stores "
                f"{_stores(self.stores_scored)} for {self.start}..{self.end}, against "
                f"{self.gate_mape_pct:.2f} % at the gate (margin {self.margin_pct:g} points)"
                + worse)


def _stores(stores: list[int]) -> str:
    return ", ".join(map(str, stores)) if len(stores) <= 8 else f"{len(stores)} stores"


def score_release(sales: pd.DataFrame, as_of: dt.date, model_content: bytes, *,
                  trained_through: dt.date, model_version: int, device_class: str,
                  gate_mape_pct: float, config: QualityConfig = QualityConfig(),
                  stores: Sequence[int] | None = None, exclude_stores: Sequence[int] = (),
                  store_gate_mape_pct: dict[int, float] | None = None,
                  channel: str = "stable", since: dt.date | None = None) -> QualityScore | None:
    """Score the model on every window whose target day is within the last `days` up to
    `as_of` (or from `since`, when given) and after its training data, in the stores it runs
    in (`stores`, or every store but `exclude_stores`), overall and per store; None when no
    such actual has arrived yet."""
    if stores is not None:
        sales = sales[sales["store"].isin(list(stores))]
    if exclude_stores:
        sales = sales[~sales["store"].isin(list(exclude_stores))]
    first = since if since is not None else as_of - dt.timedelta(days=config.days - 1)
    start = max(first, trained_through + dt.timedelta(days=1))
    if start > as_of:
        return None
    # a year before the first target day: the static inputs a device computes look back that far
    recent = sales[sales["date"].between(pd.Timestamp(start - dt.timedelta(days=KEPT_DAYS)),
                                         pd.Timestamp(as_of))]
    if recent.empty:
        return None
    matrix = sales_matrix(recent)
    windows = make_windows(matrix)
    keep = matrix.dates[windows.target_pos] >= pd.Timestamp(start)
    windows = windows.take(keep)
    if len(windows) == 0:
        return None
    forecast = Forecaster(model_content).forecast(windows.history, windows.target_weekday,
                                                  windows.static)
    errors = forecast_errors(windows.target, forecast)
    window_store = np.array([matrix.series[s][0] for s in windows.series])
    per_store = {int(store): forecast_errors(windows.target[window_store == store],
                                             forecast[window_store == store]).mape_pct
                 for store in np.unique(window_store)}
    return QualityScore(model_version, device_class, start, as_of, len(windows), errors.mape_pct,
                        gate_mape_pct, config.margin_pct, sorted(per_store),
                        {k: v for k, v in per_store.items() if v == v},
                        dict(store_gate_mape_pct or {}), channel)


def store_figures(evaluation: dict) -> dict[int, float]:
    """A version's MAPE per store at its gate, from its stored evaluation."""
    return {int(store): scores["mape_pct"] for store, scores in (evaluation or {}).get(
        "stores", {}).items() if scores.get("mape_pct") == scores.get("mape_pct")}


@dataclass(frozen=True)
class ScoredModel:
    """A released model as the canary comparison needs it."""

    version: int
    content: bytes
    trained_through: dt.date
    gate_mape_pct: float


def compare_canary(sales: pd.DataFrame, as_of: dt.date, *, device_class: str,
                   canary_release: int, started: dt.date, stores: Sequence[int],
                   canary: ScoredModel, stable: ScoredModel | None) -> CanaryErrors:
    """The canary's and the fleet model's MAPE in the canary `stores`, on every window whose
    target day is after the canary `started` (and after both models' training data) up to
    `as_of`: the same windows for both, scored with `score_release`."""
    since = max(started, canary.trained_through, stable.trained_through if stable else started) \
        + dt.timedelta(days=1)
    found = dict(device_class=device_class, canary_release=canary_release,
                 canary_version=canary.version, stable_version=stable and stable.version,
                 stores=sorted(stores), start=since, end=as_of, windows=0)
    if stable is None:
        return CanaryErrors(**found)
    scores = [score_release(sales, as_of, model.content, trained_through=model.trained_through,
                            model_version=model.version, device_class=device_class,
                            gate_mape_pct=model.gate_mape_pct, stores=stores, since=since,
                            channel=channel)
              for model, channel in ((canary, "canary"), (stable, "stable"))]
    if scores[0] is None or scores[1] is None:
        return CanaryErrors(**found)
    return CanaryErrors(**{**found, "windows": scores[0].windows},
                        canary_mape_pct=scores[0].rolling_mape_pct,
                        stable_mape_pct=scores[1].rolling_mape_pct)
