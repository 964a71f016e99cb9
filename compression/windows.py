"""Sliding windows (14 days of sales -> the next day, with the forecast day's weekday and the
static inputs of `device/features.py`) per series, and the time split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from device.features import KEPT_DAYS, STATIC_FIELDS, WINDOW_DAYS, static_features

WEEKDAYS = 7  # the forecast day's weekday is the model's second input (one-hot)
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.1


@dataclass(frozen=True)
class SalesMatrix:
    """Sales as a dense (day x series) array; NaN where a series has no row that day."""

    dates: pd.DatetimeIndex
    series: list[tuple[int, int]]  # (store, item) per column
    values: np.ndarray  # float64, shape (days, series)


@dataclass(frozen=True)
class WindowSet:
    """Windows of `WINDOW_DAYS` raw daily sales, the weekday of the day after (the forecast
    day, 0 = Monday), the static inputs the device computes for that day from the series' kept
    sales (`device.features.static_features`) and that day's sales."""

    history: np.ndarray  # float32 (n, window_days)
    target: np.ndarray  # float32 (n,)
    series: np.ndarray  # int (n,), column in the SalesMatrix
    target_pos: np.ndarray  # int (n,), row of the target day in the SalesMatrix
    target_weekday: np.ndarray  # int32 (n,), weekday of the target day, 0 = Monday
    static: np.ndarray  # float32 (n, len(STATIC_FIELDS))

    def __len__(self) -> int:
        return len(self.target)

    def take(self, mask: np.ndarray) -> WindowSet:
        return WindowSet(self.history[mask], self.target[mask], self.series[mask],
                         self.target_pos[mask], self.target_weekday[mask], self.static[mask])

    def sample(self, limit: int | None, seed: int) -> WindowSet:
        """At most `limit` windows drawn uniformly across series and time (all if None)."""
        if limit is None or len(self) <= limit:
            return self
        keep = np.zeros(len(self), dtype=bool)
        keep[np.random.default_rng(seed).choice(len(self), limit, replace=False)] = True
        return self.take(keep)


@dataclass(frozen=True)
class Split:
    matrix: SalesMatrix
    train: WindowSet
    validation: WindowSet
    test: WindowSet
    # a night's warm-start windows when `train` holds only the training budget's sample
    # (`bounded_split`); None: draw them from `train` (`warm_windows`)
    recent: WindowSet | None = None

    def target_dates(self, windows: WindowSet) -> pd.DatetimeIndex:
        return self.matrix.dates[windows.target_pos]


def sales_matrix(sales: pd.DataFrame) -> SalesMatrix:
    """Pivot (date, store, item, sales) rows into a dense day x series matrix over every day."""
    if sales.empty:
        raise ValueError("no sales rows to build windows from")
    wide = sales.pivot_table(index="date", columns=["store", "item"], values="sales", aggfunc="sum")
    dates = pd.date_range(wide.index.min(), wide.index.max(), freq="D")
    wide = wide.reindex(dates)
    return SalesMatrix(dates, [tuple(map(int, c)) for c in wide.columns], wide.to_numpy(np.float64))


def make_windows(matrix: SalesMatrix, window_days: int = WINDOW_DAYS) -> WindowSet:
    """Every complete window of every series (windows touching a missing day are dropped), in
    target-day-major order. Only the complete windows are copied out of the matrix (a window
    is complete when the running count of missing days does not change across it): copying
    every window first and then dropping took 1.1 GiB more at 2,000 series x 5 years."""
    days, n_series = matrix.values.shape
    if days <= window_days:
        raise ValueError(f"need more than {window_days} days of sales, got {days}")
    missing = np.vstack([np.zeros((1, n_series), dtype=np.int32),
                         np.cumsum(np.isnan(matrix.values), axis=0, dtype=np.int32)])
    # missing days among the rows t - window_days .. t, for every target row t >= window_days
    gaps = missing[window_days + 1:] - missing[:days - window_days]
    first, series = np.nonzero(gaps == 0)  # row-major: by target day, then by series
    target_pos = first + window_days
    stacked = np.lib.stride_tricks.sliding_window_view(
        matrix.values.astype(np.float32), window_days + 1, axis=0)
    # stacked: (days - window_days, series, window_days + 1), a view
    block = stacked[first, series]  # (windows, window_days + 1), the complete ones only
    weekday = matrix.dates.weekday.to_numpy().astype(np.int32)
    return WindowSet(
        history=np.ascontiguousarray(block[:, :window_days]),
        target=block[:, window_days].copy(),
        series=series.astype(np.int64),
        target_pos=target_pos.astype(np.int64),
        target_weekday=weekday[target_pos],
        static=window_static(matrix, series, target_pos),
    )


def window_static(matrix: SalesMatrix, series: np.ndarray, target_pos: np.ndarray, *,
                  chunk: int = 16_384) -> np.ndarray:
    """The static inputs of every window, as the device computes them: each window's kept days
    (up to `KEPT_DAYS` before its target day, NaN before the matrix starts) through
    `device.features.static_features`, `chunk` windows at a time (a year of float64 per window:
    all at once would take 10 GiB at 2,000 series x 5 years)."""
    padded = np.vstack([np.full((KEPT_DAYS, matrix.values.shape[1]), np.nan), matrix.values])
    day_of_year = matrix.dates.dayofyear.to_numpy()
    out = np.empty((len(series), len(STATIC_FIELDS)), dtype=np.float32)
    offsets = np.arange(KEPT_DAYS)  # padded row of the first kept day = target_pos
    for start in range(0, len(series), chunk):
        rows = target_pos[start:start + chunk, None] + offsets[None, :]
        kept = padded[rows, series[start:start + chunk, None]]
        out[start:start + chunk] = static_features(kept, day_of_year[target_pos[start:start + chunk]])
    return out


