"""The model's static inputs (input contract version 3), computed from a series' own kept
daily sales and the forecast date: the one function training and the device agent both call,
so a model is fed on the device exactly what it was trained on.

`kept` is the series' daily sales up to the day before the forecast day, oldest first, at
most `KEPT_DAYS` of them, NaN (or None) where the series has no record (days before its first
sale, gaps). Its last `WINDOW_DAYS` days are the model's window and must all be known.

The five values, in `STATIC_FIELDS` order, with `s = mean(window) + 1` (the graph's scale):

1. ``wd8``: the mean of the forecast weekday's last 8 weeks (kept days d-7, d-14 .. d-56),
   over `s`; `m56` when none of those days is known;
2. ``m56``: the mean of the last 56 kept days, over `s`;
3. ``doy_sin``, 4. ``doy_cos``: the forecast date's day of year (1 to 366) on a 365.25-day
   circle;
5. ``log_level_ratio``: log((mean of all kept days + 1) / s): where the window sits against
   the series' own year.

Unknown days are left out of every mean. Sums run in float64 over the same array layout for
one series or many, and the result is cast to float32 once, so a batch of windows and the
device's one series give the same bits (tests/test_device_features.py checks it).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import numpy as np

CONTRACT_VERSION = 3
WINDOW_DAYS = 14
KEPT_DAYS = 364  # a year of whole weeks: the longest look-back of any static input
STATIC_FIELDS = ("wd8", "m56", "doy_sin", "doy_cos", "log_level_ratio")
LOOK_BACK_DAYS = {"wd8": 56, "m56": 56, "doy_sin": 0, "doy_cos": 0, "log_level_ratio": KEPT_DAYS}
WEEKS_OF_WEEKDAY = 8
RECENT_DAYS = 56
YEAR_DAYS = 365.25


def static_features(kept: np.ndarray, day_of_year: np.ndarray) -> np.ndarray:
    """float32 (n, 5) static inputs for `n` series-days: `kept` float (n, KEPT_DAYS), each row
    the kept days before its forecast day (NaN: unknown; rows shorter than a year padded with
    NaN at the front), and `day_of_year` (n,) of each forecast day."""
    kept = np.asarray(kept, dtype=np.float64)
    if kept.ndim != 2 or kept.shape[1] != KEPT_DAYS:
        raise ValueError(f"kept days must have shape (n, {KEPT_DAYS}), got {kept.shape}")
    window = kept[:, -WINDOW_DAYS:]
    if np.isnan(window).any():
        raise ValueError(f"the last {WINDOW_DAYS} kept days (the model's window) must all be known")
    scale = _mean(window) + 1.0
    m56 = _mean(kept[:, -RECENT_DAYS:])
    weekday = _mean(kept[:, -7 * WEEKS_OF_WEEKDAY::7])
    weekday = np.where(np.isnan(weekday), m56, weekday)
    angle = 2.0 * np.pi * np.asarray(day_of_year, dtype=np.float64) / YEAR_DAYS
    level = np.log((_mean(kept) + 1.0) / scale)
    return np.stack([weekday / scale, m56 / scale, np.sin(angle), np.cos(angle), level],
                    axis=1).astype(np.float32)


def _mean(values: np.ndarray) -> np.ndarray:
    """Row means over the known days (NaN where a row knows none)."""
    known = ~np.isnan(values)
    count = known.sum(axis=1)
    total = np.where(known, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def kept_row(sales: Sequence[float | None]) -> np.ndarray:
    """One series' kept days as the (1, KEPT_DAYS) row `static_features` takes: the last
    KEPT_DAYS of `sales` (oldest first; None or NaN unknown), NaN-padded at the front."""
    values = [math.nan if value is None else float(value) for value in sales][-KEPT_DAYS:]
    row = np.full((1, KEPT_DAYS), np.nan)
    if values:
        row[0, KEPT_DAYS - len(values):] = values
    return row


def series_inputs(sales: Sequence[float | None], day: dt.date
                  ) -> tuple[np.ndarray, int, np.ndarray]:
    """The three inputs of a version-3 model for one series on `day`: its window (float32
    (WINDOW_DAYS,)), the day's weekday (0 = Monday) and the static inputs (float32 (5,)), from
    its kept daily sales up to the day before (oldest first)."""
    row = kept_row(sales)
    window = row[0, -WINDOW_DAYS:]
    if np.isnan(window).any():
        raise ValueError(f"need the {WINDOW_DAYS} daily sales before {day.isoformat()}, got "
                         f"{int((~np.isnan(window)).sum())} of them")
    static = static_features(row, np.array([day.timetuple().tm_yday]))[0]
    return window.astype(np.float32), day.weekday(), static
