"""Scoring forecasts on the night's held-out windows: MAPE, WAPE and MASE overall, per
forecast origin, per store, per item, and per (series, origin) unit for the gate's paired
test. Candidates, released models and the reference forecasts are all scored here, on the
same windows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from compression.metrics import (
    forecast_errors,
    mean_of_last_weekdays,
    same_weekday_last_week,
    seasonal_naive_scale,
)
from compression.windows import KEPT_DAYS, SalesMatrix, Split, WindowSet
from policy.records import GATE_METRICS, Evaluation, Scores

ORIGINS = 4  # the test period is scored as this many consecutive blocks of target days
REFERENCES = ("same weekday last week", "mean of last 4 same weekdays")
# for intermittent demand (statsforecast's implementations, one step ahead on every test day)
INTERMITTENT_REFERENCES = ("Croston SBA", "TSB", "ADIDA", "IMAPA", "mean of last 28 days")
MEAN_DAYS = 28


@dataclass(frozen=True)
class Yardstick:
    """The night's held-out windows and what scoring them needs."""

    test: WindowSet
    series: list[tuple[int, int]]  # (store, item) of each series column
    window_scale: np.ndarray  # per test window: its series' MASE scale
    origin: np.ndarray  # per test window: its origin block, 0 .. origins - 1
    origins: int
    references: dict[str, np.ndarray]  # reference forecasts of every test window
    probe: tuple[list[float | None], dt.date]  # the last test window's kept days and date


def window_kept_days(matrix, series: int, target_pos: int) -> tuple[list[float | None], dt.date]:
    """A window's kept days as the device holds them (up to `KEPT_DAYS` before its target day,
    None where the series has no record) and its target date: a manifest's probe."""
    values = matrix.values[max(0, target_pos - KEPT_DAYS):target_pos, series]
    return ([None if np.isnan(v) else float(v) for v in values],
            matrix.dates[target_pos].date())


def yardstick(split: Split, *, origins: int = ORIGINS) -> Yardstick:
    """Origins are consecutive, equal blocks of the test period's target days."""
    test = split.test
    days = np.unique(test.target_pos)
    origins = max(1, min(origins, len(days)))
    block_of_day = np.searchsorted(days, test.target_pos) * origins // len(days)
    scale = seasonal_naive_scale(split.matrix.values, int(days[0]))
    return Yardstick(
        test=test, series=list(split.matrix.series), window_scale=scale[test.series],
        origin=block_of_day.astype(int), origins=origins,
        references={REFERENCES[0]: same_weekday_last_week(split.matrix, test),
                    REFERENCES[1]: mean_of_last_weekdays(split.matrix, test)},
        probe=window_kept_days(split.matrix, int(test.series[-1]), int(test.target_pos[-1])))


def _scores(actual: np.ndarray, forecast: np.ndarray, scale: np.ndarray) -> Scores:
    errors = forecast_errors(actual, forecast, mase_scale=scale)
    return Scores(mape_pct=errors.mape_pct, wape_pct=errors.wape_pct, mase=errors.mase,
                  zero_share=errors.zero_share, windows=errors.windows)


def evaluate(ys: Yardstick, forecast: np.ndarray) -> Evaluation:
    """Every figure the gate and the registry keep, for one forecast of every test window."""
    actual = ys.test.target.astype(np.float64)
    forecast = np.asarray(forecast, dtype=np.float64)
    stores = np.array([ys.series[s][0] for s in ys.test.series])
    items = np.array([ys.series[s][1] for s in ys.test.series])

    def grouped(keys: np.ndarray) -> dict[int, Scores]:
        return {int(key): _scores(actual[keys == key], forecast[keys == key],
                                  ys.window_scale[keys == key]) for key in np.unique(keys)}

    return Evaluation(
        overall=_scores(actual, forecast, ys.window_scale),
        origins=[_scores(actual[ys.origin == o], forecast[ys.origin == o],
                         ys.window_scale[ys.origin == o]) for o in range(ys.origins)],
        stores=grouped(stores), items=grouped(items), units=_unit_errors(ys, actual, forecast))