def split_by_time(
    sales: pd.DataFrame,
    *,
    window_days: int = WINDOW_DAYS,
    test_fraction: float = TEST_FRACTION,
    validation_fraction: float = VALIDATION_FRACTION,
    test_days: int | None = None,
    validation_days: int | None = None,
) -> Split:
    """Chronological split: the windows of the last `test_days` target days (else the last
    `test_fraction` of them) are test; validation is the `validation_days` (else the
    `validation_fraction` of what remains) before them. Every training target day is earlier
    than every validation one, and those earlier than every test one.

    Fractions are the article's method; days are the nightly's, so that the models a night
    ships were trained on sales up to a few weeks before it, whatever the history's length."""
    if not (0 < test_fraction < 1 and 0 < validation_fraction < 1):
        raise ValueError(
            f"fractions must be in (0, 1), got test={test_fraction!r}, "
            f"validation={validation_fraction!r}"
        )
    for name, days in (("test_days", test_days), ("validation_days", validation_days)):
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
            raise ValueError(f"{name} must be a whole number of at least 1, got {days!r}")
    matrix = sales_matrix(sales)
    windows = make_windows(matrix, window_days)
    target_days = np.unique(windows.target_pos)
    n_test = test_days if test_days is not None else max(1, round(len(target_days) * test_fraction))
    n_val = validation_days if validation_days is not None \
        else max(1, round((len(target_days) - n_test) * validation_fraction))
    if len(target_days) - n_test - n_val < 1:
        raise ValueError(
            f"{len(target_days)} target days are too few for a train/validation/test split"
        )
    test_start = target_days[-n_test]
    val_start = target_days[-n_test - n_val]
    return Split(
        matrix=matrix,
        train=windows.take(windows.target_pos < val_start),
        validation=windows.take((windows.target_pos >= val_start) & (windows.target_pos < test_start)),
        test=windows.take(windows.target_pos >= test_start),
    )


def night_split(sales: pd.DataFrame, recipe) -> Split:
    """The nightly's split: the recipe's `test_days` held out, `validation_days` before them."""
    return split_by_time(sales, test_days=recipe.test_days, validation_days=recipe.validation_days)


def recent_windows(windows: WindowSet, days: int) -> WindowSet:
    """The windows whose target day is among the last `days` days of `windows`."""
    if len(windows) == 0:
        return windows
    return windows.take(windows.target_pos > windows.target_pos.max() - days)


def warm_windows(split: Split, recipe) -> WindowSet:
    """The windows a warm start fine-tunes on: the training windows of the last
    `recipe.warm_recent_days` target days, at most `recipe.warm_max_windows` of them sampled."""
    if split.recent is not None:
        return split.recent
    return recent_windows(split.train, recipe.warm_recent_days).sample(recipe.warm_max_windows,
                                                                       recipe.seed)


def bounded_split(split: Split, recipe) -> Split:
    """The split cut to the windows a night's training reads: the training budget's sample of
    `train` (exactly the windows `lstm.fit` draws, `recipe.max_train_windows`) and the warm
    start's (`warm_windows`). What the night keeps and every worker loads then stops growing
    with history and series: at 2,000 series, 3.5 million training windows become 120,000."""
    return Split(split.matrix, split.train.sample(recipe.max_train_windows, recipe.seed),
                 split.validation, split.test, recent=warm_windows(split, recipe))


def window_scale(history: np.ndarray) -> np.ndarray:
    """Per-window scale a device can compute from the window alone: its mean plus one.

    The +1 keeps all-zero windows finite. The exported models compute the same
    inside their graph, so a device feeds raw sales and gets sales back.
    """
    return history.mean(axis=-1) + 1.0


_WINDOW_FIELDS = ("history", "target", "series", "target_pos", "target_weekday", "static")
_PARTS = ("train", "validation", "test")


def split_arrays(split: Split) -> dict[str, np.ndarray]:
    """A split as plain named arrays (no Python objects), to store and load without pickle."""
    arrays = {"dates": split.matrix.dates.to_numpy(dtype="datetime64[ns]"),
              "series": np.array(split.matrix.series, dtype=np.int64).reshape(-1, 2),
              "values": split.matrix.values}
    for part in _PARTS + (("recent",) if split.recent is not None else ()):
        windows = getattr(split, part)
        arrays.update({f"{part}.{name}": getattr(windows, name) for name in _WINDOW_FIELDS})
    return arrays


def split_from_arrays(arrays: dict[str, np.ndarray]) -> Split:
    """The split `split_arrays` took apart."""
    matrix = SalesMatrix(pd.DatetimeIndex(arrays["dates"], freq="D"),
                         [tuple(map(int, pair)) for pair in arrays["series"]], arrays["values"])
    parts = {part: WindowSet(*(arrays[f"{part}.{name}"] for name in _WINDOW_FIELDS))
             for part in _PARTS + (("recent",) if "recent.target" in arrays else ())}
    return Split(matrix=matrix, **parts)
