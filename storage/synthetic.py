"""Generated daily store-item sales in the Kaggle schema, with optional injected shifts.

The structure follows the public "Store Item Demand Forecasting" data:
expected sales = store level x item level x weekday x yearly season x slow
trend, and the observed count is Poisson around it (variance about the mean).
Keyword options add the noise real sales have: negative-binomial counts
(`dispersion`), intermittent series (`zero_share`, with low `item_mean_range`)
and day-to-day demand noise per item whose size differs by item (`item_noise`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Monday .. Sunday, as in the public data set (Monday lowest, Sunday highest).
WEEKDAY_FACTORS = np.array([0.79, 0.93, 0.93, 0.99, 1.05, 1.12, 1.19])
ITEM_MEAN_RANGE = (15.0, 100.0)


@dataclass(frozen=True)
class Shift:
    """A change injected into the generated sales from `start` on.

    ``kind="level"`` multiplies expected sales by `factor`; ``kind="promo"``
    multiplies them by `factor` for `promo_days` days every `every_days` days.
    `item=None` means every item of the store.
    """

    store: int
    start: pd.Timestamp
    factor: float = 1.2
    item: int | None = None
    kind: str = "level"
    every_days: int = 14
    promo_days: int = 3

    def __post_init__(self) -> None:
        if self.kind not in ("level", "promo"):
            raise ValueError(f"shift kind must be 'level' or 'promo', got {self.kind!r}")
        if self.factor <= 0:
            raise ValueError(f"shift factor must be > 0, got {self.factor!r}")
        object.__setattr__(self, "start", pd.Timestamp(self.start))

    def multiplier(self, dates: pd.DatetimeIndex) -> np.ndarray:
        days = (dates - self.start).days.to_numpy()
        active = days >= 0
        if self.kind == "promo":
            active &= (days % self.every_days) < self.promo_days
        return np.where(active, self.factor, 1.0)


_SHIFT_KEYS = {"store", "item", "start", "factor", "kind", "every_days", "promo_days"}


def parse_shift(text: str) -> Shift:
    """Parse ``store=3,start=2017-06-01,factor=1.2[,item=5][,kind=promo]`` into a Shift."""
    fields: dict[str, str] = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in _SHIFT_KEYS:
            raise ValueError(
                f"bad shift part {part!r} in {text!r}: expected key=value with key in "
                f"{sorted(_SHIFT_KEYS)}"
            )
        fields[key.strip()] = value.strip()
    if "store" not in fields or "start" not in fields:
        raise ValueError(f"shift {text!r} needs at least store= and start=")
    ints = {k: int(v) for k, v in fields.items() if k in ("store", "item", "every_days", "promo_days")}
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", fields["start"]):
        raise ValueError(f"shift start must be YYYY-MM-DD, got {fields['start']!r}")
    return Shift(
        start=pd.Timestamp(fields["start"]),
        factor=float(fields.get("factor", 1.2)),
        kind=fields.get("kind", "level"),
        **ints,
    )


def generate_sales(
    *,
    stores: int = 5,
    items: int = 10,
    start: str = "2013-01-01",
    end: str = "2017-12-31",
    seed: int = 0,
    shifts: tuple[Shift, ...] = (),
    with_expected: bool = False,
    dispersion: float | None = None,
    zero_share: float | tuple[float, float] = 0.0,
    item_noise: float = 0.0,
    item_mean_range: tuple[float, float] = ITEM_MEAN_RANGE,
) -> pd.DataFrame:
    """Daily sales for stores 1..`stores` x items 1..`items`, one row per day and series.

    Parameters
    ----------
    dispersion : the negative-binomial size k (variance = mean + mean**2 / k); None for
        Poisson counts. Smaller is noisier.
    zero_share : the share of days a series sells nothing on top of its counts' own zeros
        (out of stock, not listed): one share for every series, or a (low, high) range from
        which each series draws its own.
    item_noise : each item's sales move from day to day by a log-normal factor common to all
        its stores (a demand shock); its standard deviation is drawn per item from
        0..`item_noise`, so some items are much noisier than others.
    item_mean_range : the range of the items' mean daily sales (log-uniform).

    Returns a DataFrame with columns ``date, store, item, sales`` (and
    ``expected``, the mean of each day's draw, if `with_expected`: after shifts, item noise
    and zero share), sorted by date, store, item. The same arguments always give the same
    rows; the defaults give the same rows as before these options existed.
    """
    if stores < 1 or items < 1:
        raise ValueError(f"stores and items must be >= 1, got stores={stores}, items={items}")
    if dispersion is not None and not dispersion > 0:
        raise ValueError(f"dispersion must be > 0 (or None for Poisson), got {dispersion!r}")
    zero_range = zero_share if isinstance(zero_share, tuple) else (zero_share, zero_share)
    if not 0.0 <= zero_range[0] <= zero_range[1] < 1.0:
        raise ValueError(f"zero_share must be in [0, 1) (or a (low, high) range), got {zero_share!r}")
    if item_noise < 0:
        raise ValueError(f"item_noise must be >= 0, got {item_noise!r}")
    if not 0 < item_mean_range[0] <= item_mean_range[1]:
        raise ValueError(f"item_mean_range must be 0 < low <= high, got {item_mean_range!r}")
    dates = pd.date_range(start, end, freq="D")
    if len(dates) == 0:
        raise ValueError(f"empty date range: start={start!r} end={end!r}")
    rng = np.random.default_rng(seed)
    # Levels depend on the id, not on how many ids there are, so store 3 looks
    # the same in a 5-store and in a 10-store file.
    level_rng = np.random.default_rng([seed, 7])
    store_levels = level_rng.uniform(0.65, 1.35, size=max(stores, 10))[:stores]
    item_levels = np.exp(level_rng.uniform(*np.log(item_mean_range), size=max(items, 50)))[:items]
    # the noise options draw from their own generators so the counts' stream (and with it
    # every default output) stays as it was
    noise_rng = np.random.default_rng([seed, 11])
    noise_sd = noise_rng.uniform(0.0, item_noise, size=max(items, 50))[:items]
    item_factor = np.exp(noise_sd[:, None] * noise_rng.standard_normal((items, len(dates)))
                         - noise_sd[:, None] ** 2 / 2)  # mean 1
    zero_rng = np.random.default_rng([seed, 13])
    series_zero_share = zero_rng.uniform(*zero_range, size=(stores, items))

    day_of_year = dates.dayofyear.to_numpy()
    season = 1.0 + 0.25 * np.sin(2 * np.pi * (day_of_year - 100) / 365.25)
    years = (dates - dates[0]).days.to_numpy() / 365.25
    trend = 1.0 + 0.06 * years - 0.004 * years**2
    weekday = WEEKDAY_FACTORS[dates.dayofweek.to_numpy()]
    daily = weekday * season * trend

    frames = []
    for s in range(1, stores + 1):
        for i in range(1, items + 1):
            expected = store_levels[s - 1] * item_levels[i - 1] * daily
            for shift in shifts:
                if shift.store == s and shift.item in (None, i):
                    expected = expected * shift.multiplier(dates)
            if item_noise > 0:
                expected = expected * item_factor[i - 1]
            if dispersion is None:
                counts = rng.poisson(expected)
            else:
                counts = rng.negative_binomial(dispersion, dispersion / (dispersion + expected))
            zero = series_zero_share[s - 1, i - 1]
            if zero > 0:
                counts = np.where(zero_rng.random(len(dates)) < zero, 0, counts)
                expected = expected * (1.0 - zero)
            frame = pd.DataFrame({"date": dates, "store": s, "item": i, "sales": counts})
            if with_expected:
                frame["expected"] = expected
            frames.append(frame)
    sales = pd.concat(frames, ignore_index=True)
    return sales.sort_values(["date", "store", "item"], kind="stable").reset_index(drop=True)


def write_sales_csv(sales: pd.DataFrame, path) -> None:
    """Write sales in the Kaggle schema (ISO dates, no index, no extra columns)."""
    out = sales[["date", "store", "item", "sales"]].copy()
    out["date"] = pd.to_datetime(out["date"]).dt.strftime("%Y-%m-%d")
    out.to_csv(path, index=False)
