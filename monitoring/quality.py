"""Forecast quality of a released model: its LiteRT forecasts of the last days, scored
against the actuals that arrived since, compared with the MAPE it showed at the gate."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from compression.metrics import forecast_errors
from compression.windows import WINDOW_DAYS, make_windows, sales_matrix
from device.runtime import Forecaster


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

    @property
    def degraded(self) -> bool:
        return self.rolling_mape_pct > self.gate_mape_pct + self.margin_pct

    @property
    def message(self) -> str:
        return (f"{self.device_class}: released version {self.model_version} scored MAPE "
                f"{self.rolling_mape_pct:.2f} % on {self.windows} forecasts for {self.start}.."
                f"{self.end}, against {self.gate_mape_pct:.2f} % at the gate (margin "
                f"{self.margin_pct:g} points)")


def score_release(sales: pd.DataFrame, as_of: dt.date, model_content: bytes, *,
                  trained_through: dt.date, model_version: int, device_class: str,
                  gate_mape_pct: float, config: QualityConfig = QualityConfig()) -> QualityScore | None:
    """Score the model on every window whose target day is within the last `days` up to
    `as_of` and after its training data; None when no such actual has arrived yet."""
    start = max(as_of - dt.timedelta(days=config.days - 1), trained_through + dt.timedelta(days=1))
    if start > as_of:
        return None
    recent = sales[sales["date"].between(pd.Timestamp(start - dt.timedelta(days=WINDOW_DAYS)),
                                         pd.Timestamp(as_of))]
    if recent.empty:
        return None
    matrix = sales_matrix(recent)
    windows = make_windows(matrix)
    keep = matrix.dates[windows.target_pos] >= pd.Timestamp(start)
    windows = windows.take(keep)
    if len(windows) == 0:
        return None
    forecast = Forecaster(model_content).forecast(windows.history)
    errors = forecast_errors(windows.target, forecast)
    return QualityScore(model_version, device_class, start, as_of, len(windows), errors.mape_pct,
                        gate_mape_pct, config.margin_pct)
