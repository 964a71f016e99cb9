"""Generated daily store-item sales in the Kaggle schema, with optional injected shifts.

The structure follows the public "Store Item Demand Forecasting" data:
expected sales = store level x item level x weekday x yearly season x slow
trend, and the observed count is Poisson around it (variance about the mean).
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
) -> pd.DataFrame:
    """Daily sales for stores 1..`stores` x items 1..`items`, one row per day and series.

    Returns a DataFrame with columns ``date, store, item, sales`` (and
    ``expected``, the noise-free mean, if `with_expected`), sorted by date,
    store, item. The same arguments always give the same rows.
    """
    if stores < 1 or items < 1:
        raise ValueError(f"stores and items must be >= 1, got stores={stores}, items={items}")
    dates = pd.date_range(start, end, freq="D")
    if len(dates) == 0:
        raise ValueError(f"empty date range: start={start!r} end={end!r}")
    rng = np.random.default_rng(seed)
    # Levels depend on the id, not on how many ids there are, so store 3 looks
    # the same in a 5-store and in a 10-store file.
    level_rng = np.random.default_rng([seed, 7])
    store_levels = level_rng.uniform(0.65, 1.35, size=max(stores, 10))[:stores]
    item_levels = np.exp(level_rng.uniform(*np.log(ITEM_MEAN_RANGE), size=max(items, 50)))[:items]

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
            frame = pd.DataFrame(
                {"date": dates, "store": s, "item": i, "sales": rng.poisson(expected)}
            )
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
