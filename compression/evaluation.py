"""Scoring forecasts on the night's held-out windows: MAPE, WAPE and MASE overall, per
forecast origin, per store, per item, and per (series, origin) unit for the gate's paired
test. Candidates, released models and the reference forecasts are all scored here, on the
same windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from compression.metrics import (
    forecast_errors,
    mean_of_last_weekdays,
    same_weekday_last_week,
    seasonal_naive_scale,
)
from compression.windows import Split, WindowSet
from policy.records import GATE_METRICS, Evaluation, Scores

ORIGINS = 4  # the test period is scored as this many consecutive blocks of target days
REFERENCES = ("same weekday last week", "mean of last 4 same weekdays")


@dataclass(frozen=True)
class Yardstick:
    """The night's held-out windows and what scoring them needs."""

    test: WindowSet
    series: list[tuple[int, int]]  # (store, item) of each series column
    window_scale: np.ndarray  # per test window: its series' MASE scale
    origin: np.ndarray  # per test window: its origin block, 0 .. origins - 1
    origins: int
    references: dict[str, np.ndarray]  # reference forecasts of every test window


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
                    REFERENCES[1]: mean_of_last_weekdays(split.matrix, test)})


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


def reference_evaluations(ys: Yardstick) -> dict[str, Evaluation]:
    """The reference forecasts scored like any model, on the same windows."""
    return {name: evaluate(ys, forecast) for name, forecast in ys.references.items()}
