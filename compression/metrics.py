"""Forecast error metrics and reference forecasts, defined once for the whole project."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compression.windows import SalesMatrix, WindowSet

SEASON_DAYS = 7  # MASE scales by the error of "the same weekday last week" in-sample


@dataclass(frozen=True)
class ForecastErrors:
    mape_pct: float  # mean |a - f| / a over windows whose actual is not zero
    wape_pct: float  # sum |a - f| / sum a over all windows
    windows: int
    zero_actuals: int  # windows left out of MAPE because their actual was 0
    mase: float = np.nan  # mean |a - f| / the series' in-sample seasonal naive error

    @property
    def zero_share(self) -> float:
        return self.zero_actuals / self.windows


def forecast_errors(actual: np.ndarray, forecast: np.ndarray, *,
                    mase_scale: np.ndarray | None = None) -> ForecastErrors:
    """MAPE (zero actuals excluded and counted) and WAPE, in percent; MASE when each window's
    series scale is given (`mase_scale`, see `seasonal_naive_scale`)."""
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
    mase = float(np.mean(abs_err / mase_scale)) if mase_scale is not None else np.nan
    return ForecastErrors(mape, wape, int(actual.size), int((~nonzero).sum()), mase)


def seasonal_naive_scale(values: np.ndarray, until: int) -> np.ndarray:
    """Per series (column), the mean |y_t - y_(t-7)| over days before row `until`: MASE's
    denominator, from training data only. Floored at a small positive value so a constant
    series does not divide by zero."""
    history = values[:until]
    diffs = np.abs(history[SEASON_DAYS:] - history[:-SEASON_DAYS])
    with np.errstate(invalid="ignore"):
        scale = np.nanmean(diffs, axis=0) if len(diffs) else np.full(values.shape[1], np.nan)
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1e-3)


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
