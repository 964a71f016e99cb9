"""The forecasting peers a user would pick instead of Shelfcast's LSTMs (issue 29, item 4), each
forecasting exactly the split's test windows, so that they are scored like the variants."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.article import _row, gradient_boosting_forecast
from compression.evaluation import yardstick
from compression.metrics import SEASON_DAYS
from compression.windows import Split, WindowSet

STATISTICAL_MODELS = ("AutoETS", "AutoTheta")
MIN_FIT_DAYS = 8 * SEASON_DAYS  # a series with fewer days before the test period is not fitted
LAG_DAYS = 28  # mlforecast's recipe: the 28 days before the target day ...
ROLLING_DAYS = (7, 28)  # ... and the means of the last 7 and 28 of them


@dataclass(frozen=True)
class PeerForecast:
    """One peer's forecast of every test window, what it reads, and its seconds to fit and
    forecast; `fallback_windows` of them had the mean of their 14 days instead (see
    `statistical_forecast`)."""

    name: str
    inputs: str
    forecast: np.ndarray  # float64 (test windows,), in the order of split.test
    seconds: float
    fallback_windows: int = 0


def peer_forecasts(split: Split, *, progress=print) -> list[PeerForecast]:
    """Every peer on `split.test`: LightGBM on Shelfcast's inputs and with calendar and ids,
    statsforecast's AutoETS and AutoTheta, and mlforecast's LightGBM recipe."""
    peers = []
    for calendar in (False, True):
        progress(f"peer: LightGBM{' with calendar and ids' if calendar else ''}")
        forecast, seconds = gradient_boosting_forecast(split, calendar=calendar)
        name, inputs = (("LightGBM, L1, with calendar and ids",
                         "14 days + the target's weekday, day of year, store, item") if calendar
                        else ("LightGBM, L1, Shelfcast's inputs",
                              "14 days + the target's weekday (Shelfcast's v2 inputs)"))
        peers.append(PeerForecast(name, inputs, forecast, seconds))
    for model in STATISTICAL_MODELS:
        progress(f"peer: {model}")
        peers.append(statistical_forecast(split, model))
    progress("peer: LightGBM, mlforecast's recipe")
    peers.append(lag_recipe_forecast(split))
    return peers


def peer_rows(split: Split, peers: list[PeerForecast]) -> list[dict]:
    """Each peer in MAPE, WAPE and MASE on the test windows, as the variants and the floors."""
    ys = yardstick(split)
    return [_row(ys, p.name, p.forecast) | {"inputs": p.inputs, "train_seconds": round(p.seconds, 1),
                                            "fallback_windows": p.fallback_windows,
                                            "windows": len(split.test)} for p in peers]


def statistical_forecast(split: Split, model: str) -> PeerForecast:
    """statsforecast's `model` (AutoETS or AutoTheta, season 7) forecasting each test window's
    day one day ahead from its series' days before it.

    The parameters are fitted once per series, on its days before the test period; each test
    day after the first only updates the fitted model's state with the day before
    (``cross_validation(refit=False)``): refitting every day would take hours. A series with
    fewer than `MIN_FIT_DAYS` days before the test period, and any window the model leaves
    without a finite forecast, gets the mean of the window's 14 days (`fallback_windows`)."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta

    if model not in STATISTICAL_MODELS:
        raise ValueError(f"unknown statistical peer {model!r}: expected one of {STATISTICAL_MODELS}")
    started = time.perf_counter()
    test = split.test
    first, last = int(test.target_pos.min()), int(test.target_pos.max())
    values = split.matrix.values[: last + 1]
    begins = np.isfinite(values).argmax(axis=0)
    # The models need an unbroken daily series: a day a series has no row counts as no sales
    # (as for the intermittent references). A test window's own 14 days and target are never
    # such a day (windows touching a missing day do not exist); filled days only move the
    # fitted level and season.
    sales = np.nan_to_num(values, nan=0.0)
    fitted = [s for s in np.unique(test.series) if first - begins[s] >= MIN_FIT_DAYS]
    forecast = np.full(len(test), np.nan)
    if fitted:
        frame = pd.concat([pd.DataFrame({"unique_id": s, "ds": np.arange(begins[s], last + 1),
                                         "y": sales[begins[s]:, s]}) for s in fitted])
        estimator = {"AutoETS": AutoETS, "AutoTheta": AutoTheta}[model](season_length=SEASON_DAYS)
        rolled = StatsForecast(models=[estimator], freq=1, n_jobs=1).cross_validation(
            df=frame, h=1, step_size=1, n_windows=last - first + 1, refit=False)
        # (series, target day) of every test window -> its row in the cross-validation's output
        keys = pd.MultiIndex.from_arrays([test.series, test.target_pos])
        rows = pd.MultiIndex.from_arrays([rolled["unique_id"].to_numpy(), rolled["ds"].to_numpy()])
        found = rows.get_indexer(keys)
        column = rolled[model].to_numpy(dtype=np.float64)
        forecast = np.where(found >= 0, column[np.maximum(found, 0)], np.nan)
    fallback = ~np.isfinite(forecast)
    forecast[fallback] = test.history[fallback].mean(axis=1)
    # additive models forecast below zero after runs of zeros; no one would order that
    forecast = np.maximum(forecast, 0.0)
    return PeerForecast(model, f"every day of the series before the target's (season {SEASON_DAYS}; "
                               "fitted once before the test period, then updated daily)",
                        forecast, time.perf_counter() - started, int(fallback.sum()))


def lag_recipe_forecast(split: Split, *, max_train_windows: int = 200_000) -> PeerForecast:
    """mlforecast's usual LightGBM recipe, built here on the split's windows (mlforecast is not
    a dependency): the 28 days before the target day as they are (no scaling, NaN before a
    series' first day and where it has no row: LightGBM routes missing values itself), the
    means of the last 7 and 28 of them (of the days present), the target's weekday and day of
    year. The trees are the other LightGBM peers': L1, early stopping on the validation
    windows."""
    from bench.article import l1_trees

    started = time.perf_counter()
    matrix = split.matrix
    padded = np.vstack([np.full((LAG_DAYS, len(matrix.series)), np.nan), matrix.values])

    def features(windows: WindowSet) -> np.ndarray:
        # rows t - 28 .. t - 1 of the matrix are rows t .. t + 27 of `padded`, oldest first
        lags = padded[windows.target_pos[:, None] + np.arange(LAG_DAYS), windows.series[:, None]]
        means = [np.nanmean(lags[:, -days:], axis=1) for days in ROLLING_DAYS]
        day_of_year = matrix.dates[windows.target_pos].dayofyear.to_numpy()
        return np.column_stack([lags, *means, windows.target_weekday, day_of_year]).astype(np.float32)

    train = split.train.sample(max_train_windows, seed=0)
    model = l1_trees(features(train), train.target, features(split.validation),
                     split.validation.target)
    forecast = model.predict(features(split.test)).astype(np.float64)
    return PeerForecast("LightGBM, L1, mlforecast's recipe (built here)",
                        f"{LAG_DAYS} days + rolling means {'/'.join(map(str, ROLLING_DAYS))} + "
                        "the target's weekday, day of year", forecast, time.perf_counter() - started)
