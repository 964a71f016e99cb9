"""Forecast error metrics and reference forecasts, defined once for the whole project."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compression.windows import SalesMatrix, WindowSet


@dataclass(frozen=True)
class ForecastErrors:
    mape_pct: float  # mean |a - f| / a over windows whose actual is not zero
    wape_pct: float  # sum |a - f| / sum a over all windows
    windows: int
    zero_actuals: int  # windows left out of MAPE because their actual was 0


def forecast_errors(actual: np.ndarray, forecast: np.ndarray) -> ForecastErrors:
    """MAPE (zero actuals excluded and counted) and WAPE, in percent."""
    actual = np.asarray(actual, dtype=np.float64).ravel()
    forecast = np.asarray(forecast, dtype=np.float64).ravel()
    if actual.shape != forecast.shape:
        raise ValueError(f"actual {actual.shape} and forecast {forecast.shape} differ in shape")
    if actual.size == 0:
        raise ValueError("no windows to score")
    nonzero = actual != 0
    abs_err = np.abs(actual - forecast)
    mape = float(np.mean(abs_err[nonzero] / actual[nonzero]) * 100) if nonzero.any() else np.nan
    total = actual.sum()
    wape = float(abs_err.sum() / total * 100) if total else np.nan
    return ForecastErrors(mape, wape, int(actual.size), int((~nonzero).sum()))


def same_weekday_last_week(matrix: SalesMatrix, windows: WindowSet) -> np.ndarray:
    """Reference forecast: the sales of the same weekday one week earlier."""
    return matrix.values[windows.target_pos - 7, windows.series]


def mean_of_last_weekdays(matrix: SalesMatrix, windows: WindowSet, weeks: int = 4) -> np.ndarray:
    """Reference forecast: the mean of the same weekday over the last `weeks` weeks
    (fewer where the series does not go back that far)."""
    lags = np.stack(
        [
            np.where(
                windows.target_pos - 7 * k >= 0,
                matrix.values[np.maximum(windows.target_pos - 7 * k, 0), windows.series],
                np.nan,
            )
            for k in range(1, weeks + 1)
        ]
    )
    return np.nanmean(lags, axis=0)