def _unit_errors(ys: Yardstick, actual: np.ndarray, forecast: np.ndarray) -> dict[str, np.ndarray]:
    """Per metric, the error of each (series, origin) unit in a fixed order: the pairs of the
    gate's paired test (NaN where a unit has no defined value, e.g. MAPE of all-zero days)."""
    frame = pd.DataFrame({"series": ys.test.series, "origin": ys.origin, "actual": actual,
                          "abs_err": np.abs(actual - forecast), "scale": ys.window_scale})
    frame["ape"] = np.where(frame["actual"] != 0, frame["abs_err"] / frame["actual"].where(
        frame["actual"] != 0, 1.0), np.nan)
    frame["scaled"] = frame["abs_err"] / frame["scale"]
    index = pd.MultiIndex.from_product([range(len(ys.series)), range(ys.origins)],
                                       names=["series", "origin"])
    groups = frame.groupby(["series", "origin"])
    sums = groups[["abs_err", "actual"]].sum().reindex(index)
    units = {
        "mape_pct": groups["ape"].mean().reindex(index).to_numpy() * 100,
        "wape_pct": (sums["abs_err"] / sums["actual"].where(sums["actual"] > 0)).to_numpy() * 100,
        "mase": groups["scaled"].mean().reindex(index).to_numpy(),
    }
    assert set(units) == set(GATE_METRICS)
    return units


def reference_evaluations(ys: Yardstick, matrix: SalesMatrix | None = None
                          ) -> dict[str, Evaluation]:
    """The reference forecasts scored like any model, on the same windows; with the sales
    `matrix`, the intermittent-demand references too (`intermittent_references`)."""
    forecasts = dict(ys.references)
    if matrix is not None:
        forecasts |= intermittent_references(matrix, ys.test)
    return {name: evaluate(ys, forecast) for name, forecast in forecasts.items()}


def intermittent_references(matrix: SalesMatrix, test: WindowSet) -> dict[str, np.ndarray]:
    """Croston (SBA), TSB, ADIDA, IMAPA (statsforecast) and the mean of the last 28 days, each
    forecasting every test window's day from the days before it (a rolling origin, one day
    ahead, refitted each day). A series is fitted from its first day with sales data; days it
    has no row count as no sales. A series with too little history before the test period for
    statsforecast gets the 28-day mean for every method."""
    from statsforecast import StatsForecast
    from statsforecast.models import ADIDA, IMAPA, TSB, CrostonSBA

    first, last = int(test.target_pos.min()), int(test.target_pos.max())
    values = matrix.values[: last + 1]
    started = np.isfinite(values).argmax(axis=0)
    sales = np.nan_to_num(values, nan=0.0)
    mean = _trailing_mean(sales, started, test)
    forecasts = {name: mean.copy() for name in INTERMITTENT_REFERENCES}
    horizon = last - first + 1
    fitted = [s for s in range(values.shape[1]) if first - started[s] >= 2 * MEAN_DAYS]
    if not fitted:
        return forecasts
    frame = pd.concat([pd.DataFrame({"unique_id": s, "ds": np.arange(started[s], last + 1),
                                     "y": sales[started[s]:, s]}) for s in fitted])
    models = [CrostonSBA(), TSB(alpha_d=0.1, alpha_p=0.1), ADIDA(), IMAPA()]
    rolled = StatsForecast(models=models, freq=1, n_jobs=1).cross_validation(
        df=frame, h=1, step_size=1, n_windows=horizon)
    # (series, day) of every test window -> its row in the cross-validation's output
    keys = pd.MultiIndex.from_arrays([test.series, test.target_pos])
    rows = pd.MultiIndex.from_arrays([rolled["unique_id"].to_numpy(), rolled["ds"].to_numpy()])
    found = rows.get_indexer(keys)
    for name, model in zip(INTERMITTENT_REFERENCES[:len(models)], models, strict=True):
        column = rolled[repr(model)].to_numpy()
        forecasts[name] = np.where(found >= 0, column[np.maximum(found, 0)], mean)
    return forecasts


def _trailing_mean(sales: np.ndarray, started: np.ndarray, test: WindowSet) -> np.ndarray:
    """Per test window, its series' mean sales over the (up to) 28 days before its day."""
    cumulative = np.vstack([np.zeros(sales.shape[1]), np.cumsum(sales, axis=0)])
    end = test.target_pos
    begin = np.maximum(end - MEAN_DAYS, started[test.series])
    total = cumulative[end, test.series] - cumulative[begin, test.series]
    return total / np.maximum(end - begin, 1)
